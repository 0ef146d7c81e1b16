"""`training.schedule_gate: {at, below, max_wait}` (rollout regime): the training method's
schedules (the model's relax hook: mixed_st's share of discrete gates, a temperature) stop at
their step `at` until the running mean of the training loss (decay `smoothing`, 0.9 by
default) is under `below`, for `max_wait` steps at most, then go on from there. A circuit is
hardened once its mixture has learnt the task, not at a fixed step whether it has or not.
With `hold_lr` (the default) the learning rate's schedule runs on the same clock: a held
mixture goes on learning at the rate it had at `at`, not at a rate decaying towards its end.
The gate's state is the TrainState's clock, so a resumed run holds it as the uninterrupted one.
"""

from __future__ import annotations

import jax.numpy as jnp


def schedule_gate(tcfg: dict) -> dict | None:
    """The run's schedule gate with its defaults filled in, or None."""
    gate = tcfg.get("schedule_gate")
    if not gate:
        return None
    regime = tcfg.get("regime", "gradient")
    if regime != "gradient":
        raise ValueError(f"training.schedule_gate is not available with training.regime {regime}")
    return {"smoothing": 0.9, "hold_lr": True, **gate}


def initial_clock(tcfg: dict) -> dict | None:
    """A run's (or a restarted attempt's) schedule clock: nothing held, no loss seen yet."""
    if schedule_gate(tcfg) is None:
        return None
    return {"held": jnp.asarray(0, jnp.int32), "loss": jnp.asarray(jnp.nan, jnp.float32)}


def advance_clock(gate: dict, clock: dict, schedule_step, loss) -> dict:
    """The clock after a step whose schedules ran at ``schedule_step`` on ``loss``: one more step
    held if the schedules are at the gate and the running mean of the loss is still above it."""
    a = gate["smoothing"]
    mean = jnp.where(jnp.isnan(clock["loss"]), loss, a * clock["loss"] + (1 - a) * loss)
    hold = (schedule_step == gate["at"]) & (mean > gate["below"]) & (clock["held"] < gate["max_wait"])
    return {"held": clock["held"] + hold.astype(jnp.int32), "loss": mean.astype(jnp.float32)}
