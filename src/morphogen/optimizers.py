"""The optimizer of every gradient-trained family, built from ``training.optimizer``: optional
gradient normalisation and clipping, AdamW on a learning-rate schedule (its weight decay, with
``weight_decay_steps``, for the first updates only), and the spike guard."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class SpikeGuardState(NamedTuple):
    inner: Any  # the guarded optimizer's state, as of the last step it took
    typical_norm: jax.Array  # float32: running mean of the accepted gradients' global norms
    skipped: jax.Array  # float32: 1.0 when the last update was skipped as a spike


def skip_spikes(
    inner: optax.GradientTransformation, factor: float, memory: float = 0.9, growth: float = 1.1
) -> optax.GradientTransformation:
    """``inner``, except that a gradient whose global norm exceeds ``factor`` times the running
    mean of the accepted ones is not applied: the update is zero and ``inner``'s state (Adam's
    moments) stays as it was, as if the step had not happened.

    Backpropagating a nearly discrete circuit through a long rollout now and then gives a
    gradient thousands of times the usual size; Adam turns such a step into a full-size update in
    a meaningless direction and keeps pushing that way for tens of steps. Clipping the norm does
    not help, since the direction is what is wrong. The running mean grows by ``growth`` each
    skipped step, so a lasting change of the gradient's scale is accepted after a few dozen
    steps instead of freezing training. The first step sets the running mean."""

    def init(params):
        return SpikeGuardState(inner.init(params), jnp.zeros([], jnp.float32), jnp.zeros([], jnp.float32))

    def update(grads, state, params=None):
        norm = optax.tree.norm(grads).astype(jnp.float32)
        first = state.typical_norm == 0
        accept = first | (norm <= factor * state.typical_norm)
        upd, inner_state = inner.update(grads, state.inner, params)
        upd = jax.tree.map(lambda u: jnp.where(accept, u, jnp.zeros_like(u)), upd)
        inner_state = jax.tree.map(lambda new, old: jnp.where(accept, new, old), inner_state, state.inner)
        typical = jnp.where(
            first,
            norm,
            jnp.where(accept, memory * state.typical_norm + (1 - memory) * norm, growth * state.typical_norm),
        )
        return upd, SpikeGuardState(inner_state, typical, 1.0 - accept.astype(jnp.float32))

    return optax.GradientTransformation(init, update)


def learning_rate(ocfg: dict, total_steps: int):
    """``training.optimizer``'s learning rate: a number, or a schedule (a function of the step)."""
    lr = ocfg["lr"]
    schedule = ocfg.get("schedule", "constant")
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        warmup = int(ocfg.get("warmup_steps", 0))
        return optax.warmup_cosine_decay_schedule(
            init_value=lr if warmup == 0 else 0.0,
            peak_value=lr,
            warmup_steps=warmup,
            decay_steps=total_steps,
            end_value=lr * ocfg.get("final_lr_fraction", 0.1),
        )
    if schedule == "piecewise":  # the growing NCA's: lr, then x decay_factor at each decay_at
        factor = float(ocfg.get("decay_factor", 0.1))
        return optax.piecewise_constant_schedule(lr, {int(b): factor for b in ocfg.get("decay_at", [])})
    raise ValueError(
        f"training.optimizer.schedule must be 'constant', 'cosine' or 'piecewise', got {schedule!r}"
    )


def make_optimizer(ocfg: dict, total_steps: int, rate_outside: bool = False) -> optax.GradientTransformation:
    """Optional per-tensor gradient normalisation, clip (element-wise value) and/or clip_norm
    (global norm), then AdamW (its decay for the first ``weight_decay_steps`` updates only, if
    given), with a constant, cosine or piecewise-constant learning rate; with
    ``skip_spikes: factor`` all of it guarded by :func:`skip_spikes`. With ``rate_outside`` the
    AdamW step is taken at learning rate 1 and the caller multiplies the update by the learning
    rate of a step count of its own (:func:`learning_rate`; the schedule gate's)."""
    lr_fn: Any = 1.0 if rate_outside else learning_rate(ocfg, total_steps)
    parts = []
    if ocfg.get("normalize_gradients", False):
        # each gradient tensor divided by its norm (the growing NCA's reference)
        parts.append(optax.stateless(lambda g, _: jax.tree.map(lambda t: t / (jnp.linalg.norm(t) + 1e-8), g)))
    if ocfg.get("clip") is not None:
        parts.append(optax.clip(float(ocfg["clip"])))
    if ocfg.get("clip_norm") is not None:
        parts.append(optax.clip_by_global_norm(float(ocfg["clip_norm"])))
    decay: Any = ocfg["weight_decay"]
    if ocfg.get("weight_decay_steps") is not None:
        # a gate circuit may need the decay to leave its initial circuit and be held back by it
        # later, when it pulls every settled gate back towards an undecided mixture
        decay = optax.piecewise_constant_schedule(float(decay), {int(ocfg["weight_decay_steps"]): 0.0})
    parts.append(optax.adamw(lr_fn, b1=ocfg["b1"], b2=ocfg["b2"], weight_decay=decay))
    chain = optax.chain(*parts)
    if ocfg.get("skip_spikes") is not None:
        return skip_spikes(chain, float(ocfg["skip_spikes"]))
    return chain
