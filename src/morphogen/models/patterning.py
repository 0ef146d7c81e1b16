"""Lateral-inhibition patterning: cells on a line whose state follows a learned regulatory
function of their neighbours' mean (seed 001).

N cells with states ``s_i`` in [0, 1] on a line. Each cell sees the mean of its neighbours,
``sbar_i = (s_{i-1} + s_{i+1}) / 2`` (an end cell: its one neighbour), and follows the stochastic
differential equation ``ds = f(sbar) dt + sigma dW``, integrated by Euler-Maruyama::

    s <- s + f(sbar) dt + sigma sqrt(dt) xi,   xi ~ N(0, 1) per cell and step

The regulatory function ``f`` is a small MLP (1 -> hidden... -> 1, tanh hidden layers, linear
output; 1 -> 8 -> 8 -> 1 has 97 parameters). A decreasing ``f`` through ``sbar = 0.5`` is lateral
inhibition: a cell whose neighbours are high goes low, and the line settles into alternating
fates. With ``boundary: fixed`` the two end cells are held at 0 after every step.

**Keeping states in [0, 1].** The source clipped ``s`` to [0, 1] after each step. The clip's
derivative is 0 at the walls, where most trajectories end, and that cut the gradient of
backpropagation to exactly 0 on most training steps. The forward dynamics here are the source's
(the clip, so every method trains the same system), and the backward pass takes the clip's
derivative as 1 (a straight-through clip): a state pinned at a wall passes its gradient on as if
the wall were not there, so the gradient says which way the drift should change to move the
state off the wall. (A reflecting wall, whose exact derivative is -1, was tried first: pushing
harder into it lands the state further inside, so backpropagation learned ever larger drifts
into the walls, |f| near 10, and the line settled into one fate on half of the seeds.)

**The network.** It reads ``sbar - 1/2``: lateral inhibition's threshold is at the centre of the
input, and with zero biases an initial ``f`` is odd about ``sbar = 1/2``. Its output layer
starts at zero (``init_output: zero``, the default): the initial ``f`` is 0, every cell diffuses,
and the first gradient steps choose the sign of the slope instead of descending from a random
one (an increasing random ``f`` makes the line bistable, a local optimum that backpropagation
rarely left). ``init_output: random`` draws it like the hidden layers.

Params: ``{"layers": [{"w": (n_in, n_out), "b": (n_out,)}, ...]}``. A state is ``(batch, cells)``
float32; a population of params (evolution strategies) is the same pytree with a leading axis.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from morphogen.models import Family, check_model_keys

BOUNDARIES = ("free", "fixed")
INIT_OUTPUT = ("zero", "random")


def layer_sizes(cfg: dict) -> list[int]:
    return [1, *[int(h) for h in cfg.get("hidden", [8, 8])], 1]


def parameter_count(cfg: dict) -> dict[str, int]:
    sizes = layer_sizes(cfg)
    return {"parameters": sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))}


def validate(cfg: dict) -> None:
    """Raise ValueError naming the model key when the model cannot be built."""
    check_model_keys(
        cfg, {"boundary": (BOUNDARIES, "free"), "init_output": (INIT_OUTPUT, "zero")}, non_negative=("noise",)
    )
    if int(cfg["cells"]) < 3:
        raise ValueError(f"model.cells must be at least 3, got {cfg['cells']}")
    if float(cfg["dt"]) <= 0:
        raise ValueError(f"model.dt must be > 0, got {cfg['dt']}")


def init(key: jax.Array, cfg: dict) -> dict:
    """LeCun-normal weights (variance 1 / fan-in) and zero biases, as Flax's Dense; the output
    layer's weights zero unless ``init_output: random``."""
    validate(cfg)
    sizes = layer_sizes(cfg)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = jax.random.normal(jax.random.fold_in(key, i), (n_in, n_out), jnp.float32) / math.sqrt(n_in)
        if i == len(sizes) - 2 and cfg.get("init_output", "zero") == "zero":
            w = jnp.zeros_like(w)
        layers.append({"w": w, "b": jnp.zeros((n_out,), jnp.float32)})
    return {"layers": layers}


def regulation(params: dict, sbar):
    """The regulatory function f(sbar), element-wise on any shape (the network reads sbar - 1/2)."""
    x = sbar[..., None] - 0.5
    layers = params["layers"]
    for layer in layers[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    x = x @ layers[-1]["w"] + layers[-1]["b"]
    return x[..., 0]


def neighbour_mean(s):
    """(..., N) -> (..., N): the mean of each cell's neighbours; an end cell has one."""
    left = jnp.concatenate([s[..., 1:2], s[..., :-1]], axis=-1)  # s_{i-1}; cell 0 reads s_1
    right = jnp.concatenate([s[..., 1:], s[..., -2:-1]], axis=-1)  # s_{i+1}; cell N-1 reads s_{N-2}
    return 0.5 * (left + right)


def clip_straight_through(x):
    """``x`` clipped to [0, 1]; its derivative taken as 1 everywhere (see the module's notes)."""
    return x + jax.lax.stop_gradient(jnp.clip(x, 0.0, 1.0) - x)


def step(params: dict, state, key, cfg: dict):
    """One Euler-Maruyama step of every cell: (B, N) -> (B, N)."""
    dt = float(cfg["dt"])
    drift = regulation(params, neighbour_mean(state))
    x = state + drift * dt
    sigma = float(cfg.get("noise", 0.0))
    if sigma > 0:
        x = x + sigma * math.sqrt(dt) * jax.random.normal(key, state.shape, state.dtype)
    x = clip_straight_through(x)
    if cfg.get("boundary", "free") == "fixed":
        x = x.at[..., 0].set(0.0).at[..., -1].set(0.0)
    return x


def summary(params: dict, cfg: dict) -> dict[str, float]:
    """Numbers of the models table: the parameter count and the learned f at a few points."""
    grid = jnp.asarray([0.0, 0.5, 1.0], jnp.float32)
    f = np.asarray(regulation(params, grid))
    return {
        **parameter_count(cfg),
        "f_at_0": float(f[0]),
        "f_at_half": float(f[1]),
        "f_at_1": float(f[2]),
    }


# The points at which training logs f (train.csv columns f@0.00 ... f@1.00) and the trained
# model's curve is drawn.
PROBE_POINTS = np.round(np.linspace(0.0, 1.0, 21), 2)
CURVE_POINTS = np.round(np.linspace(0.0, 1.0, 101), 2)


def probe(params: dict, cfg: dict) -> dict:
    """f at 21 points of [0, 1], logged per training step (the animation of f over training)."""
    f = regulation(params, jnp.asarray(PROBE_POINTS, jnp.float32))
    return {f"f@{x:.2f}": f[i] for i, x in enumerate(PROBE_POINTS)}


def curves(params: dict, cfg: dict) -> dict:
    """The learned regulatory function on 101 points of [0, 1]."""
    f = np.asarray(regulation(params, jnp.asarray(CURVE_POINTS, jnp.float32)), np.float32)
    return {"regulation": (("sbar",), f, {"sbar": CURVE_POINTS.astype(np.float32)})}


FAMILY = Family(
    init=init,
    step=step,
    validate=validate,
    count=parameter_count,
    summary=summary,
    channels=lambda cfg: int(cfg["cells"]),
    probe=probe,
    curves=curves,
)
