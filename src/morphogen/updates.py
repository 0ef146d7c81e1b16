"""Synchronous and asynchronous (fire-rate) stepping, shared by every model family.

A model's ``step`` always updates every cell. Asynchrony is a wrapper: each cell fires with
probability ``fire_rate`` (one Bernoulli draw per cell, the same for all its channels) and a cell
that does not fire keeps its old state::

    x <- old * (1 - m) + new * m

The mask is data, not a function of the parameters, so backpropagation sends no gradient through
the update of a cell that did not fire, while the gradient of its old state passes unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Step = Callable  # (params, state, key, cfg) -> state

MODES = ("sync", "async")


def fire_mask(key: jax.Array, state_shape: tuple[int, ...], fire_rate: float, dtype=jnp.float32):
    """(..., H, W, 1) mask: 1 where a cell fires this step."""
    return (jax.random.uniform(key, (*state_shape[:-1], 1)) <= fire_rate).astype(dtype)


# ``post`` draws from fold_in(step key, this id), so the fire masks and the model's own draws
# stay those of the step key.
POST_STREAM = 13


def wrap(step: Step, mode: str, fire_rate: float = 1.0, post: Callable | None = None) -> Step:
    """The model ``step`` updated synchronously or with per-cell fire-rate masking, then
    ``post(params, before, after, key, cfg)`` for every cell (a family's rule that holds whether
    a cell fired or not: the growing NCA's alive masking, the advection NCA's transport of mass),
    if given."""
    if post is not None:
        inner = wrap(step, mode, fire_rate)

        def with_post(params, state, key, cfg):
            after = inner(params, state, key, cfg)
            return post(params, state, after, jax.random.fold_in(key, POST_STREAM), cfg)

        return with_post
    if mode == "sync":
        return step
    if mode != "async":
        raise ValueError(f"update mode must be one of {MODES}, got {mode!r}")
    if not 0.0 < fire_rate <= 1.0:
        raise ValueError(f"fire_rate must be in (0, 1], got {fire_rate}")

    def async_step(params, state, key, cfg):
        k_mask, k_model = jax.random.split(key)
        new = step(params, state, k_model, cfg)
        m = fire_mask(k_mask, state.shape, fire_rate, state.dtype)
        return state * (1 - m) + new * m

    return async_step


def rollout(
    step: Step,
    params,
    state,
    key: jax.Array,
    cfg,
    n_steps: int,
    *,
    trajectory=False,
    remat=False,
    length=None,
):
    """Run ``n_steps`` steps (a scan); step t draws from ``fold_in(key, t)``.

    Returns the final state, and with ``trajectory=True`` also the states after every step,
    stacked on a leading axis. ``remat`` recomputes each step in the backward pass instead of
    storing its activations (less memory and, on CPU, faster). ``length`` (a traced integer at
    most ``n_steps``) stops the rollout early: later steps leave the state as it is and cost
    nothing (a random rollout length in one compiled program).
    """

    def advance(x, t):
        return step(params, x, jax.random.fold_in(key, t), cfg)

    def body(x, t):
        x = advance(x, t) if length is None else jax.lax.cond(t < length, advance, lambda x, t: x, x, t)
        return x, (x if trajectory else None)

    if remat:
        body = jax.checkpoint(body)
    final, traj = jax.lax.scan(body, state, jnp.arange(n_steps))
    return (final, traj) if trajectory else final
