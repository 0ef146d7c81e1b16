"""Differentiable Logic Cellular Automata (Miotti et al., 2025).

A cell's rule is a circuit of two-input logic gates with fixed random wiring. Each gate holds 16
logits over the 16 binary operations; training ("soft" mode) uses the softmax mixture of their
real-valued relaxations, evaluation ("hard" mode) the argmax operation on exact booleans.

Speed comes from two facts:

* Every relaxation is affine in ``[1, a, b, ab]``, so a softmax mixture of all 16 is one affine
  map whose four coefficients are computed once per training step, not once per cell:
  ``y = c0 + c1*a + c2*b + c3*a*b``.
* Layers are evaluated for all cells at once on a ``(features, cells)`` layout: a layer's wiring
  is a row gather, its gates an element-wise expression broadcast over cells.

Hard rollouts additionally pack 32 cells into the bits of one ``uint32`` word and evaluate each
gate as a bitwise expression (its algebraic normal form), 32 cells per instruction.

Parameters are a pytree ``{"logits": ..., "wires": ...}``; the wires are integer arrays that are
never trained (training differentiates floating leaves only).

Shapes: a state is ``(batch, height, width, channels)`` float32 with values in [0, 1].
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PASS_THROUGH_GATE = 3  # "A": the gate index that starts with a large logit
GATE_NAMES = (
    "FALSE", "AND", "A_AND_NOT_B", "A", "NOT_A_AND_B", "B", "XOR", "OR",
    "NOR", "XNOR", "NOT_B", "A_OR_NOT_B", "NOT_A", "NOT_A_OR_B", "NAND", "TRUE",
)  # fmt: skip
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


def relaxed_gate(op: int, a, b):
    """The real-valued relaxation of gate ``op`` (e.g. XOR = a + b - 2ab)."""
    c = AFFINE[op]
    return c[0] + c[1] * a + c[2] * b + c[3] * a * b


# --------------------------------------------------------------------------- wiring


def first_kernel_wires(key: jax.Array, out_dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Perception layer 1: gate j reads (neighbour perm[j], centre) of a 3x3 patch."""
    if out_dim != 8:
        raise ValueError(f"first_kernel wiring makes 8 gates from a 3x3 patch, got out_dim={out_dim}")
    neighbours = np.array([0, 1, 2, 3, 5, 6, 7, 8])
    perm = np.asarray(jax.random.permutation(key, 8))
    return neighbours[perm].astype(np.int32), np.full(8, 4, dtype=np.int32)


def unique_wires(key: jax.Array, in_dim: int, out_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (0,1),(2,3),..., then (1,2),(3,4),..., then larger offsets; cut and permuted.

    This is difflogic's ``get_unique_connections`` for even widths. Every input is read by at
    least one gate (``2 * out_dim >= in_dim`` is required).
    """
    if 2 * out_dim < in_dim:
        raise ValueError(f"'unique' wiring needs 2*out_dim >= in_dim, got in={in_dim}, out={out_dim}")
    x = np.arange(in_dim)
    a, b = x[0::2], x[1::2]
    if in_dim % 2:
        # The reference drops the last input of an odd-width layer from the first pass (and
        # so, for narrow layers, entirely); pairing it with input 0 keeps every input read.
        b = np.append(b, 0)
    if len(a) < out_dim:
        a2, b2 = x[1::2], x[2::2]
        m = min(len(a2), len(b2))
        a, b = np.concatenate([a, a2[:m]]), np.concatenate([b, b2[:m]])
    offset = 2
    while len(a) < out_dim:
        if offset >= in_dim:
            raise ValueError(f"cannot wire {out_dim} unique pairs from {in_dim} inputs")
        a, b = np.concatenate([a, x[:-offset]]), np.concatenate([b, x[offset:]])
        offset += 1
    perm = np.asarray(jax.random.permutation(key, out_dim))
    return a[:out_dim][perm].astype(np.int32), b[:out_dim][perm].astype(np.int32)


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
    for name, sizes in (("perception_layers", perception), ("update_layers", update)):
        for i, (n_in, n_out) in enumerate(zip(sizes[1:-1], sizes[2:])):
            if 2 * n_out < n_in:
                raise ValueError(
                    f"model.{name}[{i + 1}]={n_out} is too narrow for {n_in} inputs ('unique' wiring "
                    f"needs at least {math.ceil(n_in / 2)})"
                )
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

    def logits(shape):
        z = np.zeros((*shape, 16), np.float32)
        z[..., PASS_THROUGH_GATE] = pass_value
        return jnp.asarray(z)

    wires: dict[str, list] = {"perception": [], "update": []}
    out: dict[str, list] = {"perception": [], "update": []}
    for i, (n_in, n_out) in enumerate(zip(perception[:-1], perception[1:])):
        k = jax.random.fold_in(k_wire, i)
        a, b = first_kernel_wires(k, n_out) if i == 0 else unique_wires(k, n_in, n_out)
        wires["perception"].append(jnp.stack([jnp.asarray(a), jnp.asarray(b)]))
        out["perception"].append(logits((n_kernels, n_out)))
    for i, (n_in, n_out) in enumerate(zip(update[:-1], update[1:])):
        k = jax.random.fold_in(k_wire, 1000 + i)
        a, b = unique_wires(k, n_in, n_out)
        wires["update"].append(jnp.stack([jnp.asarray(a), jnp.asarray(b)]))
        out["update"].append(logits((n_out,)))
    return {"logits": out, "wires": wires}


def harden(params: dict) -> dict:
    """Params whose softmax is exactly the one-hot argmax: soft code, hard circuit."""

    def one(z):
        return jnp.where(jax.nn.one_hot(jnp.argmax(z, -1), 16, dtype=bool), 0.0, -jnp.inf)

    return {"logits": jax.tree.map(one, params["logits"]), "wires": params["wires"]}


def hard_ops(params: dict) -> dict:
    """The argmax gate index of every gate (the circuit that hard mode runs)."""
    return jax.tree.map(lambda z: jnp.argmax(z, -1), params["logits"])


def _coefficients(logits):
    """(..., 16) logits -> (..., 4) affine coefficients of the softmax mixture."""
    return jax.nn.softmax(logits, axis=-1) @ jnp.asarray(AFFINE)


# --------------------------------------------------------------------------- soft/hard (float)


def _rows(x, idx):
    """``x[idx]`` along axis 0. Known (non-traced) small index sets become static slices,
    whose gradients are cheap pads instead of scatter-adds; an index set that repeats one row
    becomes that row, left to broadcast."""
    if isinstance(idx, jax.core.Tracer):
        return jnp.take(x, idx, axis=0)
    idx = np.asarray(idx)
    if np.all(idx == idx[0]):
        return x[int(idx[0]) : int(idx[0]) + 1]
    if len(idx) <= 16:
        return jnp.concatenate([x[int(i) : int(i) + 1] for i in idx])
    return jnp.take(x, idx, axis=0)


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
    n_kernels = params["logits"]["perception"][0].shape[0]
    for i, (wire, logits) in enumerate(zip(params["wires"]["perception"], params["logits"]["perception"])):
        coef = _coefficients(logits)  # (K, out, 4)
        a, b = _rows(x, wire[0]), _rows(x, wire[1])
        if i == 0:  # (out, C, N) -> (out, 1, C, N): every kernel reads the same patch
            a, b = a[:, None], b[:, None]
        c = jnp.swapaxes(coef, 0, 1)[..., None, None, :]  # (out, K, 1, 1, 4)
        x = c[..., 0] + a * (c[..., 1] + c[..., 3] * b) + c[..., 2] * b
    # x: (S, K, C, N) -> features ordered (c, s, k), centre state in front.
    s = x.shape[0]
    feats = jnp.transpose(x, (2, 0, 1, 3)).reshape(channels * s * n_kernels, -1)
    x = jnp.concatenate([p[4], feats], axis=0)
    for wire, logits in zip(params["wires"]["update"], params["logits"]["update"]):
        coef = _coefficients(logits)[:, None, :]  # (out, 1, 4)
        a, b = _rows(x, wire[0]), _rows(x, wire[1])
        x = coef[..., 0] + a * (coef[..., 1] + coef[..., 3] * b) + coef[..., 2] * b
    return x


def step(params: dict, state, key, cfg: dict):
    """One synchronous update of every cell: (B, H, W, C) -> (B, H, W, C)."""
    del key  # the circuit is deterministic; async masking lives in morphogen.updates
    b, h, w, c = state.shape
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
    anf = jnp.asarray(ANF)[jnp.argmax(logits, -1)]
    return jnp.uint32(0) - anf  # 1 -> 0xFFFFFFFF


def packed_circuit(params: dict, p, channels: int):
    """Hard circuit on packed patches (9, C, words) -> packed new state (C, words)."""
    x = p
    n_kernels = params["logits"]["perception"][0].shape[0]
    for i, (wire, logits) in enumerate(zip(params["wires"]["perception"], params["logits"]["perception"])):
        m = jnp.swapaxes(_masks(logits), 0, 1)[..., None, None, :]  # (out, K, 1, 1, 4)
        a, b = _rows(x, wire[0]), _rows(x, wire[1])
        if i == 0:
            a, b = a[:, None], b[:, None]
        x = m[..., 0] ^ (a & (m[..., 1] ^ (b & m[..., 3]))) ^ (b & m[..., 2])
    s = x.shape[0]
    feats = jnp.transpose(x, (2, 0, 1, 3)).reshape(channels * s * n_kernels, -1)
    x = jnp.concatenate([p[4], feats], axis=0)
    for wire, logits in zip(params["wires"]["update"], params["logits"]["update"]):
        m = _masks(logits)[:, None, :]
        a, b = _rows(x, wire[0]), _rows(x, wire[1])
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
        for wire, op in zip(params["wires"][part], ops[part]):
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


def summary(params: dict, cfg: dict) -> dict[str, int]:
    """Gate counts of the hard circuit: total, and active (neither plain wire A nor B)."""
    counts = gate_count(cfg)
    ops = jax.tree.leaves(hard_ops(params))
    active = sum(int(np.sum(~np.isin(np.asarray(o), WIRE_GATES))) for o in ops)
    return {
        "gates_total": counts["total"],
        "gates_perception": counts["perception"],
        "gates_update": counts["update"],
        "gates_active": active,
    }
