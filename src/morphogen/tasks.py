"""Targets and start states of the tasks.

Shapes: grid tasks have states ``(batch, height, width, channels)`` and a target covering the
channels their loss reads (the checkerboard: channel 0, (H, W); an image: RGB, (H, W, 3); growth:
RGBA, (H, W, 4), the organism centred on an empty grid that growth starts from one living cell
of); line tasks (patterning) have states
``(batch, cells)`` and no target: their loss scores the batch as a whole (a distribution of
patterns over replicates).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def checkerboard(height: int, width: int, square: int = 2) -> np.ndarray:
    """(H, W) float32 checkerboard of ``square`` x ``square`` tiles, 0 at the top-left."""
    y, x = np.mgrid[:height, :width]
    return (((y // square) + (x // square)) % 2).astype(np.float32)


def random_binary_states(key: jax.Array, batch: int, height: int, width: int, channels: int):
    """Fresh uniformly random binary start states (the DiffLogic checkerboard's)."""
    return jax.random.randint(key, (batch, height, width, channels), 0, 2).astype(jnp.float32)


def channel0_sq_error(final, target):
    """Sum over batch and cells of (channel 0 - target)^2: the reference raw-sum loss."""
    return jnp.sum(jnp.square(final[..., 0] - target))


def channel0_accuracy(final, target):
    """Per-sample fraction of cells whose rounded channel 0 equals the target: (batch,)."""
    return jnp.mean(jnp.round(final[..., 0]) == target, axis=(-2, -1))


def checkerboard_phases(height: int, width: int, square: int = 2) -> np.ndarray:
    """(P, H, W): every distinct translate of the checkerboard (its phases), the anchored one
    first. A period is two tiles each way; a shift by one tile each way gives the same board."""
    period = 2 * square
    big = checkerboard(height + period, width + period, square)
    phases, seen = [], set()
    for dy in range(period):
        for dx in range(period):
            board = big[dy : dy + height, dx : dx + width]
            if board.tobytes() not in seen:
                seen.add(board.tobytes())
                phases.append(board)
    return np.stack(phases)


def best_phase_accuracy(final, phases):
    """Per-sample accuracy against the best-matching phase of the pattern: (batch,). A circuit
    that draws the right pattern shifted (e.g. anchored on the other border) scores 1."""
    hits = jnp.round(final[..., 0])[:, None] == phases[None]  # (batch, P, H, W)
    return jnp.max(jnp.mean(hits, axis=(-2, -1)), axis=1)


class Task(NamedTuple):
    """A task: how start states are drawn, what the target is, how a final state is scored."""

    name: str
    target: np.ndarray | None  # (H, W) for channel-0 tasks; None for tasks without one
    initial_states: Callable  # (key, batch) -> (batch, *state shape)
    # (final, start) -> scalar, what gradient training descends; ``start`` is the state the
    # rollout began from (the Game of Life's target is its next state; other tasks ignore it)
    loss: Callable
    accuracy: Callable | None = None  # (final, start) -> (batch,)
    # final -> (batch,): accuracy against the best of the pattern's phases (translates)
    phase_accuracy: Callable | None = None
    # final -> {name: scalar}: numbers logged per training step beside the loss
    metrics: Callable | None = None
    metric_names: tuple[str, ...] = ()
    # final -> scalar, higher is better: what an evolution strategy selects on (default -loss)
    fitness: Callable | None = None
    # names of a state's axes after (batch,): what a trajectory store calls them
    state_dims: tuple[str, ...] = ("y", "x", "channel")
    # trajectory (step, trial, ...) -> {name: array}: what an evaluation rollout records, with
    # the names of each array's axes in score_dims
    scores: Callable | None = None
    score_dims: dict | None = None
    # final -> (batch,): the loss of each sample (regimes that act per sample, e.g. online spikes)
    sample_loss: Callable | None = None
    # scores (as from `scores`, NumPy) -> {metric: number}: an evaluation's models-table numbers
    summary: Callable | None = None
    # a state whose sample loss is below this has arrived at the target (image tasks)
    epsilon: float | None = None
    # damage recovery (grid tasks): state (batch, H, W, C) -> (batch,) the error a damage trial
    # records, and -> (batch, H, W[, colour]) what its frames show; `error_cells` is the number
    # of cells the error sums over (1 for a mean), for an error per cell
    damage_error: Callable | None = None
    frame: Callable | None = None
    error_cells: int = 1
    # evaluation cases (e.g. the advection NCA's source -> target pairs): an evaluation rollout
    # runs `case_states(key, n)` ((len(cases) * n, ...), case-major) and stores every array
    # with a leading `case_dim` axis; `stored_channels`: the channels its stored states keep
    cases: tuple[str, ...] = ()
    case_dim: str = "case"
    case_states: Callable | None = None
    stored_channels: tuple[int, ...] | None = None
    # (key, n) -> the start states of an evaluation rollout when they are not n random draws of
    # initial_states (the Game of Life on 3x3: all 512 configurations, whatever n)
    evaluation_states: Callable | None = None


def make(tcfg: dict, *, channels: int, scale: int = 1, grid: int | None = None) -> Task:
    """Build the task named in ``tcfg["name"]``; ``scale`` enlarges the grid (evaluation), or
    ``grid`` sets its side."""
    name = tcfg["name"]
    if name == "checkerboard":
        size = int(grid) if grid is not None else int(tcfg["size"]) * scale
        square = int(tcfg.get("square", 2))
        target = checkerboard(size, size, square)
        t = jnp.asarray(target)
        phases = jnp.asarray(checkerboard_phases(size, size, square))
        return Task(
            name=name,
            target=target,
            initial_states=lambda key, batch: random_binary_states(key, batch, size, size, channels),
            loss=lambda final, start=None: channel0_sq_error(final, t),
            accuracy=lambda final, start=None: channel0_accuracy(final, t),
            phase_accuracy=lambda final: best_phase_accuracy(final, phases),
            scores=lambda traj: {
                "accuracy": jax.vmap(lambda x: channel0_accuracy(x, t))(traj).T,
                "phase_accuracy": jax.vmap(lambda x: best_phase_accuracy(x, phases))(traj).T,
            },
            score_dims={"accuracy": ("trial", "step"), "phase_accuracy": ("trial", "step")},
            damage_error=lambda x: jnp.sum(jnp.abs(x[..., 0] - t), axis=(-2, -1)),
            frame=lambda x: x[..., 0],
            error_cells=size * size,
        )
    if name == "patterning":
        lo, hi = (float(v) for v in tcfg.get("initial", [0.4, 0.6]))
        temperature, bandwidth = float(tcfg["fate_temperature"]), float(tcfg["bandwidth"])
        cells = int(channels)
        # `score: interior` leaves the two end cells out of the utility: with clamped ends
        # (model.boundary: fixed) they are boundary conditions, not fates the cells decide.
        scored = slice(1, cells - 1) if tcfg.get("score", "all") == "interior" else slice(None)

        def metrics(final):
            u, s_pat, s_rep = hard_utility(hard_fates(final[:, scored]))
            return {"utility": u, "s_pat": s_pat, "s_rep": s_rep}

        return Task(
            name=name,
            target=None,
            initial_states=lambda key, batch: jax.random.uniform(key, (batch, cells), minval=lo, maxval=hi),
            loss=lambda final, start=None: (
                -soft_utility(soft_fates(final[:, scored], temperature), bandwidth)[0]
            ),
            metrics=metrics,
            metric_names=("utility", "s_pat", "s_rep"),
            fitness=lambda final: hard_utility(hard_fates(final[:, scored]))[0],
            state_dims=("cell",),
            scores=lambda traj: pattern_scores(traj[..., scored]),
            score_dims={k: ("step",) for k in ("utility", "s_pat", "s_rep", "distinct_patterns")},
        )
    if name == "image":
        size = int(grid) if grid is not None else int(tcfg["size"]) * scale
        target = image_target(tcfg, size)  # (H, W, 3)
        t = jnp.asarray(target)
        std = float(tcfg.get("initial_std", 1.0))
        epsilon = float(tcfg["epsilon"])

        def sample_loss(final):
            """(batch,): mean squared error of the colour channels against the target."""
            return jnp.mean(jnp.square(final[..., :3] - t), axis=(-3, -2, -1))

        def scores(traj):
            return {"loss": jax.vmap(sample_loss)(traj).T}  # (trial, step)

        return Task(
            name=name,
            target=target,
            initial_states=lambda key, batch: std * jax.random.normal(key, (batch, size, size, channels)),
            loss=lambda final, start=None: jnp.mean(sample_loss(final)),
            sample_loss=sample_loss,
            scores=scores,
            score_dims={"loss": ("trial", "step")},
            summary=lambda s: image_summary(s["loss"], epsilon),
            epsilon=epsilon,
        )
    if name == "growth":
        side = int(grid) if grid is not None else grid_side(tcfg) * scale
        target = growth_target(tcfg, side)  # (side, side, 4)
        t = jnp.asarray(target)

        def sample_loss(final):
            """(batch,): mean squared error of RGBA against the target (the reference's loss)."""
            return jnp.mean(jnp.square(final[..., :4] - t), axis=(-3, -2, -1))

        return Task(
            name=name,
            target=target,
            initial_states=lambda key, batch: seed_states(batch, side, channels),
            loss=lambda final, start=None: jnp.mean(sample_loss(final)),
            sample_loss=sample_loss,
            scores=lambda traj: {"loss": jax.vmap(sample_loss)(traj).T},
            score_dims={"loss": ("trial", "step")},
            summary=lambda s: growth_summary(s["loss"]),
            damage_error=sample_loss,
            frame=lambda x: x[..., :4],
        )
    if name == "formations":
        from morphogen import formations

        formations.check(tcfg)
        tcfg = {**tcfg, "size": int(grid) if grid is not None else int(tcfg["size"]) * scale}
        align = float(tcfg.get("align_weight", 0.1))

        def sample_loss(final):
            """(batch,): mass MSE plus ``align_weight`` x the velocity-alignment term."""
            return formations.mass_mse(final) + align * formations.alignment(final)

        return Task(
            name=name,
            target=None,
            initial_states=formations.start_states(tcfg, channels),
            loss=lambda final, start=None: jnp.mean(sample_loss(final)),
            sample_loss=sample_loss,
            metrics=lambda final: {
                "mass_mse": jnp.mean(formations.mass_mse(final)),
                "alignment": jnp.mean(formations.alignment(final)),
            },
            metric_names=("mass_mse", "alignment"),
            scores=formations.scores,
            score_dims=formations.SCORE_DIMS,
            summary=formations.summary,
            cases=formations.pair_names(),
            case_dim="pair",
            case_states=formations.pair_states(tcfg, channels),
            stored_channels=(0, 1, 2, 3),  # mass, velocity, target
        )
    if name == "game_of_life":
        return game_of_life_task(int(grid) if grid is not None else int(tcfg["size"]) * scale)
    if name == "bitmap":
        return bitmap_task(tcfg, channels, int(grid) if grid is not None else int(tcfg["size"]) * scale)
    raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")


TASKS = ("checkerboard", "patterning", "image", "growth", "formations", "game_of_life", "bitmap")


def grid_side(tcfg: dict) -> int:
    """The side of a grid task's training grid: ``size``, or for ``growth`` the target's
    ``size`` plus ``padding`` on each side."""
    if tcfg["name"] == "growth":
        return int(tcfg["size"]) + 2 * int(tcfg.get("padding", 16))
    return int(tcfg["size"])


def matched_grid(task_cfg: dict, grid: int) -> int:
    """The nearest grid side at or below ``grid`` on which the pattern meets its far border the
    way it does on the training grid: a checkerboard anchored at the top-left corner ends
    mid-period at the far border of a 14-cell grid but not of a 56- or 64-cell one, and a circuit
    trained on one kind of border need not know the other. So a 14x14-trained circuit is run on
    54x54 for its 4x grid and damaged on 62x62; a 16x16-trained one keeps 64x64."""
    size = int(task_cfg["size"])
    if task_cfg["name"] == "checkerboard":
        grid -= (grid - size) % (2 * int(task_cfg.get("square", 2)))
    return grid


def evaluation_grid(exp_cfg: dict, scale: int) -> int | None:
    """The side of the ``scale``x evaluation grid: ``scale`` x the training grid, matched to the
    training grid's border (:func:`matched_grid`) unless ``evaluation.match_border`` is false;
    None for a task without a grid."""
    if "size" not in exp_cfg["task"]:  # not a grid task
        return None
    grid = grid_side(exp_cfg["task"]) * scale
    if exp_cfg["evaluation"].get("match_border", True):
        grid = matched_grid(exp_cfg["task"], grid)
    return grid


def seed_states(batch: int, side: int, channels: int):
    """The growing NCA's start: an empty grid with one living cell at the centre (alpha and
    hidden channels 1, colour 0)."""
    x = jnp.zeros((batch, side, side, channels), jnp.float32)
    return x.at[:, side // 2, side // 2, 3:].set(1.0)


def growth_target(tcfg: dict, side: int) -> np.ndarray:
    """(side, side, 4) RGBA target of the growth task: the :func:`organism` drawn at ``size``,
    centred on an empty grid of ``side``."""
    kind = tcfg.get("image", "organism")
    if kind != "organism":
        raise ValueError(f"task.image must be organism for task growth, got {kind!r}")
    size = int(tcfg["size"])
    if size > side:
        raise ValueError(f"task.size {size} does not fit a grid of {side}")
    out = np.zeros((side, side, 4), np.float32)
    top = (side - size) // 2
    out[top : top + size, top : top + size] = organism(size)
    return out


def growth_summary(loss: np.ndarray) -> dict:
    """A growth evaluation's numbers from its ``loss(trial, step)``: the loss at the end (mean and
    worst trial) and at the start (the seed)."""
    loss = np.asarray(loss, np.float64)
    return {
        "growth_loss_final": float(loss[:, -1].mean()),
        "growth_loss_final_max": float(loss[:, -1].max()),
        "growth_loss_initial": float(loss[:, 0].mean()),
    }


# --------------------------------------------------------------------------- patterning utility
#
# The utility of seed 001 (in bits) of R replicate patterns of N cell fates: a line of cells
# should split into two fates in equal numbers (pattern entropy S_pat, up to 1 bit) and do it the
# same way in every replicate (reproducibility entropy S_rep, 0 when every replicate draws one
# pattern): U = S_pat - S_rep.


def _p_log2_p(p):
    """p log2 p, 0 at p = 0 (and a finite gradient there)."""
    safe = jnp.where(p > 0, p, 1.0)
    return jnp.where(p > 0, p * jnp.log2(safe), 0.0)


def binary_entropy(p):
    """H2(p) in bits, exactly 0 at p = 0 and p = 1."""
    return 0.0 - (_p_log2_p(p) + _p_log2_p(1 - p))


def hard_fates(states):
    """A cell's fate: 1 where its state is at least 0.5."""
    return (states >= 0.5).astype(jnp.float32)


def soft_fates(states, temperature: float):
    """Differentiable fates: sigmoid(T (s - 0.5))."""
    return jax.nn.sigmoid(temperature * (states - 0.5))


def pattern_counts(fates):
    """(R, N) binary fates -> (2**N,) number of replicates showing each pattern (sum z_i 2^i)."""
    n = fates.shape[-1]
    codes = jnp.sum(fates.astype(jnp.int32) << jnp.arange(n, dtype=jnp.int32), axis=-1)
    return jnp.bincount(codes, length=2**n)


def hard_utility(fates):
    """(U, S_pat, S_rep) of (R, N) binary fates: S_pat = H2(mean fate); S_rep = the entropy of
    the replicates' empirical pattern distribution / N. Not differentiable."""
    r, n = fates.shape
    s_pat = binary_entropy(jnp.mean(fates))
    p = pattern_counts(fates) / r
    h = 0.0 - jnp.sum(_p_log2_p(p))
    s_rep = h / n
    return s_pat - s_rep, s_pat, s_rep


def soft_utility(fates, bandwidth: float):
    """(U, S_pat, S_rep) of (R, N) fates in [0, 1], differentiable: S_rep from a kernel density
    estimate of the pattern distribution at each replicate, p_i = mean_j exp(-|z_i - z_j|^2 /
    2h^2) (self-term included), H = -mean_i log2 p_i. On binary patterns with h well below 1
    the kernel is 1 between equal patterns and 0 between others, so it equals hard_utility."""
    n = fates.shape[-1]
    s_pat = binary_entropy(jnp.mean(fates))
    d2 = jnp.sum(jnp.square(fates[:, None, :] - fates[None, :, :]), axis=-1)
    p = jnp.mean(jnp.exp(-d2 / (2.0 * bandwidth**2)), axis=1)
    s_rep = -jnp.mean(jnp.log2(jnp.clip(p, 1e-10, 1.0))) / n
    return s_pat - s_rep, s_pat, s_rep


def pattern_scores(traj) -> dict:
    """Per step of a (step, trial, cells) trajectory, over its trials: the hard utility, S_pat,
    S_rep and the number of distinct fate patterns."""

    def one(states):
        fates = hard_fates(states)
        u, s_pat, s_rep = hard_utility(fates)
        return u, s_pat, s_rep, jnp.sum(pattern_counts(fates) > 0)

    u, s_pat, s_rep, distinct = jax.vmap(one)(traj)
    return {"utility": u, "s_pat": s_pat, "s_rep": s_rep, "distinct_patterns": distinct}


# --------------------------------------------------------------------------- image targets


def _disc(u, v, cu, cv, r):
    return (u - cu) ** 2 + (v - cv) ** 2 <= r**2


def _ellipse(u, v, cu, cv, ru, rv):
    return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1.0


def _segment(u, v, a, b, half_width):
    """Points within ``half_width`` of the segment a-b."""
    (au, av), (bu, bv) = a, b
    du, dv = bu - au, bv - av
    t = np.clip(((u - au) * du + (v - av) * dv) / (du * du + dv * dv), 0.0, 1.0)
    return (u - au - t * du) ** 2 + (v - av - t * dv) ** 2 <= half_width**2


def organism(size: int, supersample: int = 4) -> np.ndarray:
    """(size, size, 4) float32 RGBA in [0, 1], colour premultiplied by alpha: a newt-like
    creature drawn by code (green body and head, thin legs and a thin curved tail that damage
    can remove, yellow spots, dark eyes) on a transparent background, anti-aliased by
    averaging ``supersample``^2 samples per pixel. Deterministic: no randomness, no files."""
    n = size * supersample
    v, u = (np.mgrid[:n, :n] + 0.5) / n  # v down, u right, both in (0, 1)
    green, yellow, dark = (0.20, 0.62, 0.32), (0.98, 0.80, 0.18), (0.08, 0.10, 0.12)
    layers = []  # (mask, colour), later layers on top
    thin = 0.022
    body = _ellipse(u, v, 0.5, 0.55, 0.15, 0.22) | _disc(u, v, 0.5, 0.25, 0.12)
    limbs = np.zeros_like(body)
    for a, b in [((0.40, 0.44), (0.22, 0.34)), ((0.60, 0.44), (0.78, 0.34)),
                 ((0.40, 0.68), (0.22, 0.80)), ((0.60, 0.68), (0.78, 0.80))]:  # fmt: skip
        limbs |= _segment(u, v, a, b, thin)
    tail = _segment(u, v, (0.5, 0.74), (0.56, 0.86), thin) | _segment(u, v, (0.56, 0.86), (0.70, 0.93), thin)
    layers.append((body | limbs | tail, green))
    spots = _disc(u, v, 0.45, 0.50, 0.045) | _disc(u, v, 0.56, 0.60, 0.045) | _disc(u, v, 0.46, 0.68, 0.04)
    layers.append((spots, yellow))
    layers.append((_disc(u, v, 0.44, 0.21, 0.025) | _disc(u, v, 0.56, 0.21, 0.025), dark))
    rgba = np.zeros((n, n, 4), np.float64)
    for mask, colour in layers:
        rgba[mask, :3] = colour
        rgba[mask, 3] = 1.0
    rgba = rgba.reshape(size, supersample, size, supersample, 4).mean(axis=(1, 3))
    return rgba.astype(np.float32)  # colour already premultiplied (transparent pixels are 0)


IMAGES = ("uniform", "organism")


def image_target(tcfg: dict, size: int) -> np.ndarray:
    """(size, size, 3) float32 RGB target of an image task: a uniform ``color``, or the
    :func:`organism` drawn to ``size`` (its premultiplied colour: black background)."""
    kind = tcfg.get("image", "uniform")
    if kind == "uniform":
        return np.broadcast_to(
            np.asarray(tcfg.get("color", [1.0, 0.0, 0.0]), np.float32), (size, size, 3)
        ).copy()
    if kind == "organism":
        return organism(size)[..., :3]
    raise ValueError(f"task.image must be one of {', '.join(IMAGES)}, got {kind!r}")


def image_summary(loss: np.ndarray, epsilon: float) -> dict:
    """An evaluation's numbers from its ``loss(trial, step)``: the final loss (mean over trials),
    the loss of the start states, their ratio, the share of trials that came within
    ``epsilon`` and the mean first step at which they did (-1 if none did)."""
    loss = np.asarray(loss, np.float64)
    below = loss < epsilon
    reached = below.any(axis=1)
    first = np.where(reached, below.argmax(axis=1), -1)
    return {
        "eval_loss_initial": float(loss[:, 0].mean()),
        "eval_loss_final": float(loss[:, -1].mean()),
        "eval_loss_ratio": float(loss[:, -1].mean() / loss[:, 0].mean()),
        "reached_epsilon_fraction": float(reached.mean()),
        "steps_to_epsilon_mean": float(first[reached].mean()) if reached.any() else -1.0,
    }


# --------------------------------------------------------------------------- Game of Life
#
# The DiffLogic CA article's first experiment: a circuit learns one step of Conway's Game of Life
# from every 3x3 configuration, each on a periodic 3x3 grid (so that a cell's neighbourhood is the
# whole grid, rotated: the 512 grids hold every neighbourhood 9 times). Training draws `batch` of
# the 512 with replacement; its target is the exact next state of the start state the rollout
# began from. Evaluated on the 3x3 grid, the start states are all 512 configurations; on a larger
# grid, one scene (a glider gun, gliders, a spaceship and oscillators) whose exact evolution the
# circuit's is compared with, cell by cell, at every step.


def life_step(grid, xp=jnp):
    """One exact Game of Life step of binary grids (..., H, W) on a torus (``xp``: jnp or np)."""
    n = sum(
        xp.roll(grid, (dy, dx), axis=(-2, -1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)
    )
    return ((n == 3) | ((grid == 1) & (n == 2))).astype(xp.float32)


def life_run(grid, steps: int, xp=np):
    """(steps + 1, ..., H, W): ``grid`` and its next ``steps`` exact Game of Life states."""
    out = [xp.asarray(grid, xp.float32)]
    for _ in range(steps):
        out.append(life_step(out[-1], xp))
    return xp.stack(out)


def life_configs() -> np.ndarray:
    """(512, 3, 3) float32: configuration k has cell (i, j) alive where bit 3i + j of k is set."""
    k = np.arange(512)[:, None] >> np.arange(9)[None]
    return (k & 1).reshape(512, 3, 3).astype(np.float32)


# Patterns as rows of "O" (alive) and "." (dead).
GOSPER_GUN = (
    "........................O...........",
    "......................O.O...........",
    "............OO......OO............OO",
    "...........O...O....OO............OO",
    "OO........O.....O...OO..............",
    "OO........O...O.OO....O.O...........",
    "..........O.....O.......O...........",
    "...........O...O....................",
    "............OO......................",
)
GLIDER = (".O.", "..O", "OOO")  # moves one cell down and right every 4 steps
LWSS = (".O..O", "O....", "O...O", "OOOO.")  # the lightweight spaceship: 2 cells left every 4 steps
BLINKER = ("OOO",)
TOAD = (".OOO", "OOO.")
BEACON = ("OO..", "OO..", "..OO", "..OO")
PULSAR = tuple(
    "".join("O" if c else "." for c in row)
    for row in (
        [0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0],
        [0] * 13,
        [1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1],
        [1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1],
        [1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1],
        [0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0],
        [0] * 13,
        [0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0],
        [1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1],
        [1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1],
        [1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1],
        [0] * 13,
        [0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0],
    )
)


def pattern(rows) -> np.ndarray:
    return np.array([[c == "O" for c in r] for r in rows], np.float32)


def life_scene(side: int) -> np.ndarray:
    """(side, side) float32: a Gosper glider gun in the top-left corner (its gliders head down and
    right), two more gliders, a lightweight spaceship, a blinker, a toad, a beacon and a pulsar,
    placed by fractions of ``side`` (at least 64) so that they start apart."""
    if side < 64:
        raise ValueError(f"the Game of Life scene needs a grid of at least 64 cells, got {side}")
    grid = np.zeros((side, side), np.float32)

    def put(rows, y, x):
        p = pattern(rows)
        grid[y : y + p.shape[0], x : x + p.shape[1]] = p

    f = side / 128
    put(GOSPER_GUN, int(4 * f), int(4 * f))
    put(GLIDER, int(60 * f), int(10 * f))
    put(GLIDER, int(20 * f), int(70 * f))
    put(LWSS, int(100 * f), int(100 * f))
    put(BLINKER, int(100 * f), int(20 * f))
    put(TOAD, int(110 * f), int(50 * f))
    put(BEACON, int(50 * f), int(100 * f))
    put(PULSAR, int(70 * f), int(40 * f))
    return grid


def game_of_life_task(side: int) -> Task:
    """Game of Life on ``side`` x ``side`` periodic grids: 3 for training (random draws of the 512
    configurations; evaluation: all of them), larger for the scene (evaluation)."""
    configs = jnp.asarray(life_configs())[..., None]  # (512, 3, 3, 1)

    def target_of(start):
        return life_step(start[..., 0])

    def initial_states(key, batch):
        if side != 3:
            return jnp.broadcast_to(jnp.asarray(life_scene(side))[None, ..., None], (batch, side, side, 1))
        return configs[jax.random.randint(key, (batch,), 0, 512)]

    def scores(traj):
        """cells_wrong(trial, step): cells whose rounded channel 0 differs from the exact Game of
        Life run from the same start (step 0 is the start: 0)."""

        def body(x, _):
            nxt = life_step(x)
            return nxt, nxt

        _, exact = jax.lax.scan(body, traj[0, ..., 0], None, length=traj.shape[0] - 1)
        exact = jnp.concatenate([traj[0, ..., 0][None], exact])
        wrong = jnp.sum(jnp.round(traj[..., 0]) != exact, axis=(-2, -1)).astype(jnp.int32)
        return {"cells_wrong": wrong.T}

    def summary(s):
        wrong = np.asarray(s["cells_wrong"])
        if side == 3:  # all 512 grids, one step: each neighbourhood is a cell of 9 grids
            return {
                "hard_accuracy_all_configs": float(1.0 - wrong[:, 1].sum() / (9 * 512)),
                "configs_wrong_all_configs": int(wrong[:, 1].sum() // 9),
            }
        return {
            f"gol_cells_wrong_{side}": int(wrong.max()),
            # steps run before the first wrong cell (all of them when none is wrong)
            f"gol_steps_exact_{side}": int(np.argmax(np.append(wrong.max(axis=0) > 0, True)) - 1),
        }

    return Task(
        name="game_of_life",
        target=None,
        initial_states=initial_states,
        evaluation_states=(lambda key, n: configs) if side == 3 else None,
        loss=lambda final, start: jnp.sum(jnp.square(final[..., 0] - target_of(start))),
        accuracy=lambda final, start: jnp.mean(jnp.round(final[..., 0]) == target_of(start), axis=(-2, -1)),
        scores=scores,
        score_dims={"cells_wrong": ("trial", "step")},
        summary=summary,
    )


# --------------------------------------------------------------------------- growing bitmaps
#
# The DiffLogic CA article's growth experiments: a circuit grows a small binary image from a fixed
# start state in a fixed number of steps, scored on the final step only. The lizard (one channel:
# its silhouette) grows from one seed cell with every channel 1 on a periodic grid; the "G" (three
# channels: binary RGB, 8 colours) grows from an all-zero grid whose zero-padded border is what
# breaks the symmetry. Both images are drawn here by code, at their training size, and sit at the
# centre of an empty (black) grid when the grid is larger.

BITMAPS = ("lizard", "colored_g")


# The lizard (seen from above: head, front legs, body, hind legs, a tail curling left) and the
# G (a thick letter whose arc runs red, yellow, green, cyan, blue, magenta round to a white
# crossbar; "." is black), drawn as pixel art at their training sizes.
LIZARD = (
    "....................",
    ".........##.........",
    "........####........",
    "........####........",
    ".........##.........",
    "..#......##......#..",
    "..##....####....##..",
    "...##############...",
    "......########......",
    "........####........",
    "........####........",
    "......########......",
    "...##############...",
    "..##....####....##..",
    "..#......##......#..",
    ".........##.........",
    "..........##........",
    ".......#...#........",
    ".......#####........",
    "....................",
)
COLORED_G = (
    "................",
    ".....RRRRRR.....",
    "...RRRRRRRRRR...",
    "..YRRR....RRRR..",
    "..YYY......RR...",
    ".YYY............",
    ".GGG............",
    ".GGG.....WWWWWW.",
    ".GGG.....WWWWWW.",
    ".CCC.........WW.",
    "..CCC.......MWW.",
    "..CCCC.....MMMW.",
    "...BBBBBBMMMMM..",
    "....BBBBBBMMM...",
    "......BBBB......",
    "................",
)
G_COLOURS = {".": (0, 0, 0), "R": (1, 0, 0), "Y": (1, 1, 0), "G": (0, 1, 0), "C": (0, 1, 1),
             "B": (0, 0, 1), "M": (1, 0, 1), "W": (1, 1, 1)}  # fmt: skip


def lizard() -> np.ndarray:
    """(20, 20) float32 binary: the lizard's silhouette."""
    return pattern(tuple(r.replace("#", "O") for r in LIZARD))


def colored_g() -> np.ndarray:
    """(16, 16, 3) float32 binary RGB: the coloured G on black."""
    return np.array([[G_COLOURS[c] for c in r] for r in COLORED_G], np.float32)


def bitmap_image(name: str) -> np.ndarray:
    """(size, size, k) float32 binary: the bitmap task's image (k = 1 for the lizard, 3 for the G)."""
    if name == "lizard":
        return lizard()[..., None]
    if name == "colored_g":
        return colored_g()
    raise ValueError(f"task.image must be one of {', '.join(BITMAPS)} for task bitmap, got {name!r}")


def bitmap_task(tcfg: dict, channels: int, side: int) -> Task:
    """Grow ``task.image`` (drawn at its size, ``task.size``, centred on an empty ``side`` x ``side`` grid)
    from ``task.start``: ``seed`` (one centre cell with every channel 1) or ``zeros``. The loss is
    the raw sum over batch, cells and the image's channels (the first k) of squared errors, as the
    article's; a cell is wrong when any of those channels, rounded, differs from the image."""
    image = bitmap_image(tcfg.get("image", "lizard"))
    size, k = image.shape[0], image.shape[-1]
    if int(tcfg["size"]) != size:
        raise ValueError(
            f"task.size must be {size} for task.image {tcfg.get('image')!r} (its drawing's size), got {tcfg['size']}"
        )
    if channels < k:
        raise ValueError(
            f"model.channels must be at least {k} for task.image {tcfg.get('image')!r}, got {channels}"
        )
    if side < size:
        raise ValueError(f"task.size {size} does not fit a grid of {side}")
    target = np.zeros((side, side, k), np.float32)
    top = (side - size) // 2
    target[top : top + size, top : top + size] = image
    t = jnp.asarray(target)
    start = tcfg.get("start", "seed")
    if start not in ("seed", "zeros"):
        raise ValueError(f"task.start must be seed or zeros, got {start!r}")
    name = "train" if side == size else f"{side // size}x" if side % size == 0 else f"grid{side}"

    def initial_states(key, batch):
        x = jnp.zeros((batch, side, side, channels), jnp.float32)
        return x.at[:, side // 2, side // 2, :].set(1.0) if start == "seed" else x

    def wrong(final):
        """(batch,) cells whose rounded image channels differ from the target."""
        return jnp.sum(jnp.any(jnp.round(final[..., :k]) != t, axis=-1), axis=(-2, -1)).astype(jnp.int32)

    def summary(s):
        w = np.asarray(s["cells_wrong"])  # (trial, step)
        exact = (w == 0).all(axis=0)
        return {
            f"cells_wrong_{name}": int(w[:, -1].max()),
            # the first step at which every trial was exact (-1: never)
            f"first_exact_step_{name}": int(np.argmax(exact)) if exact.any() else -1,
        }

    return Task(
        name="bitmap",
        target=target[..., 0] if k == 1 else target,
        initial_states=initial_states,
        loss=lambda final, start=None: jnp.sum(jnp.square(final[..., :k] - t)),
        accuracy=lambda final, start=None: jnp.mean(jnp.round(final[..., :k]) == t, axis=(-3, -2, -1)),
        scores=lambda traj: {"cells_wrong": jax.vmap(wrong)(traj).T},
        score_dims={"cells_wrong": ("trial", "step")},
        summary=summary,
        stored_channels=tuple(range(k)),  # a trajectory keeps the image, not the hidden bits
    )
