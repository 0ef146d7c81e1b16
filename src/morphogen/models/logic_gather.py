"""The DiffLogic circuit's gathers: a layer's inputs are rows of the layer before it, chosen by
its wiring (indices in range by construction), with gradients that do not scatter where
autodiff's would (a scatter-add with traced indices runs element by element on CPU)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

FEW_ROWS = 16  # up to this many rows (the perception's), a gather gets a cheap gradient


def take(x, idx):
    """``x[idx]`` along axis 0, for a wiring's indices, which are in range by construction:
    ``mode="clip"`` spares the bounds test and the NaN fill that jnp.take's default adds to
    every gather (a quarter of the soft circuit's forward pass on CPU)."""
    return jnp.take(x, idx, axis=0, mode="clip")


@jax.custom_vjp
def take_few(x, idx):
    """``x[idx]`` along axis 0 of an ``x`` with few rows (the perception layers'), whose
    gradient is a product with the wiring's one-hot matrix: the scatter-add that autodiff
    makes of a gather with traced indices runs element by element on CPU, and on a
    128-channel perception was most of a training step."""
    return take(x, idx)


def _take_few_fwd(x, idx):
    return take(x, idx), (idx, x.shape[0])


def _take_few_bwd(res, g):
    idx, n = res
    one_hot = jax.nn.one_hot(idx, n, dtype=g.dtype)  # (out, in): exact sums at full precision
    d_x = jnp.tensordot(one_hot, g, axes=((0,), (0,)), precision=jax.lax.Precision.HIGHEST)
    return d_x, None


take_few.defvjp(_take_few_fwd, _take_few_bwd)


def rows(x, idx):
    """``x[idx]`` along axis 0. Known (non-traced) small index sets become static slices,
    whose gradients are cheap pads instead of scatter-adds; an index set that repeats one row
    becomes that row, left to broadcast. Traced indices into few rows gather with a cheap
    gradient (:func:`take_few`)."""
    if isinstance(idx, jax.core.Tracer):
        return take_few(x, idx) if x.shape[0] <= FEW_ROWS else take(x, idx)
    idx = np.asarray(idx)
    if np.all(idx == idx[0]):
        return x[int(idx[0]) : int(idx[0]) + 1]
    if len(idx) <= FEW_ROWS:
        return jnp.concatenate([x[int(i) : int(i) + 1] for i in idx])
    return take(x, idx)


def _kernel_gather(x, idx):
    """The gather of :func:`kernel_rows`, without its hand-written gradient."""
    idx = jnp.swapaxes(jnp.asarray(idx), 0, 1)
    return jnp.take_along_axis(x, idx.reshape(*idx.shape, *(1,) * (x.ndim - 2)), axis=0, mode="clip")


@jax.custom_vjp
def kernel_rows(x, idx):
    """Per kernel ``k``, rows ``idx[k]`` of ``x[:, k]``: (in, K, ...) and (K, out) -> (out, K,
    ...), a gather. Its gradient (floats: the soft circuit) is written by hand, as
    :func:`take_few`'s: autodiff's scatter-add runs element by element on CPU, and a product
    with the one-hot wiring (``koi,ik...``) transposes the kernel axis to the front and back,
    which made the per-kernel wiring's training step a fifth slower than the shared one's.
    Indices in range, as for :func:`take`."""
    return _kernel_gather(x, idx)


def _kernel_rows_fwd(x, idx):
    return _kernel_gather(x, idx), (idx, x.shape[0])


def _kernel_rows_bwd(res, g):
    idx, n = res
    # each output row o adds its gradient to the row that each kernel read for it: a one-hot
    # (in, K) mask broadcast over the cells, summed over the few outputs in their order
    mask = jax.nn.one_hot(jnp.asarray(idx), n, dtype=g.dtype)  # (K, out, in)
    extra = (1,) * (g.ndim - 2)
    d_x = None
    for o in range(g.shape[0]):
        term = jnp.swapaxes(mask[:, o], 0, 1).reshape(n, -1, *extra) * g[o][None]
        d_x = term if d_x is None else d_x + term
    return d_x, None


kernel_rows.defvjp(_kernel_rows_fwd, _kernel_rows_bwd)


def mixed_rows(x, weights):
    """Per kernel ``k`` and output ``o``, ``sum_i weights[k, o, i] * x[i, k]``: (in, K, ...) and
    (K, out, in) -> (out, K, ...); exact for one-hot weights."""
    return jnp.einsum("koi,ik...->ok...", weights, x, precision=jax.lax.Precision.HIGHEST)
