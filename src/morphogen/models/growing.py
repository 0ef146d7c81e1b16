"""Growing neural CA (Mordvintsev, Randazzo, Niklasson, Levin; Distill 2020).

A state is ``(batch, height, width, channels)`` float32: channels 0-2 are colour (RGB,
premultiplied by alpha), channel 3 is alpha, the rest are hidden. One step::

    p = [s, sobel_x * s, sobel_y * s]           per channel: identity, d/dx, d/dy (3C features,
                                                channel-major: s_0, dx s_0, dy s_0, s_1, ...)
    ds = W2 relu(W1 p + b1) + b2                per cell: 3C -> hidden -> C (``hidden`` lists the
                                                widths of the ReLU layers, the reference's [128])
    s <- s + ds

and then, for every cell whether it fired or not (:func:`alive_mask`, the family's ``post``
hook that :func:`morphogen.updates.wrap` applies after the sync or fire-rate update)::

    s <- s * alive(s_before) * alive(s_after)   alive = 3x3 max-pool of alpha > 0.1

Sobel kernels are the reference's ``outer([1, 2, 1], [-1, 0, 1]) / 8`` and its transpose (x to
the right, y down), applied to the grid padded with zeros (cells outside the grid are empty).
The max-pool treats cells outside the grid as absent. The output layer starts at zero
(``init_output: zero``, the reference): the initial step changes nothing. The per-cell network
is two matrix products over a ``(cells, features)`` layout and the perception is shifted copies of
the grid: on a CPU, 1x1 and depthwise convolutions are several times slower.

The alive masks are computed from the state with its gradient stopped: they are data, so no
gradient passes through the max-pool (whose gradient has no deterministic GPU kernel).

Params: ``{"layers": [{"w": (3C, H), "b": (H,)}, {"w": (H, C), "b": (C,)}]}`` (one entry per
layer); 16 channels and 128 hidden units have 8,336 (the reference's "approximately 8,000").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from morphogen.models import Family, check_model_keys, glorot_mlp

INIT_OUTPUT = ("zero", "random")
ALPHA = 3  # the alpha channel

# The reference's kernels: x to the right (columns), y down (rows).
SOBEL_X = np.outer([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0]) / 8.0
SOBEL_Y = SOBEL_X.T
IDENTITY = np.zeros((3, 3))
IDENTITY[1, 1] = 1.0
KERNELS = np.stack([IDENTITY, SOBEL_X, SOBEL_Y])  # (3, 3, 3): kernel, dy, dx


def layer_sizes(cfg: dict) -> list[int]:
    c = int(cfg["channels"])
    return [3 * c, *[int(h) for h in cfg.get("hidden", [128])], c]


def parameter_count(cfg: dict) -> dict[str, int]:
    sizes = layer_sizes(cfg)
    return {"params_total": sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))}


def validate(cfg: dict) -> None:
    """Raise ValueError naming the model key when the model cannot be built."""
    if int(cfg["channels"]) < ALPHA + 1:
        raise ValueError(f"model.channels must be at least 4 (RGB and alpha), got {cfg['channels']}")
    if any(int(h) < 1 for h in cfg.get("hidden", [128])):
        raise ValueError(f"model.hidden must list widths of at least 1, got {cfg['hidden']}")
    if not 0.0 <= float(cfg.get("alive_threshold", 0.1)) < 1.0:
        raise ValueError(f"model.alive_threshold must be in [0, 1), got {cfg['alive_threshold']}")
    check_model_keys(cfg, {"init_output": (INIT_OUTPUT, "zero")})


def init(key: jax.Array, cfg: dict) -> dict:
    """Hidden layers: Glorot-uniform weights (Keras' default, the reference's); output layer zero
    (``init_output: zero``) or Glorot-uniform; zero biases."""
    validate(cfg)
    zero_out = cfg.get("init_output", "zero") == "zero"
    return {"layers": glorot_mlp(key, layer_sizes(cfg), zero_out)}


def _shifts(x, fill: float):
    """The 3x3 neighbourhood of every cell as 9 shifted copies of x (B, H, W, C), row-major
    (dy, dx in -1, 0, 1), ``fill`` outside the grid."""
    _, h, w, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=fill)
    return [padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def perceive(state):
    """(B, H, W, C) -> (B, H, W, 3C): identity, Sobel x and Sobel y of every channel, in the
    reference's order (channel-major: ``[s_c, dx s_c, dy s_c]`` for c = 0, 1, ...)."""
    shifted = _shifts(state, 0.0)
    dx = sum(float(k) * s for k, s in zip(SOBEL_X.ravel(), shifted) if k != 0.0)
    dy = sum(float(k) * s for k, s in zip(SOBEL_Y.ravel(), shifted) if k != 0.0)
    b, h, w, c = state.shape
    return jnp.stack([state, dx, dy], axis=-1).reshape(b, h, w, 3 * c)


def alive_mask(state, threshold: float = 0.1):
    """(B, H, W, 1) float: 1 where a cell or one of its 8 neighbours has alpha above
    ``threshold``. Computed without a gradient path."""
    alpha = jax.lax.stop_gradient(state[..., ALPHA : ALPHA + 1])
    pooled = jnp.max(jnp.stack(_shifts(alpha, -jnp.inf)), axis=0)
    return (pooled > threshold).astype(state.dtype)


def update(params: dict, state):
    """ds: the network's update of every cell, (B, H, W, C) -> (B, H, W, C)."""
    b, h, w, c = state.shape
    h = perceive(state).reshape(-1, 3 * c)
    *hidden, out = params["layers"]
    for layer in hidden:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    return (h @ out["w"] + out["b"]).reshape(state.shape)


def step(params: dict, state, key, cfg: dict):
    """The residual update of every cell (the alive masking is :func:`post`)."""
    del key  # deterministic; asynchrony is the updates wrapper's fire mask
    return state + update(params, state)


def post(params: dict, before, after, key, cfg: dict):
    """Alive masking, for every cell after the (sync or fire-rate) update: a cell is emptied
    unless its neighbourhood had a living cell both before and after the step."""
    del params, key
    threshold = float(cfg.get("alive_threshold", 0.1))
    return after * alive_mask(before, threshold) * alive_mask(after, threshold)


def summary(params: dict, cfg: dict) -> dict[str, int]:
    return parameter_count(cfg)


FAMILY = Family(
    init=init,
    step=step,
    validate=validate,
    count=parameter_count,
    summary=summary,
    channels=lambda cfg: int(cfg["channels"]),
    post=post,
)
