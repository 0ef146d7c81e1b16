"""Attention NCA: each cell attends over its 3x3 neighbourhood (seed 004; after ViTCA's
localised self-attention, Tesfaldet et al. 2022).

A state is ``(batch, height, width, channels)`` float32 (real values, no range). One step::

    s <- s + noise * xi                       (xi ~ N(0, 1) per cell and channel; noise >= 0)
    q, k, v = s Wq + bq, s Wk + bk, s Wv + bv  (per cell, ``heads`` x ``width`` features)
    a_ij = softmax_j (q_i . k_j / sqrt(width) + r_(j-i))  over the 9 cells j of i's 3x3
                                                       neighbourhood
    s <- s + (sum_j a_ij v_j) Wo + bo          (the residual update)

``r`` is a learned bias per neighbourhood offset and head (a relative position bias, as in ViTCA
and Swin; ``position_bias: false`` leaves it out). Without it attention is by content only, and
on a state that is nearly uniform (every state near a uniform target) every neighbour's key
looks alike: attention is then uniform, ``f`` sees only the neighbourhood mean, and the
difference between a cell and that mean (the small noise added every step) is never corrected;
it accumulates as a random walk. With it, a cell can attend to itself and cancel its own
deviation in one step.

Cells outside the grid are not in the neighbourhood: their scores are masked out of the softmax
(a border cell attends over 6 cells, a corner cell over 4), not filled with zeros that would
still take a share of the attention. Heads attend independently; their outputs are
concatenated before ``Wo``. Everything is matrix products over a ``(cells, features)`` layout
and shifted copies of the key and value maps (no convolution, no loop over cells).

The noise is part of the step (the seed's "small constant noise"): with ``noise`` 0 the step is
deterministic. ``init_output: zero`` starts ``Wo`` and ``bo`` at 0 (the initial step changes
nothing but the noise); ``random`` (the seed's "random weights") draws them like the others:
LeCun-normal weights (variance 1 / fan-in), zero biases.

Params: ``{"q": {"w": (C, H*D), "b": (H*D,)}, "k": ..., "v": ..., "o": {"w": (H*D, C), "b": (C,)},
"position": (9, H)}`` (no ``position`` without the bias; it starts at 0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from morphogen.models import Family, check_model_keys

INIT_OUTPUT = ("zero", "random")
# The 3x3 neighbourhood, row-major; offset 4 is the cell itself.
OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def _sizes(cfg: dict) -> tuple[int, int, int]:
    return int(cfg["channels"]), int(cfg.get("heads", 1)), int(cfg.get("width", 16))


def parameter_count(cfg: dict) -> dict[str, int]:
    c, h, d = _sizes(cfg)
    bias = 9 * h if cfg.get("position_bias", True) else 0
    return {"params_total": 3 * (c * h * d + h * d) + h * d * c + c + bias}


def validate(cfg: dict) -> None:
    """Raise ValueError naming the model key when the model cannot be built."""
    for key in ("channels", "heads", "width"):
        if key in cfg and int(cfg[key]) < 1:
            raise ValueError(f"model.{key} must be at least 1, got {cfg[key]}")
    check_model_keys(cfg, {"init_output": (INIT_OUTPUT, "zero")}, non_negative=("noise",))


def init(key: jax.Array, cfg: dict) -> dict:
    validate(cfg)
    c, h, d = _sizes(cfg)
    kq, kk, kv, ko = jax.random.split(key, 4)

    def dense(k, n_in, n_out, zero=False):
        w = jnp.zeros((n_in, n_out)) if zero else jax.random.normal(k, (n_in, n_out)) / np.sqrt(n_in)
        return {"w": w.astype(jnp.float32), "b": jnp.zeros((n_out,), jnp.float32)}

    zero = cfg.get("init_output", "zero") == "zero"
    params = {
        "q": dense(kq, c, h * d),
        "k": dense(kk, c, h * d),
        "v": dense(kv, c, h * d),
        "o": dense(ko, h * d, c, zero=zero),
    }
    if cfg.get("position_bias", True):
        # every offset 0 but the cell's own, which starts at `self_bias`
        params["position"] = jnp.zeros((9, h), jnp.float32).at[4].set(float(cfg.get("self_bias", 0.0)))
    return params


def neighbourhood(x):
    """(B, H, W, F) -> (B, H, W, 9, F): each cell's 3x3 neighbourhood (row-major, the cell itself
    at index 4), zeros outside the grid. Shifted copies, cells leading: on CPU this layout is
    about 4x faster (forward and backward) than the offsets leading or an unfold."""
    b, h, w, f = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return jnp.stack([padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in OFFSETS], axis=3)


def neighbourhood_mask(height: int, width: int) -> np.ndarray:
    """(H, W, 9) bool: which of a cell's 9 neighbourhood offsets lie inside the grid."""
    y, x = np.mgrid[:height, :width]
    return np.stack(
        [(y + dy >= 0) & (y + dy < height) & (x + dx >= 0) & (x + dx < width) for dy, dx in OFFSETS],
        axis=-1,
    )


def _qkv(params: dict, state, cfg: dict):
    """Per cell: queries (B, H, W, heads, width) and the neighbourhood's keys and values
    (B, H, W, 9, heads, width)."""
    c, h, d = _sizes(cfg)
    b, hh, ww, _ = state.shape
    flat = state.reshape(-1, c)
    w = jnp.concatenate([params["q"]["w"], params["k"]["w"], params["v"]["w"]], axis=1)
    bias = jnp.concatenate([params["q"]["b"], params["k"]["b"], params["v"]["b"]])
    q, k, v = jnp.split((flat @ w + bias).reshape(b, hh, ww, 3 * h * d), 3, axis=-1)
    keys = neighbourhood(k).reshape(b, hh, ww, 9, h, d)
    values = neighbourhood(v).reshape(b, hh, ww, 9, h, d)
    return q.reshape(b, hh, ww, h, d), keys, values


def attention_weights(params: dict, state, cfg: dict, qkv=None):
    """(B, H, W, 9, heads): every cell's attention over its neighbourhood (0 outside the grid)."""
    _, _, d = _sizes(cfg)
    q, keys, _ = qkv if qkv is not None else _qkv(params, state, cfg)
    scores = jnp.einsum("byxhd,byxkhd->byxkh", q, keys) / np.sqrt(d)
    if "position" in params:
        scores = scores + params["position"]
    inside = jnp.asarray(neighbourhood_mask(*state.shape[1:3]))[None, :, :, :, None]
    return jax.nn.softmax(jnp.where(inside, scores, -jnp.inf), axis=3)


def update(params: dict, state, cfg: dict):
    """f(s): the residual update, (B, H, W, C) -> (B, H, W, C)."""
    c, h, d = _sizes(cfg)
    qkv = _qkv(params, state, cfg)
    weights = attention_weights(params, state, cfg, qkv)
    mixed = jnp.einsum("byxkh,byxkhd->byxhd", weights, qkv[2]).reshape(-1, h * d)
    return (mixed @ params["o"]["w"] + params["o"]["b"]).reshape(state.shape)


def add_noise(state, key, cfg: dict):
    sigma = float(cfg.get("noise", 0.0))
    if sigma == 0.0:
        return state
    return state + sigma * jax.random.normal(key, state.shape, state.dtype)


def step(params: dict, state, key, cfg: dict):
    """One update of every cell: the small noise, then ``s + f(s)``."""
    state = add_noise(state, key, cfg)
    return state + update(params, state, cfg)


def summary(params: dict, cfg: dict) -> dict[str, int]:
    return parameter_count(cfg)


FAMILY = Family(
    init=init,
    step=step,
    validate=validate,
    count=parameter_count,
    summary=summary,
    channels=lambda cfg: int(cfg["channels"]),
)
