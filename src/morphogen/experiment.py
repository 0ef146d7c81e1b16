"""What every training regime shares: the experiment built from its config, the params split
into what trains and what does not (the wiring), and the state a train step carries.

A regime's ``train_step(state, key, static) -> (state, metrics)`` takes a :class:`TrainState`;
that state (and the attempt number of a restarted run, which fixes the wiring ``static``) is
exactly what a checkpoint holds, so a resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from morphogen import models, rng, tasks, updates


class TrainState(NamedTuple):
    params: Any  # the trainable (floating-point) leaves of the model params
    opt_state: Any
    step: jax.Array  # int32 scalar: number of optimizer steps taken
    # what a regime carries from one step to the next besides the params (the online regime:
    # the state of its one trajectory and the spike count); None for the others
    carry: Any = None
    # the rollout regime's schedule gate (`training.schedule_gate`): the steps its training
    # method's schedules have been held so far and the running mean of the loss; None without one
    clock: Any = None


# A step's training-method draws (the model's relax hook) come from fold_in(step key, this id),
# so the start states and async masks stay those of the step key's split.
RELAX_STREAM = 7


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


# --------------------------------------------------------------------------- params split


def split_params(params):
    """(trainable, static): floating leaves to train; integer leaves (wiring) as NumPy constants."""

    def is_float(x):
        return jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)

    trainable = jax.tree.map(lambda x: x if is_float(x) else None, params)
    static = jax.tree.map(lambda x: None if is_float(x) else np.asarray(x), params)
    return trainable, static


def merge_params(trainable, static):
    return jax.tree.map(lambda t, s: s if t is None else t, trainable, static, is_leaf=lambda x: x is None)


# --------------------------------------------------------------------------- experiment pieces


class Experiment(NamedTuple):
    """Everything a run needs, built once from an experiment config."""

    family: models.Family
    model_cfg: dict
    task: tasks.Task
    step: Callable  # (params, state, key, cfg) -> state, with the update mode applied
    hard_step: Callable | None


def build(exp_cfg: dict) -> Experiment:
    family = models.get(exp_cfg["family"])
    mcfg = exp_cfg["model"]
    family.validate(mcfg)
    task = tasks.make(exp_cfg["task"], channels=family.channels(mcfg))
    ucfg = exp_cfg.get("update", {"mode": "sync"})
    mode, fire_rate = ucfg["mode"], ucfg.get("fire_rate", 1.0)
    step = updates.wrap(family.step, mode, fire_rate, family.post)
    hard = updates.wrap(family.hard_step, mode, fire_rate, family.post) if family.hard_step else None
    return Experiment(family, mcfg, task, step, hard)


def init_params(exp: Experiment, seed: int, attempt: int = 0):
    """Initial params (logits and wiring); a restarted run's ``attempt`` k > 0 draws anew."""
    key = rng.stream(seed, "init")
    return exp.family.init(key if attempt == 0 else jax.random.fold_in(key, attempt), exp.model_cfg)


def bind_static(jitted_step: Callable, static) -> Callable:
    """``train_step(state, key, static=None)`` of a regime's ``jitted_step(state, static, key)``:
    the wiring given at creation, unless a call passes another (a restarted run's)."""
    bound = jax.tree.map(jnp.asarray, static)

    def train_step(state: TrainState, key, static=None):
        return jitted_step(state, bound if static is None else jax.tree.map(jnp.asarray, static), key)

    # the step with the wiring as its second argument, for callers that map it over runs (the
    # seed sweep in benchmarks/ vmaps it over seeds)
    train_step.unbound = jitted_step
    return train_step


def training_params(exp: Experiment, static, k_relax, step_number) -> Callable:
    """``trainable -> params`` as one training step runs them: merged with the wiring and, for a
    family with a training method (``relax``: noise on discrete choices, exploration noise), in
    that method's form."""

    def params_of(trainable):
        params = merge_params(trainable, static)
        return (
            params
            if exp.family.relax is None
            else exp.family.relax(params, k_relax, step_number, exp.model_cfg)
        )

    return params_of
