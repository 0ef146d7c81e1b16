"""The fixed random wiring of a logic circuit's layers (the DiffLogic CA reference's
``first_kernel`` and ``unique`` connections, and per-kernel draws of the latter): which two
inputs each gate reads. Every draw is from a JAX key, returned as NumPy int32 arrays."""

from __future__ import annotations

import jax
import numpy as np


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
    a, b = unique_pairs(in_dim, out_dim)
    perm = np.asarray(jax.random.permutation(key, out_dim))
    return a[perm].astype(np.int32), b[perm].astype(np.int32)


def kernel_wires(key: jax.Array, in_dim: int, out_dim: int, n_kernels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per kernel, (K, out_dim) pairs: the 'unique' pairs of a random relabelling of the inputs,
    drawn per kernel (``model.perception_wiring: per_kernel``). Every input is still read by
    every kernel, but which inputs a gate combines differs from kernel to kernel; after the
    first perception layer (each gate reads one neighbour's bit and the centre's), that is
    which neighbours each kernel groups together."""
    a0, b0 = unique_pairs(in_dim, out_dim)
    a, b = [], []
    for k in range(n_kernels):
        relabel = np.asarray(jax.random.permutation(jax.random.fold_in(key, 2 * k), in_dim))
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, 2 * k + 1), out_dim))
        a.append(relabel[a0[order]])
        b.append(relabel[b0[order]])
    return np.stack(a).astype(np.int32), np.stack(b).astype(np.int32)


def unique_pairs(in_dim: int, out_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``out_dim`` input pairs of a 'unique' layer, in order (ValueError if impossible)."""
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
    return a[:out_dim], b[:out_dim]
