"""Advection NCA: cells steer a velocity field and mass moves along it, conserved exactly.

A state is ``(batch, height, width, channels)`` float32 (:data:`MASS`, :data:`VELOCITY`,
:data:`GOAL` and the hidden channels after them)::

    0        mass m >= 0 (a density; it may exceed 1 where flows converge)
    1, 2     velocity (vy, vx), cells per unit time, |v| < v_max; y down, x to the right
    3        target density t                      \\
    4, 5     unit direction towards the target     |  the goal signal: written by the task,
             (zero on the target's cells)           |  never changed by a step
    6        proximity to the target, in (0, 1]    /
    7 ...    hidden channels, in (-1, 1)

One step: every cell perceives identity, Sobel-x and Sobel-y of mass, target, velocity and the
hidden channels (the gradients tell it where mass and target lie) and the goal's direction and
proximity; a per-cell network (``hidden`` ReLU layers, zero-initialised output) gives a new
velocity ``v_max * tanh(.)`` and an update of the hidden channels, ``tanh(h + dh)``. Cells that
do not fire (async) keep both. Then, for every cell whether it fired or not (the family's
``post`` hook, applied by :func:`morphogen.updates.wrap` after the update), mass moves:

**Transport: donor-cell (first-order upwind) flux form, the outflow limited.** In each of
``substeps`` substeps a cell sends the fraction ``dt * max(vx, 0) + d`` of its mass to its right
neighbour, ``dt * max(-vx, 0) + d`` to its left one, and likewise down and up (``d`` is the
optional ``diffusion``). If the four fractions add up to more than 1 they are scaled down to
just below 1, so no cell ever sends more than it holds, for any velocity. The new mass is
``m - outflow + inflow``: each amount leaves one cell and enters another, so the total is
conserved to float rounding and every term is non-negative, so mass stays >= 0 by construction;
nothing is clipped afterwards. Walls (``boundary: wall``, the default) close the faces at the
grid's edge (no fraction is sent through them); ``boundary: periodic`` wraps around.

Why donor-cell and not reintegration tracking (Flow-Lenia): both conserve by construction. The
flux form costs four shifted copies per substep on any grid, its gradient is that of a few
products, and limiting the outflow makes it safe for any velocity the network (or the training
noise) produces; reintegration tracking moves each cell's mass as a square by up to v_max cells,
which needs a stencil as wide as the largest displacement and overlap areas per neighbour. The
price is first-order numerical diffusion where mass moves, which the network can counter by
converging flows.

During training the velocity that moves mass gets Gaussian noise of std ``velocity_noise``
(exploration; the stored velocity stays as the network set it). The noise is switched on by
the family's ``relax`` hook, which every training step runs: evaluation rollouts have none.

Params: ``{"layers": [{"w", "b"}, ...]}``; :func:`parameter_count` gives their number.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from morphogen.models import Family, check_model_keys, glorot_mlp
from morphogen.models.growing import perceive

MASS = 0
VELOCITY = slice(1, 3)
GOAL = slice(3, 7)
TARGET, DIRECTION, PROXIMITY = 3, slice(4, 6), 6
HIDDEN_START = 7
# the channels every cell perceives with identity and Sobel filters: mass, target, velocity
SEEN = 4
BOUNDARIES = ("wall", "periodic")
INIT_OUTPUT = ("zero", "random")
# A cell sends at most this fraction of its mass per substep: the margin keeps the four
# rounded outflows below what it holds, so the mass left behind is never negative.
MAX_OUTFLOW = 1.0 - 1e-6


def channels(cfg: dict) -> int:
    return HIDDEN_START + int(cfg["hidden_channels"])


def layer_sizes(cfg: dict) -> list[int]:
    seen = SEEN + int(cfg["hidden_channels"])
    inputs = 3 * seen + 3  # identity and two gradients of each seen channel; direction, proximity
    return [inputs, *[int(h) for h in cfg.get("hidden", [64, 32])], 2 + int(cfg["hidden_channels"])]


def parameter_count(cfg: dict) -> dict[str, int]:
    sizes = layer_sizes(cfg)
    return {"params_total": sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))}


def validate(cfg: dict) -> None:
    """Raise ValueError naming the model key when the model cannot be built."""
    if int(cfg["hidden_channels"]) < 0:
        raise ValueError(f"model.hidden_channels must be >= 0, got {cfg['hidden_channels']}")
    if any(int(h) < 1 for h in cfg.get("hidden", [64, 32])):
        raise ValueError(f"model.hidden must list widths of at least 1, got {cfg['hidden']}")
    dt, v_max = float(cfg.get("dt", 0.5)), float(cfg.get("max_speed", 1.0))
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"model.dt must be a positive number, got {cfg.get('dt')}")
    if not (np.isfinite(v_max) and v_max > 0):
        raise ValueError(f"model.max_speed must be a positive number, got {cfg.get('max_speed')}")
    if int(cfg.get("substeps", 1)) < 1:
        raise ValueError(f"model.substeps must be >= 1, got {cfg['substeps']}")
    if not 0.0 <= float(cfg.get("diffusion", 0.0)) <= 0.25:
        raise ValueError(f"model.diffusion must be in [0, 0.25], got {cfg['diffusion']}")
    check_model_keys(
        cfg, {"boundary": (BOUNDARIES, "wall"), "init_output": (INIT_OUTPUT, "zero")}, ("velocity_noise",)
    )


def init(key: jax.Array, cfg: dict) -> dict:
    """Glorot-uniform hidden layers, zero biases; the output layer zero (``init_output: zero``):
    the untrained model holds every velocity at 0, so mass stays where it is."""
    validate(cfg)
    zero_out = cfg.get("init_output", "zero") == "zero"
    return {"layers": glorot_mlp(key, layer_sizes(cfg), zero_out)}


# --------------------------------------------------------------------------- transport


def _shift(x, dy: int, dx: int):
    """x (..., H, W) moved by (dy, dx) cells, wrapping around (the walls send nothing across the
    edge, so what wraps is zero for them)."""
    return jnp.roll(x, (dy, dx), axis=(-2, -1))


def transport_substep(mass, vy, vx, dt: float, diffusion: float = 0.0, boundary: str = "wall"):
    """One donor-cell substep of ``mass`` (..., H, W) along the velocity (vy, vx) (..., H, W).

    Conserves the total to float rounding and keeps every cell >= 0, for any finite velocity.
    """
    fractions = [  # right, left, down, up
        dt * jnp.maximum(vx, 0.0) + diffusion,
        dt * jnp.maximum(-vx, 0.0) + diffusion,
        dt * jnp.maximum(vy, 0.0) + diffusion,
        dt * jnp.maximum(-vy, 0.0) + diffusion,
    ]
    if boundary == "wall":  # closed faces at the edge of the grid
        h, w = mass.shape[-2:]
        col, row = jnp.arange(w), jnp.arange(h)[:, None]
        open_faces = [col < w - 1, col > 0, row < h - 1, row > 0]
        fractions = [jnp.where(o, f, 0.0) for f, o in zip(fractions, open_faces)]
    total = fractions[0] + fractions[1] + fractions[2] + fractions[3]
    limit = jnp.minimum(1.0, MAX_OUTFLOW / jnp.maximum(total, MAX_OUTFLOW))
    right, left, down, up = (mass * (f * limit) for f in fractions)
    kept = mass - (right + left + down + up)  # >= 0: the outflows sum to below the mass
    inflow = _shift(right, 0, 1) + _shift(left, 0, -1) + _shift(down, 1, 0) + _shift(up, -1, 0)
    return kept + inflow


def transport(mass, velocity, cfg: dict):
    """``substeps`` donor-cell substeps of dt / substeps each: mass (..., H, W), velocity
    (..., H, W, 2) as (vy, vx)."""
    n = int(cfg.get("substeps", 1))
    dt = float(cfg.get("dt", 0.5)) / n
    diffusion = float(cfg.get("diffusion", 0.0)) / n
    boundary = cfg.get("boundary", "wall")
    vy, vx = velocity[..., 0], velocity[..., 1]
    for _ in range(n):
        mass = transport_substep(mass, vy, vx, dt, diffusion, boundary)
    return mass


# --------------------------------------------------------------------------- the model


def update(params: dict, state, cfg: dict):
    """The network's new velocity (B, H, W, 2) and hidden channels (B, H, W, hidden)."""
    b, h, w, c = state.shape
    seen = jnp.concatenate(
        [state[..., :HIDDEN_START][..., [MASS, TARGET, 1, 2]], state[..., HIDDEN_START:]], -1
    )
    feats = jnp.concatenate(
        [perceive(seen), state[..., DIRECTION], state[..., PROXIMITY : PROXIMITY + 1]], -1
    )
    x = feats.reshape(b * h * w, -1)
    *hidden, out = params["layers"]
    for layer in hidden:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    y = (x @ out["w"] + out["b"]).reshape(b, h, w, -1)
    velocity = float(cfg.get("max_speed", 1.0)) * jnp.tanh(y[..., :2])
    return velocity, jnp.tanh(state[..., HIDDEN_START:] + y[..., 2:])


def step(params: dict, state, key, cfg: dict):
    """New velocity and hidden channels for every cell; mass and goal as they were (the mass
    moves in :func:`post`, for every cell)."""
    del key  # deterministic; asynchrony is the updates wrapper's fire mask
    velocity, hidden = update(params, state, cfg)
    return jnp.concatenate([state[..., :1], velocity, state[..., GOAL], hidden], -1)


def post(params: dict, before, after, key, cfg: dict):
    """Move the mass along the velocity cells hold after the update (with the training noise
    when :func:`relax` switched it on)."""
    del before
    velocity = after[..., VELOCITY]
    if "velocity_noise" in params:
        velocity = velocity + params["velocity_noise"] * jax.random.normal(
            key, velocity.shape, velocity.dtype
        )
    mass = transport(after[..., MASS], velocity, cfg)
    return after.at[..., MASS].set(mass)


def relax(params: dict, key, step_number, cfg: dict) -> dict:
    """What a training step runs: the params with the velocity noise switched on."""
    del key, step_number
    noise = float(cfg.get("velocity_noise", 0.0))
    return {**params, "velocity_noise": jnp.asarray(noise, jnp.float32)} if noise > 0 else params


def summary(params: dict, cfg: dict) -> dict[str, int]:
    return parameter_count(cfg)


FAMILY = Family(
    init=init,
    step=step,
    validate=validate,
    count=parameter_count,
    summary=summary,
    channels=channels,
    relax=relax,
    post=post,
)
