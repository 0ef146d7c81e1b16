"""Formations for the advection NCA: targets, goal signals and start states (task ``formations``).

Three formations of equal total mass on a square grid of side ``size`` (cells; y down, x to the
right), drawn by code and anti-aliased (``SUPERSAMPLE``^2 samples a cell):

- ``LINE``: a bar ``2 * extent * size`` long and ``2 * thickness`` thick;
- ``SQUARE``: a hollow square whose corners lie ``extent * size`` from its centre, its wall
  ``thickness`` thick;
- ``WEDGE``: a V (an arrowhead pointing along +u) of two strokes ``thickness`` thick, its tip
  and arm ends ``extent * size`` from its centre.

Each formation's coverage is scaled to the same total mass, the LINE's at density 1, so
densities are near 1. A formation is placed by an **angle in radians**, measured from the
x axis towards the y axis (clockwise on screen, where y points down), and an offset of its
centre from the grid's centre in cells. Every point of a formation lies within ``extent *
size + thickness`` of its centre, and :func:`check` refuses a configuration in which that
radius plus the largest offset reaches the grid's edge, so no formation is ever clipped.

A state carries its goal: channel 3 the target density, 4-5 the unit direction (dy, dx) towards
the nearest target cell (zero on the target), 6 the proximity ``exp(-distance / (size / 4))``.
Distances are soft minima over the target's cells, computed exactly as separable log-sum-exps
(no distance transform library, traceable inside a training step).

Start states (:func:`start_states`) are drawn in four kinds, a quarter each: Gaussian blobs,
lightly and heavily perturbed formations (mixed with a blob and multiplied by cell noise of
strength 0.3 and 0.7), and clean formations; sources at any angle and an offset of up to
``offset * size``, targets centred at an angle within ``target_angle`` of 0. Every start
state's mass equals the target mass (to float rounding).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

FORMATIONS = ("LINE", "SQUARE", "WEDGE")
SOURCES = ("BLOB", *FORMATIONS)
KINDS = ("blob", "light", "heavy", "clean")
PERTURBATION = {"light": 0.3, "heavy": 0.7}
SUPERSAMPLE = 4
# cells at or above this coverage are the target's, for distances and directions
TARGET_CELL = 0.25


def geometry(tcfg: dict) -> dict:
    size = int(tcfg["size"])
    return {
        "size": size,
        "extent": float(tcfg.get("extent", 0.3)) * size,
        "thickness": float(tcfg.get("thickness", 2.0)),
        "offset": float(tcfg.get("offset", 0.08)) * size,
        "target_angle": float(tcfg.get("target_angle", math.pi / 6)),
        "blob_sigma": tuple(float(s) * size for s in tcfg.get("blob_sigma", [0.06, 0.16])),
    }


def check(tcfg: dict) -> None:
    """Raise ValueError naming the task key when a formation could be clipped by the grid."""
    g = geometry(tcfg)
    radius = g["extent"] + g["thickness"] + g["offset"]
    room = (g["size"] - 1) / 2.0
    if radius > room:
        raise ValueError(
            f"task.extent ({tcfg.get('extent', 0.3)}), task.thickness ({g['thickness']:g}) and task.offset "
            f"({tcfg.get('offset', 0.08)}) place formation cells up to {radius:.1f} cells from the centre, "
            f"beyond the {room:.1f} a grid of size {g['size']} has"
        )
    lo, hi = g["blob_sigma"]
    if not 0 < lo <= hi:
        raise ValueError(
            f"task.blob_sigma must be [low, high] with 0 < low <= high, got {tcfg.get('blob_sigma')}"
        )


def _coords(size: int):
    """Sample points, (size*S, size*S) each: y down, x right, in cell units (cell centres at
    0, 1, ..., size - 1)."""
    s = (jnp.arange(size * SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5
    return jnp.meshgrid(s, s, indexing="ij")


def _coverage(inside, size: int):
    return inside.astype(jnp.float32).reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))


def _segment_distance(u, w, a, b):
    (au, aw), (bu, bw) = a, b
    du, dw = bu - au, bw - aw
    t = jnp.clip(((u - au) * du + (w - aw) * dw) / (du * du + dw * dw), 0.0, 1.0)
    return jnp.sqrt((u - au - t * du) ** 2 + (w - aw - t * dw) ** 2)


def formation_coverage(g: dict, index, angle, offset):
    """(size, size) coverage in [0, 1] of formation ``FORMATIONS[index]`` (a traced integer)
    turned by ``angle`` radians, its centre moved by ``offset`` (dy, dx) cells."""
    size, e, t = g["size"], g["extent"], g["thickness"]
    y, x = _coords(size)
    centre = (size - 1) / 2.0
    dy, dx = y - centre - offset[0], x - centre - offset[1]
    c, s = jnp.cos(angle), jnp.sin(angle)
    u, w = c * dx + s * dy, -s * dx + c * dy  # the formation's own axes
    line = (jnp.abs(u) <= e) & (jnp.abs(w) <= t)
    half = e / math.sqrt(2.0)
    ring = jnp.maximum(jnp.abs(u), jnp.abs(w))
    square = (ring <= half) & (ring > half - t)
    tip, upper, lower = (half, 0.0), (-half, -half), (-half, half)
    wedge = (_segment_distance(u, w, tip, upper) <= t / 2) | (_segment_distance(u, w, tip, lower) <= t / 2)
    shapes = jnp.stack([_coverage(m, size) for m in (line, square, wedge)])
    return shapes[index]


def target_mass(g: dict) -> float:
    """The mass of every formation and start state: the LINE's coverage at density 1."""
    return float(jnp.sum(formation_coverage(g, 0, 0.0, jnp.zeros(2))))


def blob(g: dict, sigma, offset):
    size = g["size"]
    yx = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2.0
    y, x = yx[:, None] - offset[0], yx[None, :] - offset[1]
    return jnp.exp(-(y**2 + x**2) / (2.0 * sigma**2))


def with_mass(field, mass: float):
    return field * (mass / jnp.sum(field))


def goal_signal(target, size: int):
    """(size, size, 4): the target density, the unit direction (dy, dx) towards the nearest
    target cell (zero on it), the proximity ``exp(-distance / (size / 4))``."""
    inside = target >= TARGET_CELL * jnp.max(target)
    log_mask = jnp.where(inside, 0.0, -1e30)
    i = jnp.arange(size, dtype=jnp.float32)
    half_sq = 0.5 * (i[:, None] - i[None, :]) ** 2  # (i - j)^2 / 2 (softmin temperature 1 cell^2)
    # log sum_{target cells (a, b)} exp(-((y - a)^2 + (x - b)^2) / 2), separably
    by_row = jax.nn.logsumexp(log_mask[:, None, :] - half_sq[None, :, :], axis=-1)  # (a, x)
    log_sum = jax.nn.logsumexp(by_row[None, :, :] - half_sq[:, :, None], axis=1)  # (y, x)
    distance = jnp.sqrt(jnp.maximum(-2.0 * log_sum, 0.0))
    gy, gx = jnp.gradient(distance)
    norm = jnp.sqrt(gy**2 + gx**2) + 1e-6
    off = (~inside).astype(jnp.float32)
    direction = jnp.stack([-gy / norm * off, -gx / norm * off], -1)
    proximity = jnp.exp(-distance / (size / 4.0))
    return jnp.concatenate([target[..., None], direction, proximity[..., None]], -1)


def _state(mass_field, target, size: int, channels: int):
    """A start state: mass, zero velocity, the goal signal, zero hidden channels."""
    goal = goal_signal(target, size)
    zeros = jnp.zeros((size, size, 2), jnp.float32)
    hidden = jnp.zeros((size, size, channels - 7), jnp.float32)
    return jnp.concatenate([mass_field[..., None], zeros, goal, hidden], -1)


def _uniform(key, shape, bound):
    return jax.random.uniform(key, shape, minval=-bound, maxval=bound)


def source_field(g: dict, key, kind, index, mass: float):
    """One start mass field of ``KINDS[kind]`` (traced), built on formation ``index`` (traced)."""
    k_angle, k_off, k_sigma, k_blob, k_noise = jax.random.split(key, 5)
    angle = jax.random.uniform(k_angle, (), maxval=2 * math.pi)
    offset = _uniform(k_off, (2,), g["offset"])
    lo, hi = g["blob_sigma"]
    gauss = with_mass(
        blob(g, jax.random.uniform(k_sigma, (), minval=lo, maxval=hi), _uniform(k_blob, (2,), g["offset"])),
        mass,
    )
    form = with_mass(formation_coverage(g, index, angle, offset), mass)
    strength = jnp.asarray([0.0, PERTURBATION["light"], PERTURBATION["heavy"], 0.0])[kind]
    noise = 1.0 + strength * jax.random.uniform(k_noise, form.shape, minval=-1.0, maxval=1.0)
    perturbed = with_mass(((1.0 - strength) * form + strength * gauss) * noise, mass)
    return jnp.where(kind == 0, gauss, perturbed)


def target_field(g: dict, key, index, mass: float):
    angle = jax.random.uniform(key, (), minval=-g["target_angle"], maxval=g["target_angle"])
    return with_mass(formation_coverage(g, index, angle, jnp.zeros(2)), mass)


def start_states(tcfg: dict, channels: int):
    """``(key, batch) -> (batch, size, size, channels)``: training start states, each with a
    random kind, source, target formation and angles."""
    g = geometry(tcfg)
    mass = target_mass(g)

    def one(key):
        k_kind, k_src, k_tgt, k_field, k_target = jax.random.split(key, 5)
        kind = jax.random.randint(k_kind, (), 0, len(KINDS))
        source = jax.random.randint(k_src, (), 0, len(FORMATIONS))
        target = target_field(g, k_target, jax.random.randint(k_tgt, (), 0, len(FORMATIONS)), mass)
        return _state(source_field(g, k_field, kind, source, mass), target, g["size"], channels)

    return lambda key, batch: jax.vmap(one)(jax.random.split(key, batch))


PAIRS = tuple((s, t) for s in SOURCES for t in FORMATIONS)


def pair_names() -> tuple[str, ...]:
    return tuple(f"{s}->{t}" for s, t in PAIRS)


def pair_states(tcfg: dict, channels: int):
    """``(key, n) -> (len(PAIRS) * n, size, size, channels)``, pair-major: for every ordered
    (source, target) pair, ``n`` start states of a clean source (a blob, or the formation at a
    random angle and offset) and the target at a random angle."""
    g = geometry(tcfg)
    mass = target_mass(g)
    sources = jnp.asarray([SOURCES.index(s) for s, _ in PAIRS])
    targets = jnp.asarray([FORMATIONS.index(t) for _, t in PAIRS])

    def one(key, source, target):
        k_field, k_target = jax.random.split(key)
        kind = jnp.where(source == 0, 0, 3)  # a blob, or a clean formation
        field = source_field(g, k_field, kind, jnp.maximum(source - 1, 0), mass)
        return _state(field, target_field(g, k_target, target, mass), g["size"], channels)

    def states(key, n):
        keys = jax.random.split(key, len(PAIRS) * n)
        return jax.vmap(one)(keys, jnp.repeat(sources, n), jnp.repeat(targets, n))

    return states


# --------------------------------------------------------------------------- scores


def mass_mse(state):
    """(batch,): mean over cells of (mass - target)^2."""
    return jnp.mean(jnp.square(state[..., 0] - state[..., 3]), axis=(-2, -1))


def alignment(state):
    """(batch,): mean over cells of mass x |velocity - direction to the target|^2 (mass off the
    target should move towards it; on the target the wanted velocity is 0)."""
    return jnp.mean(state[..., 0] * jnp.sum(jnp.square(state[..., 1:3] - state[..., 4:6]), -1), axis=(-2, -1))


def uniform_mse(state):
    """(batch,): the mean squared error of the same mass spread uniformly over the grid."""
    m = jnp.mean(state[..., 0], axis=(-2, -1), keepdims=True)
    return jnp.mean(jnp.square(m - state[..., 3]), axis=(-2, -1))


def scores(traj) -> dict:
    """Per trial and step of a (step, trial, y, x, channel) rollout: ``mse``, ``mass_ratio``
    (total mass / total mass at step 0, float32 sums: the tables recompute it in float64 from
    ``mass``), ``mass`` (trial, step, y, x), and ``uniform_mse`` (trial,) of the target."""
    total = jnp.sum(traj[..., 0], axis=(-2, -1))  # (step, trial)
    return {
        "mse": jax.vmap(mass_mse)(traj).T,
        "mass_ratio": (total / total[0]).T,
        "mass": jnp.swapaxes(traj[..., 0], 0, 1),
        "uniform_mse": uniform_mse(traj[0]),
    }


SCORE_DIMS = {
    "mse": ("trial", "step"),
    "mass_ratio": ("trial", "step"),
    "mass": ("trial", "step", "y", "x"),
    "uniform_mse": ("trial",),
}


def summary(s: dict) -> dict:
    """An evaluation's models-table numbers: the final MSE (mean over pairs and trials), the
    largest relative mass error at any step, and the uniform-spread baseline's MSE."""
    mse = np.asarray(s["mse"], np.float64)
    return {
        "transition_mse_mean": float(mse[..., -1].mean()),
        "mass_error_max": float(np.max(np.abs(np.asarray(s["mass_ratio"], np.float64) - 1.0))),
        "uniform_baseline_mse": float(np.asarray(s["uniform_mse"], np.float64).mean()),
    }
