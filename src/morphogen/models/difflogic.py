"""Differentiable Logic Cellular Automata (Miotti et al., 2025).

A cell's rule is a circuit of two-input logic gates with fixed random wiring. Each gate holds 16
logits over the 16 binary operations; training ("soft" mode) uses the softmax mixture of their
real-valued relaxations, evaluation ("hard" mode) the argmax operation on exact booleans.

Speed comes from two facts and three hand-written gradients:

* Every relaxation is affine in ``[1, a, b, ab]``, so a softmax mixture of all 16 is one affine
  map whose four coefficients are computed once per training step, not once per cell:
  ``y = c0 + c1*a + c2*b + c3*a*b``.
* Layers are evaluated for all cells at once on a ``(features, cells)`` layout: a layer's wiring
  is a row gather, its gates an element-wise expression broadcast over cells.
* Three gradients are written by hand where autodiff's run element by element on CPU: the
  first perception layer's (:func:`kernel_gate`: its inputs are shared by the kernels, and the
  reduction over the kernel axis becomes a contraction) and those of the wiring's gathers
  (:mod:`morphogen.models.logic_gather`): from a few rows, a product with the wiring's one-hot
  matrix; per kernel, masked sums over the few output rows; neither a scatter-add.

Hard rollouts additionally pack 32 cells into the bits of one ``uint32`` word and evaluate each
gate as a bitwise expression (its algebraic normal form), 32 cells per instruction.

Parameters are a pytree ``{"logits": ..., "wires": ...}``; the wires are integer arrays that are
never trained (training differentiates floating leaves only). A gate's logits are 16, one per
operation (``model.gate_parametrisation: operations``, the reference), or 4, one per input
combination (``truth_table``, after Rüttgers et al., 2025: the logit of the gate's output there
being 1); :func:`gate_logits` turns the latter into the 16 operations' log-probabilities that
every method and the hard circuit read, so the two differ in what training descends only.
With ``perception_wiring: learned`` a third entry, ``"wire_logits"``, holds per perception
layer after the first a ``(2, K, out, in)`` logit per gate input and input it may read:
training mixes the inputs by their softmax (or reads the argmax, straight-through, where the
method makes a gate discrete), and the deployed circuit reads the argmax
(:func:`deployed_wires`).

Training methods (``model.relaxation``), applied once per training step by :func:`relax`:

* ``softmax`` (the reference): every gate is the softmax mixture of its 16 relaxations; the
  deployed circuit is its argmax, which need not do what the mixture learnt (the gap).
* ``gumbel_st`` (after Yousefi et al., NeurIPS 2025): Gumbel noise on the logits; the forward
  pass runs the one operation ``argmax(logits + g)`` of every gate (a discrete circuit, sampled
  once per training step), the backward pass the gradient of ``softmax((logits + g) / T)``.
* ``hard_st``: the forward pass runs the argmax circuit itself (the one that is deployed, so
  the loss that training descends is the deployed circuit's), the backward pass the gradient of a
  softmax whose temperature adapts per gate to its confidence (see :func:`adaptive_temperature`):
  a confident gate's plain softmax passes almost no gradient, so it would never leave its
  initial choice.
* ``mixed_st``: each gate runs its argmax (straight-through) with probability ``hard_fraction``
  (a fresh draw per gate and training step, the share rising over ``hard_fraction_steps``), else
  its softmax mixture: the mixture must keep working whichever of its gates are made discrete.
  With ``hard_choice: confident`` the share is not drawn at random: it is each layer's gates
  whose top operation leads most, so the undecided gates are the last to run discrete.

Two options change softmax and mixed_st: ``noise_scale`` adds Gumbel noise to the logits (the
mixture becomes a Gumbel softmax, mixed_st's discrete gates samples), and ``backward_mass``
passes back the gradient of a softmax whose temperature keeps that mass off each gate's top
operation (:func:`adaptive_temperature`), the forward pass unchanged.

Independently of the relaxation, ``round_states`` makes each step read its input state rounded
to {0, 1} (straight-through: the gradient passes as if unrounded), as the deployed circuit does:
a relaxed circuit then cannot carry analog values from one step to the next, which is where most
of softmax's gap comes from; ``initial_perception`` picks what the first perception layer's gates
start as (wires to their neighbour, the reference, or to the centre cell).

The straight-through methods are straight-through per gate (:func:`straight_through_gate`):
the forward value is the chosen operation's, exactly; the backward pass uses the relaxation's
derivatives at the same inputs, towards its weights and towards the gate's inputs, so a chosen
constant or wire does not cut the gradient of the gates upstream.

After training, :func:`polish` (``training.polish``; the searches are in ``logic_polish``) can
repair the trained circuit as the discrete circuit it is: one gate switch at a time, ranked by
the gradient, or by neutral-drift evolution of its gates' operations.

A relaxed params pytree is ``{"weights", "surrogate", "wires"}``: per gate, the one-hot
operation of the forward pass and the 16 weights of the relaxation of the backward pass.

Shapes: a state is ``(batch, height, width, channels)`` float32 with values in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from morphogen import netlist
from morphogen.models import Family
from morphogen.models.logic_gather import kernel_rows, mixed_rows, rows
from morphogen.models.logic_polish import evolve, repair
from morphogen.models.logic_wiring import first_kernel_wires, kernel_wires, unique_pairs, unique_wires

PASS_THROUGH_GATE = 3  # "A": the gate index that starts with a large logit
CENTRE_GATE = 5  # "B": the first perception layer's wire to the centre cell
GATE_NAMES = netlist.GATE_NAMES
WIRE_GATES = (3, 5)  # "A" and "B": a gate that only copies an input is a wire

# Gate i's truth table: bit 3 is f(0,0), bit 2 f(0,1), bit 1 f(1,0), bit 0 f(1,1).
TRUTH_TABLES = np.array(
    [[(i >> 3) & 1, (i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(16)], dtype=np.int64
)  # columns: f(0,0), f(0,1), f(1,0), f(1,1)


def _affine_coefficients() -> np.ndarray:
    """(16, 4) real coefficients of each gate's relaxation on ``[1, a, b, ab]``."""
    f00, f01, f10, f11 = TRUTH_TABLES.T
    # Multilinear interpolation of the truth table.
    return np.stack([f00, f10 - f00, f01 - f00, f11 - f10 - f01 + f00], axis=1).astype(np.float32)


def _anf_coefficients() -> np.ndarray:
    """(16, 4) GF(2) coefficients: f = g0 ^ g1&a ^ g2&b ^ g3&a&b."""
    f00, f01, f10, f11 = TRUTH_TABLES.T
    return np.stack([f00, f10 ^ f00, f01 ^ f00, f11 ^ f10 ^ f01 ^ f00], axis=1).astype(np.uint32)


AFFINE = _affine_coefficients()
ANF = _anf_coefficients()


def gate_logits(z):
    """A gate's logits over the 16 operations: ``(..., 16)`` logits as they are; ``(..., 4)``
    truth-table logits (``model.gate_parametrisation: truth_table``, one per input combination
    (0,0), (0,1), (1,0), (1,1), each the logit of the gate's output there being 1) as the
    log-probabilities of the 16 operations that independent output bits of probability
    ``sigmoid(z)`` make. Their softmax is that product distribution, whose mixture is the
    multilinear interpolation of the truth table ``sigmoid(z)``; their argmax the operation whose
    bits are ``z > 0``."""
    if z.shape[-1] == 16:
        return z
    table = jnp.asarray(TRUTH_TABLES, z.dtype)  # (16, 4)
    return jax.nn.log_sigmoid(z) @ table.T + jax.nn.log_sigmoid(-z) @ (1 - table).T


def relaxed_gate(op: int, a, b):
    """The real-valued relaxation of gate ``op`` (e.g. XOR = a + b - 2ab)."""
    c = AFFINE[op]
    return c[0] + c[1] * a + c[2] * b + c[3] * a * b


# --------------------------------------------------------------------------- config


def layer_sizes(cfg: dict) -> tuple[list[int], list[int]]:
    """(perception sizes incl. the 9 patch inputs, update sizes incl. the input width)."""
    channels = cfg["channels"]
    perception = [9, *cfg["perception_layers"]]
    update_in = channels + cfg["perception_kernels"] * channels * perception[-1]
    return perception, [update_in, *cfg["update_layers"]]


def gate_count(cfg: dict) -> dict[str, int]:
    """Gates with their own logits: perception (per kernel), update, and total."""
    perception, update = layer_sizes(cfg)
    n_perc = cfg["perception_kernels"] * sum(perception[1:])
    n_upd = sum(update[1:])
    return {"perception": n_perc, "update": n_upd, "total": n_perc + n_upd}


def validate(cfg: dict) -> None:
    """Raise ValueError naming the model key when a circuit cannot be built."""
    perception, update = layer_sizes(cfg)
    if perception[1] != 8:
        raise ValueError(f"model.perception_layers[0] must be 8 (first_kernel wiring), got {perception[1]}")
    for name, sizes, first in (("perception_layers", perception, 1), ("update_layers", update, 0)):
        for i, (n_in, n_out) in enumerate(zip(sizes[first:-1], sizes[first + 1 :])):
            if 2 * n_out < n_in:
                raise ValueError(
                    f"model.{name}[{i + first}]={n_out} is too narrow for {n_in} inputs ('unique' wiring "
                    f"needs at least {math.ceil(n_in / 2)})"
                )
            try:
                unique_pairs(n_in, n_out)
            except ValueError:
                raise ValueError(
                    f"model.{name}[{i + first}]={n_out} is too wide for {n_in} inputs: 'unique' wiring "
                    f"has at most {n_in * (n_in - 1) // 2} distinct pairs of them"
                ) from None
    method = cfg.get("relaxation", "softmax")
    if method not in RELAXATIONS:
        raise ValueError(f"model.relaxation must be one of {', '.join(RELAXATIONS)}, got {method!r}")
    form = cfg.get("gate_parametrisation", "operations")
    if form not in PARAMETRISATIONS:
        raise ValueError(
            f"model.gate_parametrisation must be one of {', '.join(PARAMETRISATIONS)}, got {form!r}"
        )
    choice = cfg.get("hard_choice", "random")
    if choice not in HARD_CHOICES:
        raise ValueError(f"model.hard_choice must be one of {', '.join(HARD_CHOICES)}, got {choice!r}")
    wiring = cfg.get("perception_wiring", "shared")
    if wiring not in WIRINGS:
        raise ValueError(f"model.perception_wiring must be one of {', '.join(WIRINGS)}, got {wiring!r}")
    if wiring != "shared" and len(perception) < 3:
        raise ValueError(f"model.perception_wiring: {wiring} needs at least two perception_layers")
    t0, t1 = (
        float(cfg.get("temperature", 1.0)),
        float(cfg.get("temperature_final", cfg.get("temperature", 1.0))),
    )
    if t0 <= 0 or t1 <= 0:
        raise ValueError(f"model.temperature and model.temperature_final must be > 0, got {t0} and {t1}")
    if update[-1] != cfg["channels"]:
        raise ValueError(
            f"model.update_layers must end with channels={cfg['channels']} (the full new state), "
            f"got {update[-1]}"
        )


# --------------------------------------------------------------------------- params


def init(key: jax.Array, cfg: dict) -> dict:
    """Logits with the pass-through initialisation and fixed random wiring."""
    validate(cfg)
    perception, update = layer_sizes(cfg)
    k_wire, _ = jax.random.split(key)
    pass_value = float(cfg.get("pass_through_logit", 10.0))
    n_kernels = cfg["perception_kernels"]
    truth_table = cfg.get("gate_parametrisation", "operations") == "truth_table"

    def logits(shape, gate=PASS_THROUGH_GATE):
        if truth_table:  # the gate's truth table, each output bit's logit +-pass_value
            return jnp.asarray(
                np.broadcast_to(pass_value * (2.0 * TRUTH_TABLES[gate] - 1.0), (*shape, 4)), jnp.float32
            )
        z = np.zeros((*shape, 16), np.float32)
        z[..., gate] = pass_value
        return jnp.asarray(z)

    # The first perception layer's gates read (a neighbour, the centre). As wires to the
    # neighbour (the reference) the initial circuit shifts the grid towards its zero border
    # and reaches the all-zero state within 20 steps on 16x16; as wires to the centre
    # ("centre") it keeps the start state.
    first = CENTRE_GATE if cfg.get("initial_perception", "neighbour") == "centre" else PASS_THROUGH_GATE

    wires: dict[str, list] = {"perception": [], "update": []}
    out: dict[str, list] = {"perception": [], "update": []}
    # per_kernel: the second perception layer's pairs are drawn per kernel, from keys of their
    # own (the shared wiring's draws stay as they are); learned: every perception layer after
    # the first is drawn per kernel and starts as the wiring that its wire logits choose
    wiring = cfg.get("perception_wiring", "shared")
    wire_logits = []
    for i, (n_in, n_out) in enumerate(zip(perception[:-1], perception[1:])):
        k = jax.random.fold_in(k_wire, i)
        if i == 0:
            a, b = first_kernel_wires(k, n_out)
        elif (i == 1 and wiring == "per_kernel") or wiring == "learned":
            a, b = kernel_wires(jax.random.fold_in(k_wire, 500 + i), n_in, n_out, n_kernels)
        else:
            a, b = unique_wires(k, n_in, n_out)
        wires["perception"].append(jnp.stack([jnp.asarray(a), jnp.asarray(b)]))
        out["perception"].append(logits((n_kernels, n_out), first if i == 0 else PASS_THROUGH_GATE))
        if i > 0 and wiring == "learned":
            # (2, K, out, in): per gate input, a logit per input it may read, the drawn one high
            chosen = np.stack([a, b])
            z = np.zeros((*chosen.shape, n_in), np.float32)
            np.put_along_axis(z, chosen[..., None], float(cfg.get("wire_logit", 3.0)), axis=-1)
            wire_logits.append(jnp.asarray(z))
    for i, (n_in, n_out) in enumerate(zip(update[:-1], update[1:])):
        k = jax.random.fold_in(k_wire, 1000 + i)
        a, b = unique_wires(k, n_in, n_out)
        wires["update"].append(jnp.stack([jnp.asarray(a), jnp.asarray(b)]))
        out["update"].append(logits((n_out,)))
    if wire_logits:
        return {"logits": out, "wires": wires, "wire_logits": {"perception": wire_logits}}
    return {"logits": out, "wires": wires}


def harden(params: dict) -> dict:
    """Params whose softmax is exactly the one-hot argmax: soft code, hard circuit."""

    def one(z):
        return jnp.where(jax.nn.one_hot(jnp.argmax(gate_logits(z), -1), 16, dtype=bool), 0.0, -jnp.inf)

    return {"logits": jax.tree.map(one, params["logits"]), "wires": deployed_wires(params)}


def deployed_wires(params: dict) -> dict:
    """The wiring that the hard circuit runs: the fixed wires, with each learned perception
    layer's (``wire_logits``) replaced by the argmax of its logits, ``(2, K, out)`` per kernel."""
    learned = params.get("wire_logits")
    if not learned:
        return params["wires"]
    chosen = [jnp.argmax(z, -1).astype(jnp.int32) for z in learned["perception"]]
    first = len(params["wires"]["perception"]) - len(chosen)
    return {
        "perception": [*params["wires"]["perception"][:first], *chosen],
        "update": params["wires"]["update"],
    }


def hard_ops(params: dict) -> dict:
    """The argmax gate index of every gate (the circuit that hard mode runs)."""
    return jax.tree.map(lambda z: jnp.argmax(gate_logits(z), -1), params["logits"])


def _coefficients(weights):
    """(..., 16) mixture weights -> (..., 4) affine coefficients of the mixture (exact for one-hot)."""
    return weights @ jnp.asarray(AFFINE)


def _layer_weights(params: dict, part: str) -> list:
    """Per layer of ``part``: (the (..., 16) gate weights of the forward pass, the weights of
    the relaxation whose gradient the backward pass uses, or None for the forward's own)."""
    if "weights" in params:
        surrogate = (
            params["surrogate"][part] if params.get("surrogate") else [None] * len(params["weights"][part])
        )
        return list(zip(params["weights"][part], surrogate))
    return [(jax.nn.softmax(gate_logits(z), axis=-1), None) for z in params["logits"][part]]


def _gate(c, a, b):
    """The affine form of a gate mixture: c0 + c1 a + c2 b + c3 a b (coefficients (..., 4))."""
    return c[..., 0] + a * (c[..., 1] + c[..., 3] * b) + c[..., 2] * b


def _sum_to(x, shape):
    """Sum ``x`` over the axes that were broadcast from ``shape``."""
    x = jnp.sum(x, axis=tuple(range(x.ndim - len(shape)))) if x.ndim > len(shape) else x
    axes = tuple(i for i, (n, m) in enumerate(zip(shape, x.shape)) if n == 1 and m != 1)
    return jnp.sum(x, axis=axes, keepdims=True) if axes else x


@jax.custom_vjp
def straight_through_gate(hard, soft, a, b):
    """The gate of coefficients ``hard`` forward (exactly); backward, the gradient of the gate of
    coefficients ``soft`` at the same inputs: to ``soft`` (hence to the logits) and to the
    inputs ``a``, ``b`` (hence to the gates upstream). Straight-through per gate: a chosen gate
    that ignores an input (a constant, a wire) still passes back the gradient its relaxation
    has for that input, so the gradient reaches every gate that the soft mixture's reaches."""
    return _gate(hard, a, b)


def _stg_fwd(hard, soft, a, b):
    return _gate(hard, a, b), (soft, a, b)


def _stg_bwd(res, g):
    soft, a, b = res
    shape = soft.shape[:-1]
    d_soft = jnp.stack(
        [_sum_to(g, shape), _sum_to(g * a, shape), _sum_to(g * b, shape), _sum_to(g * a * b, shape)], -1
    )
    d_a = _sum_to(g * (soft[..., 1] + soft[..., 3] * b), a.shape)
    d_b = _sum_to(g * (soft[..., 2] + soft[..., 3] * a), b.shape)
    return jnp.zeros(soft.shape, soft.dtype), d_soft, d_a, d_b


straight_through_gate.defvjp(_stg_fwd, _stg_bwd)


def _rows_to(d, x):
    """``d`` summed to the rows of ``x``: one row (an input that :func:`_rows` left to
    broadcast) gets the sum of every row of ``d``, added row by row (fast on CPU, unlike a
    reduction over the leading axis)."""
    if x.shape[0] == d.shape[0]:
        return d
    total = d[0]
    for i in range(1, d.shape[0]):
        total = total + d[i]
    return total[None]


@jax.custom_vjp
def kernel_gate(hard, soft, a, b):
    """The first perception layer: gate ``o`` of every kernel ``k`` on one pair of inputs per
    gate shared by the kernels; coefficients ``(out, K, 4)``, inputs ``(out, C, N)`` -> ``(out,
    K, C, N)``. The gate of coefficients ``hard`` forward, the gradient of the gate of
    coefficients ``soft`` backward (:func:`straight_through_gate`; the same coefficients give
    the exact gradient).

    Autodiff of the broadcast form reduces the output's gradient over the kernel axis, a middle
    axis, which XLA's CPU backend does one element at a time (about 20x the forward's time); here
    that reduction is a contraction (a matrix product)."""
    return _gate(hard[:, :, None, None, :], a[:, None], b[:, None])


def _kg_fwd(hard, soft, a, b):
    return kernel_gate(hard, soft, a, b), (soft, a, b)


def _kg_bwd(res, g):
    soft, a, b = res
    ab = a * b
    d_soft = jnp.stack(
        [
            jnp.sum(g, axis=(2, 3)),
            jnp.einsum("okcn,ocn->ok", g, a),
            jnp.einsum("okcn,ocn->ok", g, b),
            jnp.einsum("okcn,ocn->ok", g, ab),
        ],
        -1,
    )
    # the output's gradient contracted with each coefficient over the kernels: (out, C, N)
    g1, g2, g3 = (jnp.einsum("ok,okcn->ocn", soft[..., j], g) for j in (1, 2, 3))
    return jnp.zeros(soft.shape, soft.dtype), d_soft, _rows_to(g1 + g3 * b, a), _rows_to(g2 + g3 * a, b)


kernel_gate.defvjp(_kg_fwd, _kg_bwd)


def _layer(w, surrogate, a, b, expand):
    """One layer's gates on inputs ``a``, ``b``; ``expand`` shapes (out, 4) coefficients to
    broadcast against the inputs."""
    coef = expand(_coefficients(w))
    if surrogate is None:
        return _gate(coef, a, b)
    return straight_through_gate(coef, expand(_coefficients(surrogate)), a, b)


# --------------------------------------------------------------------------- training methods

RELAXATIONS = ("softmax", "gumbel_st", "hard_st", "mixed_st")
HARD_CHOICES = ("random", "confident")
PARAMETRISATIONS = ("operations", "truth_table")
WIRINGS = ("shared", "per_kernel", "learned")


def _progress(cfg: dict, name: str, step) -> jax.Array:
    """How far the schedule ``name`` is at training step ``step``, in [0, 1]: 0 until
    ``<name>_start`` (default 0), then rising linearly to 1 over ``<name>_steps`` steps."""
    start = int(cfg.get(f"{name}_start", 0))
    n = max(1, int(cfg.get(f"{name}_steps", 1)))
    return jnp.clip((jnp.asarray(step, jnp.float32) - start) / n, 0.0, 1.0)


def temperature_at(cfg: dict, step) -> jax.Array:
    """The relaxation temperature at training step ``step``: ``temperature`` until
    ``temperature_start``, then decaying geometrically to ``temperature_final`` over
    ``temperature_steps`` steps, then held."""
    t0 = float(cfg.get("temperature", 1.0))
    t1 = float(cfg.get("temperature_final", t0))
    return jnp.asarray(t0, jnp.float32) * (t1 / t0) ** _progress(cfg, "temperature", step)


def hard_fraction_at(cfg: dict, step) -> jax.Array:
    """mixed_st: the share of gates that run their argmax at training step ``step``: 0 until
    ``hard_fraction_start``, then rising linearly to ``hard_fraction`` over
    ``hard_fraction_steps`` steps, then held."""
    return float(cfg.get("hard_fraction", 0.5)) * _progress(cfg, "hard_fraction", step)


def adaptive_temperature(logits, temperature, target_mass: float):
    """Per gate, a backward temperature at least ``temperature`` and high enough that the
    softmax leaves about ``target_mass`` of its mass off the chosen gate (no gradient flows
    through it).

    The softmax Jacobian of a gate whose top logit leads by a margin ``d`` is about
    ``exp(-d / T) / T``: a confident gate (the pass-through start has ``d = 10``) passes almost
    no gradient at ``T = 1``. With ``T = d / log(15 / target_mass)`` the other 15 gates keep
    about ``target_mass`` between them, whatever the margin, so the gradient keeps flowing and
    says which gate to switch to; the forward pass is not touched, so this costs no gap.
    """
    top2 = jax.lax.top_k(logits, 2)[0]
    margin = jax.lax.stop_gradient(top2[..., 0] - top2[..., 1])
    needed = margin / math.log(15.0 / target_mass)
    return jnp.maximum(temperature, needed)[..., None]


def relax(params: dict, key: jax.Array, step, cfg: dict) -> dict:
    """The params one training step runs, for the method ``cfg["relaxation"]`` (softmax by
    default; see the module docstring). ``key`` draws the method's randomness once per training
    step (gumbel_st's noise, mixed_st's choice of hard gates); ``step`` sets the schedules."""
    method = cfg.get("relaxation", "softmax")
    if method not in RELAXATIONS:
        raise ValueError(f"model.relaxation must be one of {RELAXATIONS}, got {method!r}")
    tau = temperature_at(cfg, step)
    noise = cfg.get("noise_scale")
    noise = float(1.0 if noise is None and method == "gumbel_st" else noise or 0.0)
    mass = cfg.get("backward_mass")
    mass = float(0.1 if mass is None and method == "hard_st" else mass or 0.0)
    plain = "temperature" not in cfg and "temperature_final" not in cfg and not noise and not mass
    state_noise = float(cfg.get("state_noise") or 0.0)
    if method == "softmax" and plain and not state_noise:
        return params  # the reference: temperature 1
    leaves, tree = jax.tree.flatten(params["logits"])
    leaves = [gate_logits(z) for z in leaves]
    keys = jax.random.split(key, len(leaves)) if key is not None else [None] * len(leaves)

    def noisy(z, k):
        # Gumbel noise on the logits: the mixture (or the argmax) becomes a sample; gumbel_st
        # draws it from the gate layer's key, the others leave that key to mixed_st's choice
        if not noise:
            return z
        k = k if method == "gumbel_st" else jax.random.fold_in(k, 1)
        return z + noise * jax.random.gumbel(k, z.shape, z.dtype)

    def backward(zz, soft):
        # the relaxation whose gradient the step passes back: the forward's own softmax, or one
        # whose temperature keeps `mass` off each gate's top operation
        return jax.nn.softmax(zz / adaptive_temperature(zz, tau, mass), axis=-1) if mass else soft

    forward, surrogate = [], []
    for z, k in zip(leaves, keys):
        zz = noisy(z, k)
        soft = jax.nn.softmax(zz / tau, axis=-1)
        if method == "softmax":
            forward.append(soft)
        elif method == "mixed_st":
            # each gate runs its argmax with probability p (straight-through), else its mixture
            pick = _hard_pick(zz, k, hard_fraction_at(cfg, step), cfg.get("hard_choice", "random"))
            forward.append(jnp.where(pick, jax.nn.one_hot(jnp.argmax(zz, axis=-1), 16, dtype=z.dtype), soft))
        else:  # gumbel_st, hard_st: the (sampled) argmax circuit
            forward.append(jax.nn.one_hot(jnp.argmax(zz, axis=-1), 16, dtype=z.dtype))
        surrogate.append(backward(zz, soft))
    out = {
        "weights": jax.tree.unflatten(tree, forward),
        "surrogate": None if method == "softmax" and not mass else jax.tree.unflatten(tree, surrogate),
        "wires": params["wires"],
    }
    if params.get("wire_logits"):
        out["wire_weights"] = {
            "perception": _relaxed_wires(params["wire_logits"]["perception"], key, step, cfg)
        }
    if state_noise:
        out["state_noise"] = state_noise  # a Python float: the training rollout's steps read it
    return out


def _hard_pick(z, key, share, choice: str):
    """mixed_st: which gates of one layer's ``(..., 16)`` logits run their argmax in this
    training step, as a ``(..., 1)`` mask: a fresh random ``share`` of them (``random``), or the
    ``share`` of them whose top operation leads its runner-up by most (``confident``; ties,
    such as the pass-through start's, broken at random), so the least decided gates stay
    relaxed longest and the others run as the circuit that will be deployed."""
    if choice == "random":
        return jax.random.bernoulli(key, share, z.shape[:-1])[..., None]
    top2 = jax.lax.top_k(jax.lax.stop_gradient(z), 2)[0]
    margin = (top2[..., 0] - top2[..., 1]).ravel()
    margin = margin + 1e-3 * jax.random.uniform(key, margin.shape, margin.dtype)
    rank = jnp.argsort(jnp.argsort(-margin))  # 0 for the most decided gate
    n_hard = jnp.round(share * margin.size)
    return (rank < n_hard).reshape(z.shape[:-1])[..., None]


@jax.custom_vjp
def _straight_through(hard, soft):
    """``hard`` forward (exactly), the gradient passed to ``soft``."""
    return hard


def _st_fwd(hard, soft):
    return hard, None


def _st_bwd(_, g):
    return jnp.zeros_like(g), g


_straight_through.defvjp(_st_fwd, _st_bwd)


def _relaxed_wires(logits: list, key, step, cfg: dict) -> list:
    """Per learned wiring layer, the (2, K, out, in) weights with which each gate input mixes
    the inputs it may read: as the gates' own method does (the softmax; mixed_st's argmax with
    probability ``hard_fraction``, straight-through, from a draw of its own; gumbel_st and
    hard_st the argmax, straight-through), at temperature 1 and without noise."""
    method = cfg.get("relaxation", "softmax")
    keys = (
        jax.random.split(jax.random.fold_in(key, 7), len(logits)) if key is not None else [None] * len(logits)
    )
    out = []
    for z, k in zip(logits, keys):
        soft = jax.nn.softmax(z, axis=-1)
        if method == "softmax":
            out.append(soft)
            continue
        hard = _straight_through(jax.nn.one_hot(jnp.argmax(z, -1), z.shape[-1], dtype=z.dtype), soft)
        if method == "mixed_st":
            pick = jax.random.bernoulli(k, hard_fraction_at(cfg, step), z.shape[:-1])[..., None]
            hard = jnp.where(pick, hard, soft)
        out.append(hard)
    return out


def _learned_wires(params: dict) -> list | None:
    """The mixing weights of the learned perception layers (relaxed, or the softmax of the raw
    wire logits), or None for fixed wiring."""
    if params.get("wire_weights"):
        return params["wire_weights"]["perception"]
    if params.get("wire_logits"):
        return [jax.nn.softmax(z, axis=-1) for z in params["wire_logits"]["perception"]]
    return None


def sampled_ops(params: dict, key: jax.Array, cfg: dict) -> dict:
    """The gate index of every gate in the circuit that :func:`relax` samples with ``key`` (for
    gumbel_st and hard_st the forward pass's one-hot choices; otherwise the argmax)."""
    relaxed = relax(params, key, 0, cfg)
    if "weights" not in relaxed:
        return hard_ops(params)
    return jax.tree.map(lambda w: jnp.argmax(w, axis=-1), relaxed["weights"])


# --------------------------------------------------------------------------- soft/hard (float)


def patches(state, periodic: bool):
    """(B, H, W, C) -> (9, C, B*H*W): the 3x3 neighbourhood, row-major, centre at index 4."""
    if periodic:
        padded = jnp.pad(state, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
    else:
        padded = jnp.pad(state, ((0, 0), (1, 1), (1, 1), (0, 0)))
    b, h, w, c = state.shape
    shifted = [padded[:, dy : dy + h, dx : dx + w, :] for dy in range(3) for dx in range(3)]
    stacked = jnp.stack(shifted)  # (9, B, H, W, C)
    return stacked.reshape(9, b * h * w, c).transpose(0, 2, 1)


def circuit(params: dict, p, channels: int):
    """Run perception + update on patches (9, C, N) -> new state (C, N)."""
    x = p
    perception = _layer_weights(params, "perception")
    n_kernels = perception[0][0].shape[0]
    learned = _learned_wires(params) or []
    first_learned = len(perception) - len(learned)
    for i, (wire, (w, surrogate)) in enumerate(zip(params["wires"]["perception"], perception)):
        if i >= first_learned:  # learned: each input a mixture of the layer's inputs
            mix = learned[i - first_learned]  # (2, K, out, in)
            a, b = mixed_rows(x, mix[0]), mixed_rows(x, mix[1])
        elif wire.ndim == 3:  # per-kernel pairs (2, K, out) of x (in, K, C, N)
            a, b = kernel_rows(x, wire[0]), kernel_rows(x, wire[1])
        else:
            a, b = rows(x, wire[0]), rows(x, wire[1])
        if i == 0:  # (out, C, N) -> (out, K, C, N): every kernel reads the same patch
            w = jnp.swapaxes(_coefficients(w), 0, 1)  # (K, out, 4) -> (out, K, 4)
            s = w if surrogate is None else jnp.swapaxes(_coefficients(surrogate), 0, 1)
            x = kernel_gate(w, s, a, b)
            continue
        # (K, out, 4) -> (out, K, 1, 1, 4)
        x = _layer(w, surrogate, a, b, lambda c: jnp.swapaxes(c, 0, 1)[..., None, None, :])
    # x: (S, K, C, N) -> features ordered (c, s, k), centre state in front.
    s = x.shape[0]
    feats = jnp.transpose(x, (2, 0, 1, 3)).reshape(channels * s * n_kernels, -1)
    x = jnp.concatenate([p[4], feats], axis=0)
    for wire, (w, surrogate) in zip(params["wires"]["update"], _layer_weights(params, "update")):
        a, b = rows(x, wire[0]), rows(x, wire[1])
        x = _layer(w, surrogate, a, b, lambda c: c[:, None, :])  # (out, 1, 4)
    return x


def step(params: dict, state, key, cfg: dict):
    """One synchronous update of every cell: (B, H, W, C) -> (B, H, W, C)."""
    b, h, w, c = state.shape
    noise = params.get("state_noise")  # training only: relax() sets it (model.state_noise)
    if noise:
        # Each step reads its state with uniform noise of +-noise, clipped to [0, 1]: a circuit
        # that keeps working cannot lean on analog values that a deployed (binary) state lacks.
        # The key is the step's own (async masking draws from another split of it).
        state = jnp.clip(
            state + noise * jax.random.uniform(key, state.shape, state.dtype, -1.0, 1.0), 0.0, 1.0
        )
    if cfg.get("round_states", False):
        # Read the state rounded to {0, 1}, as the deployed circuit does (straight-through:
        # the gradient passes as if unrounded): a relaxed circuit cannot carry analog values
        # from one step to the next.
        state = state + jax.lax.stop_gradient(jnp.round(state) - state)
    new = circuit(params, patches(state, cfg.get("periodic", False)), c)  # (C, N)
    return new.T.reshape(b, h, w, c)


# --------------------------------------------------------------------------- bit-packed hard


def pack_bits(x):
    """(..., N) {0,1} -> (..., ceil(N/32)) uint32, cell n in bit n % 32 of word n // 32."""
    n = x.shape[-1]
    words = -(-n // 32)
    x = jnp.pad(x.astype(jnp.uint32), [(0, 0)] * (x.ndim - 1) + [(0, words * 32 - n)])
    x = x.reshape(*x.shape[:-1], words, 32)
    return jnp.sum(x << jnp.arange(32, dtype=jnp.uint32), axis=-1, dtype=jnp.uint32)


def unpack_bits(x, n: int):
    """Inverse of pack_bits: (..., words) uint32 -> (..., n) uint8."""
    bits = (x[..., None] >> jnp.arange(32, dtype=jnp.uint32)) & 1
    return bits.reshape(*x.shape[:-1], -1)[..., :n].astype(jnp.uint8)


def _masks(logits):
    """(..., 16) logits -> (..., 4) uint32 all-ones/all-zero masks of the argmax gate's ANF."""
    anf = jnp.asarray(ANF)[jnp.argmax(gate_logits(logits), -1)]
    return jnp.uint32(0) - anf  # 1 -> 0xFFFFFFFF


def packed_circuit(params: dict, p, channels: int):
    """Hard circuit on packed patches (9, C, words) -> packed new state (C, words)."""
    x = p
    n_kernels = params["logits"]["perception"][0].shape[0]
    wires = deployed_wires(params)
    for i, (wire, logits) in enumerate(zip(wires["perception"], params["logits"]["perception"])):
        m = jnp.swapaxes(_masks(logits), 0, 1)[..., None, None, :]  # (out, K, 1, 1, 4)
        if wire.ndim == 3:  # per-kernel pairs (2, K, out) of x (in, K, C, words)
            a, b = kernel_rows(x, wire[0]), kernel_rows(x, wire[1])
        else:
            a, b = rows(x, wire[0]), rows(x, wire[1])
        if i == 0:
            a, b = a[:, None], b[:, None]
        x = m[..., 0] ^ (a & (m[..., 1] ^ (b & m[..., 3]))) ^ (b & m[..., 2])
    s = x.shape[0]
    feats = jnp.transpose(x, (2, 0, 1, 3)).reshape(channels * s * n_kernels, -1)
    x = jnp.concatenate([p[4], feats], axis=0)
    for wire, logits in zip(wires["update"], params["logits"]["update"]):
        m = _masks(logits)[:, None, :]
        a, b = rows(x, wire[0]), rows(x, wire[1])
        x = m[..., 0] ^ (a & (m[..., 1] ^ (b & m[..., 3]))) ^ (b & m[..., 2])
    return x


def hard_step(params: dict, state, key, cfg: dict):
    """One synchronous hard-mode update on boolean states (uint8 or float in {0,1})."""
    del key
    b, h, w, c = state.shape
    p = pack_bits(patches(state.astype(jnp.uint8), cfg.get("periodic", False)))
    new = unpack_bits(packed_circuit(params, p, c), b * h * w)
    return new.T.reshape(b, h, w, c).astype(state.dtype)


def export_netlist(params: dict, cfg: dict) -> dict[str, Any]:
    """The hard circuit as plain JSON-able data: wiring and gate names per layer."""
    ops = hard_ops(params)
    layers = []
    for part in ("perception", "update"):
        for wire, op in zip(deployed_wires(params)[part], ops[part]):
            layers.append(
                {
                    "part": part,
                    "a": np.asarray(wire[0]).tolist(),
                    "b": np.asarray(wire[1]).tolist(),
                    "ops": np.asarray(op).tolist(),
                }
            )
    return {
        "format": "morphogen-difflogic-netlist/1",
        "gate_names": list(GATE_NAMES),
        "channels": cfg["channels"],
        "perception_kernels": cfg["perception_kernels"],
        "periodic": bool(cfg.get("periodic", False)),
        "layers": layers,
    }


def pruned_netlist(params: dict, cfg: dict) -> dict[str, Any]:
    """The hard circuit as a pruned netlist (:mod:`morphogen.netlist`): what the cell's next
    state depends on, constants folded, wires collapsed."""
    return netlist.prune(export_netlist(params, cfg))


def summary(params: dict, cfg: dict) -> dict[str, int]:
    """Gate counts of the hard circuit: total (with logits of their own); active, the gates of
    its pruned netlist (what the cell's next state depends on, wires collapsed and constants
    folded; a perception gate counts once per channel it runs on); and ``gates_nonwire``, the
    gates that are not a plain wire (A or B), live or not."""
    counts = gate_count(cfg)
    ops = jax.tree.leaves(hard_ops(params))
    nonwire = sum(int(np.sum(~np.isin(np.asarray(o), WIRE_GATES))) for o in ops)
    return {
        "gates_total": counts["total"],
        "gates_perception": counts["perception"],
        "gates_update": counts["update"],
        "gates_active": len(pruned_netlist(params, cfg)["gates"]),
        "gates_nonwire": nonwire,
    }


POLISH_SEARCHES = ("gradient", "evolve")


def polish(
    params: dict, objective: Callable, cfg: dict, key: jax.Array, log: Callable[[str], None]
) -> tuple[dict, dict]:
    """``training.polish``: on the circuit's deployed wiring, ``search: gradient`` (the
    default) is :func:`morphogen.models.logic_polish.repair`, ``search: evolve``
    :func:`morphogen.models.logic_polish.evolve` (its mutations drawn from ``key``)."""
    # the search switches operations: truth-table logits become the operations' log-probabilities
    params = {**params, "logits": jax.tree.map(gate_logits, params["logits"])}
    search = cfg.get("search", "gradient")
    if search == "evolve":
        return evolve(params, deployed_wires(params), objective, cfg, key, log)
    if search != "gradient":
        raise ValueError(
            f"training.polish.search must be one of {', '.join(POLISH_SEARCHES)}, got {search!r}"
        )
    return repair(params, deployed_wires(params), objective, cfg, log)


FAMILY = Family(
    init=init,
    step=step,
    validate=validate,
    count=gate_count,
    summary=summary,
    channels=lambda cfg: int(cfg["channels"]),
    harden=harden,
    hard_step=hard_step,
    relax=relax,
    polish=polish,
)
