"""Training loops. They never know which model they train.

The rollout regime (DiffLogic checkerboard): each step draws fresh start states, rolls the model
out for ``rollout_steps`` steps (sync or async), and descends the task loss of the final state by
backpropagation through time. Discrete (hard) models also get the loss and accuracy of the hard
circuit on the same start states and the same async masks, for the log only.

``train_step(state, key, static) -> (state, metrics)`` with ``state`` a :class:`TrainState`; that
state (and the attempt number of a restarted run, which fixes the wiring ``static``) is exactly what
a checkpoint holds, so a resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from morphogen import checkpoint, damage, models, provenance, rng, tasks, updates
from morphogen.optimizers import SpikeGuardState, learning_rate, make_optimizer
from morphogen.schedule_gate import advance_clock, initial_clock, schedule_gate


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


def _bind_static(jitted_step: Callable, static) -> Callable:
    """``train_step(state, key, static=None)`` of a regime's ``jitted_step(state, static, key)``:
    the wiring given at creation, unless a call passes another (a restarted run's)."""
    bound = jax.tree.map(jnp.asarray, static)

    def train_step(state: TrainState, key, static=None):
        return jitted_step(state, bound if static is None else jax.tree.map(jnp.asarray, static), key)

    # the step with the wiring as its second argument, for callers that map it over runs (the
    # seed sweep in benchmarks/ vmaps it over seeds)
    train_step.unbound = jitted_step
    return train_step


def whole_set(exp: Experiment):
    """The start states on which the rollout regime logs ``soft_accuracy_all`` and
    ``hard_accuracy_all`` every step, or None: a task's fixed evaluation set, small enough to run
    every step (the Game of Life's 512 configurations), of a model with a hard circuit."""
    task = exp.task
    if exp.hard_step is None or task.evaluation_states is None or task.accuracy is None:
        return None
    return jnp.asarray(task.evaluation_states(None, 0))


def attempt_optimizer(tcfg: dict, steps_left: int) -> tuple[optax.GradientTransformation, Any]:
    """An attempt's optimizer, its schedule `decay_steps` long cut to the ``steps_left``, and the
    learning rate that the train step applies itself (None: the optimizer's own). A schedule
    gate that holds the learning rate (``hold_lr``, the default) runs it on the gate's clock, as
    the method's schedules."""
    gate = schedule_gate(tcfg)
    ocfg = tcfg["optimizer"]
    steps = min(int(ocfg.get("decay_steps", steps_left)), steps_left)
    if gate is not None and gate["hold_lr"]:
        return make_optimizer(ocfg, steps, rate_outside=True), learning_rate(ocfg, steps)
    return make_optimizer(ocfg, steps), None


def rollout_objective(exp: Experiment, tcfg: dict) -> Callable:
    """``objective(step, params, x0, key) -> (loss, final state)``: the training loss of one
    rollout of ``training.rollout_steps`` steps of ``step`` (the model's, or its hard circuit's)."""
    n_steps, loss_steps = tcfg["rollout_steps"], int(tcfg.get("loss_steps", 1))
    task, mcfg = exp.task, exp.model_cfg

    def objective(step, params, x0, key):
        if loss_steps == 1:  # the reference: the final state only
            final = updates.rollout(step, params, x0, key, mcfg, n_steps, remat=True)
            return task.loss(final, x0), final
        # Mean of the task loss over the last `loss_steps` states: rewards a pattern that forms
        # early and stays, and gives the gradient shorter paths through time.
        _, traj = updates.rollout(step, params, x0, key, mcfg, n_steps, trajectory=True, remat=True)
        return jnp.mean(jax.vmap(lambda f: task.loss(f, x0))(traj[-loss_steps:])), traj[-1]

    return objective


def polish(exp: Experiment, params, tcfg: dict, seed: int, log: Callable[[str], None]) -> tuple[Any, dict]:
    """The model family's discrete repair of the trained params (``training.polish``: its
    settings), scored by the training objective on ``states`` start states (and async masks)
    drawn once from the seed's ``polish`` stream. Returns the params and a report (objective
    before and after, switches made, seconds, hard accuracy on those starts after)."""
    pcfg = dict(tcfg["polish"])
    k_x, k_roll = jax.random.split(rng.stream(seed, "polish"))
    x0 = exp.task.initial_states(k_x, int(pcfg.get("states", 8)))
    run = rollout_objective(exp, tcfg)

    def objective(p, hard: bool):
        return run(exp.hard_step if hard else exp.step, p, x0, k_roll)[0]

    params, report = exp.family.polish(params, objective, pcfg, rng.stream(seed, "evolve"), log)
    hard = updates.rollout(
        exp.hard_step, exp.family.harden(params), x0, k_roll, exp.model_cfg, tcfg["rollout_steps"]
    )
    report["hard_accuracy"] = float(jnp.mean(exp.task.accuracy(hard, x0)))
    return params, report


# training.validate's defaults (config/schema.yaml documents them)
VALIDATE_DEFAULTS = {"scale": 4, "trials": 32, "every": 10}


def validate_settings(tcfg: dict) -> dict:
    """``training.validate`` with its defaults filled in ({} without it)."""
    vcfg = tcfg.get("validate")
    return {**VALIDATE_DEFAULTS, **vcfg} if vcfg else {}


def make_validator(exp: Experiment, exp_cfg: dict, seed: int) -> Callable[[Any], float] | None:
    """``training.validate``: ``validator(params) -> accuracy``, the mean accuracy of the hard
    circuit of ``params`` at the end of ``trials`` rollouts on the ``scale``x evaluation grid
    (border-matched as the evaluation's, :func:`tasks.evaluation_grid`) for ``scale`` x the
    training rollout's steps, from start states (and async masks) drawn once from the seed's
    ``validate`` stream; 1.0 only if every one of them ends exact. None without ``validate``.

    A circuit that learns on its training grid has to order a grid whose far border is close to
    every cell; on a grid four times as wide a circuit can leave domains of the wrong phase that
    no border reaches in time, and the 14x14 training rollouts cannot tell the two apart."""
    tcfg = exp_cfg["training"]
    vcfg = validate_settings(tcfg)
    if not vcfg:
        return None
    if exp.hard_step is None or tcfg.get("regime", "gradient") != "gradient" or "size" not in exp_cfg["task"]:
        raise ValueError(
            "training.validate needs a discrete model (DiffLogic), the rollout regime and a grid task, not "
            f"family {exp_cfg['family']!r}, regime {tcfg.get('regime', 'gradient')!r}, task {exp_cfg['task']['name']!r}"
        )
    if not int(tcfg.get("stop_after_perfect", 0)):
        raise ValueError(
            "training.validate checks the stop of training.stop_after_perfect, which is 0 or unset"
        )
    scale, trials = int(vcfg["scale"]), int(vcfg["trials"])
    grid = tasks.evaluation_grid(exp_cfg, scale)
    task = tasks.make(exp_cfg["task"], channels=exp.family.channels(exp.model_cfg), grid=grid)
    n_steps = int(tcfg["rollout_steps"]) * scale
    key = rng.stream(seed, "validate")
    x0 = task.initial_states(jax.random.fold_in(key, 0), trials)
    k_roll = jax.random.fold_in(key, 1)

    # params, start states and key are arguments: every seed runs the same program
    @jax.jit
    def run(params, x0, k_roll):
        final = updates.rollout(exp.hard_step, exp.family.harden(params), x0, k_roll, exp.model_cfg, n_steps)
        acc = task.accuracy(final, x0)
        # 1 only if every rollout ends exact (a mean of many near-misses never rounds up to 1)
        return jnp.where(jnp.all(acc >= 1.0), 1.0, jnp.minimum(jnp.mean(acc), jnp.nextafter(1.0, 0.0)))

    return lambda params: float(run(params, x0, k_roll))


def make_train_step(
    exp: Experiment, static, tcfg: dict, optimizer, schedule_start: int = 0, rate: Any = None
) -> Callable:
    """``train_step(state, key[, static]) -> (state, metrics)`` of the rollout regime (jitted).
    The training method's schedules (the model's ``relax`` hook) count steps from
    ``schedule_start``: a restarted attempt's first step, so that each attempt runs them from
    their start, as it does its optimizer's; less the steps the schedule gate held them. A
    ``rate`` (:func:`attempt_optimizer`'s) is the learning rate on the same count."""
    batch, n_steps = tcfg["batch"], tcfg["rollout_steps"]
    gate = schedule_gate(tcfg)
    task, mcfg = exp.task, exp.model_cfg
    everything = whole_set(exp)
    objective = rollout_objective(exp, tcfg)

    def loss_fn(trainable, static, x0, key, k_relax, step_number):
        # the params in the model's training method (e.g. noise on discrete choices), once per step
        params = _training_params(exp, static, k_relax, step_number)(trainable)
        return objective(exp.step, params, x0, key)

    # The wiring is an argument, not a constant baked into the program: then every seed of an
    # experiment compiles to the same program, which the persistent compilation cache shares.
    @jax.jit
    def jitted_step(state: TrainState, static, key):
        k_x, k_roll = jax.random.split(key)
        x0 = task.initial_states(k_x, batch)
        schedule_step = state.step - schedule_start - (state.clock["held"] if gate else 0)
        (loss, final), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params,
            static,
            x0,
            k_roll,
            jax.random.fold_in(key, RELAX_STREAM),
            schedule_step,
        )
        metrics = {"soft_loss": loss, "grad_norm": optax.tree.norm(grads)}
        clock = state.clock
        if gate:
            clock = advance_clock(gate, clock, schedule_step, loss)
            metrics["schedule_held"] = clock["held"].astype(jnp.float32)
        if task.metrics is not None:
            metrics.update(task.metrics(final))
        if exp.hard_step is not None:
            # The deployed (hard) circuit on the same start states and async masks: its loss
            # and accuracy at the end of the rollout, and the gap between the loss it would
            # have had as the training objective and the objective training descended.
            hard_params = exp.family.harden(merge_params(state.params, static))
            hard_objective, hard_final = objective(exp.hard_step, hard_params, x0, k_roll)
            metrics["hard_loss"] = task.loss(hard_final, x0)
            metrics["hard_accuracy"] = jnp.mean(task.accuracy(hard_final, x0))
            metrics["gap"] = hard_objective - loss
            if everything is not None:
                soft = updates.rollout(
                    exp.step, merge_params(state.params, static), everything, k_roll, mcfg, n_steps
                )
                hard = updates.rollout(exp.hard_step, hard_params, everything, k_roll, mcfg, n_steps)
                metrics["soft_accuracy_all"] = jnp.mean(task.accuracy(soft, everything))
                metrics["hard_accuracy_all"] = jnp.mean(task.accuracy(hard, everything))
        upd, opt_state = optimizer.update(grads, state.opt_state, state.params)
        if rate is not None:
            lr = rate(schedule_step) if callable(rate) else rate
            upd = jax.tree.map(lambda u: u * lr, upd)
        params = optax.apply_updates(state.params, upd)
        # A gradient that overflowed (inf or NaN: backpropagation through a long rollout of a
        # nearly discrete circuit can grow without bound) is not applied: the step is skipped
        # and counted, and training goes on from the same params and optimizer state.
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        params, opt_state = jax.tree.map(
            lambda new, old: jnp.where(finite, new, old), (params, opt_state), (state.params, state.opt_state)
        )
        metrics["skipped_update"] = 1.0 - finite.astype(jnp.float32)
        if isinstance(opt_state, SpikeGuardState):  # optimizer.skip_spikes: a spike is skipped too
            metrics["skipped_update"] = jnp.maximum(metrics["skipped_update"], opt_state.skipped)
        if exp.family.probe is not None:
            metrics.update(exp.family.probe(merge_params(params, static), mcfg))
        return TrainState(params, opt_state, state.step + 1, clock=clock), metrics

    return _bind_static(jitted_step, static)


# --------------------------------------------------------------------------- evolution regime
#
# `training.regime: evolution`: an elitist evolution strategy (as seed 001's source ran it). The
# TrainState's params are the population (every leaf with a leading axis of `population`),
# sorted best first after each generation; its opt_state holds the fitness of the last
# evaluation. One generation: every individual rolls out the same `batch` start states with the
# same noise (common random numbers, drawn afresh each generation, so the elites are scored
# again on new replicates), is scored by the task's fitness, the `elites` best are kept
# unchanged and every other slot becomes a random elite plus Gaussian noise of std `mutation`.
# A dozen lines of JAX: a library (evosax) would add flax and its own random streams for this.


def population_size(tcfg: dict) -> int:
    return int(tcfg["population"]) if tcfg.get("regime", "gradient") == "evolution" else 1


def simulated_trajectories(tcfg: dict) -> int:
    """Trajectories one training step simulates: `batch` rollouts per individual evaluated (a
    gradient step's backward pass reuses its forward rollouts and is not counted)."""
    return int(tcfg["batch"]) * population_size(tcfg)


def init_population(exp: Experiment, seed: int, tcfg: dict):
    """(population, static): individual 0 is the run's ordinary initial params, individual i
    those params plus one Gaussian mutation (std ``mutation``) drawn with the init key folded
    with i: the population starts around the initial network, as later generations sit around
    their elites."""
    trainable, static = split_params(init_params(exp, seed))
    key = rng.stream(seed, "init")
    sigma = float(tcfg["mutation"])
    leaves, tree = jax.tree.flatten(trainable)
    members = [trainable]
    for i in range(1, int(tcfg["population"])):
        keys = jax.random.split(jax.random.fold_in(key, 10_000 + i), len(leaves))
        members.append(
            jax.tree.unflatten(
                tree, [x + sigma * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
            )
        )
    return jax.tree.map(lambda *xs: jnp.stack(xs), *members), static


def make_evolution_step(exp: Experiment, static, tcfg: dict) -> Callable:
    """``train_step(state, key[, static]) -> (state, metrics)`` of the evolution regime (jitted)."""
    n_pop, n_elite = int(tcfg["population"]), int(tcfg["elites"])
    sigma = float(tcfg["mutation"])
    batch, n_steps = tcfg["batch"], tcfg["rollout_steps"]
    task, mcfg = exp.task, exp.model_cfg
    if task.fitness is not None:
        fitness = lambda final, start: task.fitness(final)  # noqa: E731
    else:
        fitness = lambda final, start: -task.loss(final, start)  # noqa: E731

    @jax.jit
    def jitted_step(state: TrainState, static, key):
        k_x, k_roll, k_parent, k_mutate = jax.random.split(key, 4)
        x0 = task.initial_states(k_x, batch)

        def score(trainable):
            final = updates.rollout(exp.step, merge_params(trainable, static), x0, k_roll, mcfg, n_steps)
            return fitness(final, x0), (task.metrics(final) if task.metrics is not None else {})

        fit, per_member = jax.vmap(score)(state.params)
        order = jnp.argsort(-fit, stable=True)
        ranked = jax.tree.map(lambda x: x[order], state.params)
        parents = jax.random.randint(k_parent, (n_pop - n_elite,), 0, n_elite)
        leaves, tree = jax.tree.flatten(ranked)
        keys = jax.random.split(k_mutate, len(leaves))
        leaves = [
            jnp.concatenate(
                [x[:n_elite], x[parents] + sigma * jax.random.normal(k, x[parents].shape, x.dtype)]
            )
            for x, k in zip(leaves, keys)
        ]
        population = jax.tree.unflatten(tree, leaves)
        best = order[0]
        metrics = {
            "fitness_best": fit[best],
            "fitness_mean": jnp.mean(fit),
            **{k: v[best] for k, v in per_member.items()},
        }
        if exp.family.probe is not None:
            best_params = jax.tree.map(lambda x: x[0], ranked)
            metrics.update(exp.family.probe(merge_params(best_params, static), mcfg))
        return TrainState(population, fit[order], state.step + 1), metrics

    return _bind_static(jitted_step, static)


# --------------------------------------------------------------------------- online regime
#
# `training.regime: online` (seed 004): one long trajectory, trained one step at a time. Each
# training step takes the trajectory's current state x (a constant of the step: the gradient is
# cut between steps), runs one model step on it (the model's own small noise included) and
# descends the task loss of the new state. A sample whose new state is within the task's
# `epsilon` of the target gets a noise spike (std `spike_noise`) on that new state: the
# trajectory goes on from a perturbed start, a new simulated trajectory. (The design adds the
# spike to the step's input, s_prev, which its next line replaces by s_next: no spike would
# survive. Its source project adds it to the new state, as here.) The trajectory state
# and the spike count are the TrainState's carry, so a checkpoint resumes it bit for bit.


def initial_carry(exp: Experiment, seed: int, tcfg: dict) -> dict:
    """The online regime's start: ``batch`` start states of the task (stream ``trajectory``)."""
    x = exp.task.initial_states(rng.stream(seed, "trajectory"), int(tcfg["batch"]))
    # x: the state the next step starts from; out: the last step's output before any spike
    return {"x": x, "out": x, "spikes": jnp.asarray(0, jnp.int32)}


def make_online_step(exp: Experiment, static, tcfg: dict, optimizer) -> Callable:
    """``train_step(state, key[, static]) -> (state, metrics)`` of the online regime (jitted)."""
    task, mcfg = exp.task, exp.model_cfg
    spike_noise = float(tcfg["spike_noise"])
    if task.sample_loss is None or task.epsilon is None:
        raise ValueError(f"training.regime online needs a task with an epsilon, not {task.name!r}")

    @jax.jit
    def jitted_step(state: TrainState, static, key):
        k_step, k_spike = jax.random.split(key)
        # The state that enters the step is data: no gradient reaches the steps that made it.
        # The gradient of the loss reaches the params through this one step's update f(x).
        x = jax.lax.stop_gradient(state.carry["x"])

        def loss_fn(trainable):
            new = exp.step(merge_params(trainable, static), x, k_step, mcfg)
            per_sample = task.sample_loss(new)
            return jnp.mean(per_sample), (new, per_sample)

        (loss, (new, per_sample)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        upd, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, upd)
        arrived = per_sample < task.epsilon
        spiked = jnp.where(
            arrived.reshape(-1, *([1] * (new.ndim - 1))),
            new + spike_noise * jax.random.normal(k_spike, new.shape, new.dtype),
            new,
        )
        spikes = state.carry["spikes"] + jnp.sum(arrived).astype(jnp.int32)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), "spikes": spikes}
        carry = {"x": spiked, "out": new, "spikes": spikes}
        return TrainState(params, opt_state, state.step + 1, carry), metrics

    return _bind_static(jitted_step, static)


# --------------------------------------------------------------------------- pool regime
#
# `training.regime: pool` (the growing NCA's "persistent" and "regenerating" training): a pool
# of `pool_size` states, all the seed at first, is the TrainState's carry. Each step samples
# `batch` of them without replacement, sorts them by loss (highest first), replaces the
# `reseed_n` (default 1) highest-loss ones with fresh start states of the task (the growing NCA's
# seed; the advection NCA's random formations), zeroes a random circle in each of the `damage_n`
# lowest-loss ones, rolls the batch out for a random number of steps in [rollout_min,
# rollout_steps], descends the mean task loss of the final states, and writes the final states
# back to the pool slots they came from. With `accumulate` k > 1, k such micro-batches (distinct
# pool members) are rolled out and their gradients averaged into one update (the first
# micro-batch draws from the step key's own streams, so k = 1 is the plain step). The pool is
# in every checkpoint, so a resumed run is bit-identical.


# The start states that replace a batch's worst samples are drawn from fold_in(step key, this
# id) (the growth task's seed cell draws nothing).
SEED_STATE_STREAM = 11


def initial_pool(exp: Experiment, seed: int, tcfg: dict) -> dict:
    """The pool regime's start: ``pool_size`` copies of the task's start state."""
    return {"pool": exp.task.initial_states(rng.stream(seed, "pool"), int(tcfg["pool_size"]))}


def make_pool_step(exp: Experiment, static, tcfg: dict, optimizer) -> Callable:
    """``train_step(state, key[, static]) -> (state, metrics)`` of the pool regime (jitted)."""
    task, mcfg = exp.task, exp.model_cfg
    batch, pool_size = int(tcfg["batch"]), int(tcfg["pool_size"])
    longest, shortest = int(tcfg["rollout_steps"]), int(tcfg.get("rollout_min", tcfg["rollout_steps"]))
    n_damage = int(tcfg.get("damage_n", 0))
    reseed, accumulate = int(tcfg.get("reseed_n", 1)), int(tcfg.get("accumulate", 1))
    radius = tuple(float(r) for r in tcfg.get("damage_radius", [0.1, 0.4]))
    if task.sample_loss is None:
        raise ValueError(f"training.regime pool needs a task with a per-sample loss, not {task.name!r}")
    if not 0 <= n_damage < batch:
        raise ValueError(f"training.damage_n must be in [0, batch), got {n_damage} for batch {batch}")
    if batch * accumulate > pool_size:
        raise ValueError(
            f"training.batch {batch} x training.accumulate {accumulate} is larger than training.pool_size {pool_size}"
        )
    if not 0 <= reseed <= batch - n_damage:
        raise ValueError(f"training.reseed_n must be in [0, batch - damage_n], got {reseed}")

    @jax.jit
    def jitted_step(state: TrainState, static, key):
        k_pick, k_damage, k_len, k_roll = jax.random.split(key, 4)
        k_seed = jax.random.fold_in(key, SEED_STATE_STREAM)
        pool = state.carry["pool"]
        chosen = jax.random.permutation(k_pick, pool_size)[: batch * accumulate]
        params_of = _training_params(exp, static, jax.random.fold_in(key, RELAX_STREAM), state.step)
        grads_sum, losses, lengths, task_metrics = None, [], [], []
        for i in range(accumulate):  # micro-batches; the first draws from the step's own keys
            keys = (k_damage, k_len, k_roll, k_seed)
            k_dmg, k_ln, k_rl, k_sd = keys if i == 0 else (jax.random.fold_in(k, i) for k in keys)
            picked = chosen[i * batch : (i + 1) * batch]
            x = pool[picked]
            order = jnp.argsort(-task.sample_loss(x), stable=True)  # the highest loss first
            picked, x = picked[order], x[order]
            x = x.at[:reseed].set(task.initial_states(k_sd, reseed))
            if n_damage:
                _, h, w, _ = x.shape
                masks = damage.random_circles(k_dmg, n_damage, h, w, radius)
                x = x.at[batch - n_damage :].set(damage.apply(x[batch - n_damage :], masks))
            length = jax.random.randint(k_ln, (), shortest, longest + 1)

            def loss_fn(trainable, x=x, k_rl=k_rl, length=length):
                final = updates.rollout(
                    exp.step, params_of(trainable), x, k_rl, mcfg, longest, remat=True, length=length
                )
                return jnp.mean(task.sample_loss(final)), final

            (loss, final), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
            grads_sum = grads if grads_sum is None else jax.tree.map(jnp.add, grads_sum, grads)
            pool = pool.at[picked].set(final)
            losses.append(loss)
            lengths.append(length)
            if task.metrics is not None:
                task_metrics.append(task.metrics(final))
        grads = grads_sum if accumulate == 1 else jax.tree.map(lambda g: g / accumulate, grads_sum)
        upd, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, upd)
        metrics = {
            "loss": _mean(losses),
            "grad_norm": optax.tree.norm(grads),
            "rollout_length": _mean(lengths),
        }
        metrics.update(
            {k: _mean([m[k] for m in task_metrics]) for k in (task_metrics[0] if task_metrics else {})}
        )
        return TrainState(params, opt_state, state.step + 1, {"pool": pool}), metrics

    return _bind_static(jitted_step, static)


def _mean(values: list):
    return values[0] if len(values) == 1 else jnp.mean(jnp.stack(values))


def _training_params(exp: Experiment, static, k_relax, step_number) -> Callable:
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


def trace_frames(tcfg: dict) -> int:
    """Snapshots of the online trajectory a run keeps: step 0 and every ``snapshot_every``-th
    step (0: none)."""
    every = int(tcfg.get("snapshot_every", 0))
    return int(tcfg["steps"]) // every + 1 if every and tcfg.get("regime") == "online" else 0


def load_trace(path: str | Path) -> dict | None:
    """The snapshots of the training trajectory in a final checkpoint (``{"step": (n,),
    "state": (n, ...)}``, the frames taken), or None for a run that kept none."""
    arrays = checkpoint.read_arrays(path)
    if "['trace']['step']" not in arrays:
        return None
    steps = arrays["['trace']['step']"]
    taken = steps >= 0
    return {"step": steps[taken], "state": arrays["['trace']['state']"][taken]}


def latest_argmax(values) -> int:
    """The index of the last occurrence of the highest value (keep_best's kept step)."""
    v = np.asarray(values)
    return int(len(v) - 1 - np.argmax(v[::-1]))


def final_trainable(state: TrainState, tcfg: dict):
    """The trained params of a run: the params, or the population's best (its first member)."""
    if tcfg.get("regime", "gradient") == "evolution":
        return jax.tree.map(lambda x: x[0], state.params)
    return state.params


# --------------------------------------------------------------------------- the loop


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train(
    exp_cfg: dict,
    seed: int,
    *,
    experiment: str,
    preset: str,
    progress_dir: str | Path,
    log: Callable[[str], None] = _log,
) -> dict:
    """Train one (experiment, seed); resume from the newest checkpoint in ``progress_dir``.

    Checkpoints go to ``progress_dir/<config hash>/step_<n>`` every ``checkpoint_every`` steps;
    the two newest are kept. Returns ``{"state", "static", "history", "metadata", "timing"}``.
    """
    tcfg = exp_cfg["training"]
    total = int(tcfg["steps"])
    exp = build(exp_cfg)
    prov = provenance.record(experiment, seed, preset, exp_cfg)
    run_dir = Path(progress_dir) / prov["config_hash"]

    regime = tcfg.get("regime", "gradient")
    evolution, online, pooled = regime == "evolution", regime == "online", regime == "pool"
    if (online or pooled) and int(tcfg.get("restart_after", 0)):
        raise ValueError(f"training.restart_after is not available with training.regime {regime}")
    if evolution:
        trainable, static = init_population(exp, seed, tcfg)
        state = TrainState(
            trainable, jnp.zeros(int(tcfg["population"]), jnp.float32), jnp.asarray(0, jnp.int32)
        )
        metric_names = ["fitness_best", "fitness_mean"]
    else:
        trainable, static = split_params(init_params(exp, seed))
        optimizer, rate = attempt_optimizer(tcfg, total)
        carry = (
            initial_carry(exp, seed, tcfg) if online else initial_pool(exp, seed, tcfg) if pooled else None
        )
        state = TrainState(
            trainable, optimizer.init(trainable), jnp.asarray(0, jnp.int32), carry, initial_clock(tcfg)
        )
        if online:
            metric_names = ["loss", "grad_norm", "spikes"]
        elif pooled:
            metric_names = ["loss", "grad_norm", "rollout_length"]
        else:
            metric_names = ["soft_loss"] + (["hard_loss", "hard_accuracy", "gap"] if exp.hard_step else [])
            if whole_set(exp) is not None:
                metric_names += ["soft_accuracy_all", "hard_accuracy_all"]
            metric_names += ["grad_norm", "skipped_update"]
            if schedule_gate(tcfg) is not None:
                metric_names.append("schedule_held")
    metric_names += list(exp.task.metric_names)
    if exp.family.probe is not None:
        metric_names += list(
            exp.family.probe(merge_params(final_trainable(state, tcfg), static), exp.model_cfg)
        )
    objective = metric_names[0]
    # Optional `validate`: a stop of stop_after_perfect needs the step's circuit to hold on a
    # larger grid too (make_validator); checked when the streak is reached, then every
    # `every` steps while it lasts, and logged as validation_accuracy (NaN where not run).
    validator = make_validator(exp, exp_cfg, seed)
    validate_every = int(validate_settings(tcfg).get("every", 0))
    if validator is not None:
        metric_names.append("validation_accuracy")
    # Optional restarts: an attempt none of whose steps reached the goal (`restart_goal`, a
    # train.csv metric and the value it must reach; by default an exact hard circuit,
    # hard_accuracy 1, or with validate a validated one, validation_accuracy 1) within
    # `restart_after` steps starts again from new initial params and a fresh optimizer whose
    # schedule is as long as the first one's, or the steps left of the budget (`steps`) if
    # fewer, so that a late attempt still ends at the final learning rate.
    # train.csv's `attempt` column says which row is which.
    restart_after = 0 if evolution else int(tcfg.get("restart_after", 0))
    goal = tcfg.get(
        "restart_goal", {"metric": "validation_accuracy" if validator else "hard_accuracy", "at_least": 1.0}
    )
    if restart_after:
        if goal["metric"] not in metric_names:
            raise ValueError(
                f"training.restart_goal.metric is {goal['metric']!r}, not a metric of this run: {metric_names}"
            )
        metric_names.append("attempt")
    history = {k: np.full(total, np.nan, np.float32) for k in metric_names}
    # Optional `keep_best: <metric>`: the run's result is the iterate whose training step scored
    # highest on that train.csv column, not the last one; of steps that tie, the latest (a run
    # that stops after a streak of exact steps keeps the streak's last, the most trained circuit
    # and the one the streak vouches for, not its first, which one draw of the rollout passed).
    # The kept params travel in the checkpoints; their step, score and attempt are the history's.
    keep = None if evolution else tcfg.get("keep_best")
    polishing = bool(tcfg.get("polish"))
    if polishing and (exp.family.polish is None or evolution or online or pooled):
        raise ValueError(
            "training.polish needs a model family that can repair its trained circuit (DiffLogic) "
            f"and the rollout regime, not family {exp_cfg['family']!r} with regime {regime!r}"
        )
    if keep is not None and keep not in metric_names:
        raise ValueError(f"training.keep_best names {keep!r}, not a metric of this run: {metric_names}")
    kept = state.params if keep else None
    # The online regime's snapshots of its trajectory (sample 0, the step's output before any
    # spike): step 0 and every `snapshot_every`-th step; unfilled frames keep step -1.
    n_frames = trace_frames(tcfg)
    trace = None
    if n_frames:
        shape = state.carry["x"].shape[1:]
        trace = {"step": np.full(n_frames, -1, np.int32), "state": np.zeros((n_frames, *shape), np.float32)}
        trace["step"][0], trace["state"][0] = 0, np.asarray(state.carry["out"][0])
    snapshot_every = int(tcfg.get("snapshot_every", 0))
    max_spikes = int(tcfg.get("max_spikes", 0)) if online else 0

    start = attempt = attempt_start = 0
    last = checkpoint.latest(run_dir)
    if last is not None:
        tree, meta = checkpoint.load(last, progress_tree(state, history, kept, trace))
        state, history = tree[:2]
        extras = tree[2] if len(tree) > 2 else {}
        kept, trace = extras.get("kept", kept), extras.get("trace", trace)
        state = jax.tree.map(jnp.asarray, state)
        start = int(state.step)
        log(f"resuming {experiment} seed {seed} from {last} (step {start}/{total})")
        attempt = int(meta.get("attempt", 0))
        if attempt:
            _, static = split_params(init_params(exp, seed, attempt))
            earlier = np.flatnonzero(history["attempt"][:start] == attempt)
            attempt_start = int(earlier[0]) if len(earlier) else start
            optimizer, rate = attempt_optimizer(tcfg, total - attempt_start)
    reached = restart_after and bool(np.any(history[goal["metric"]][attempt_start:start] >= goal["at_least"]))
    best_score = float(np.max(history[keep][:start])) if keep and start else -math.inf

    if evolution:
        train_step = make_evolution_step(exp, static, tcfg)
    elif online:
        train_step = make_online_step(exp, static, tcfg, optimizer)
    elif pooled:
        train_step = make_pool_step(exp, static, tcfg, optimizer)
    else:
        train_step = make_train_step(exp, static, tcfg, optimizer, attempt_start, rate)
    key_train = rng.stream(seed, "train")
    every = int(tcfg.get("checkpoint_every", max(1, total // 10)))
    log_every = int(tcfg.get("log_every", max(1, total // 50)))
    # Optional early stop: the hard circuit was exact on every training rollout of the last
    # `patience` steps (2 x patience fresh random start states for batch 2), or on the task's
    # whole evaluation set where it is logged (the Game of Life's 512 configurations).
    patience = int(tcfg.get("stop_after_perfect", 0))
    perfect = "hard_accuracy_all" if "hard_accuracy_all" in history else "hard_accuracy"
    streak = 0
    if patience and perfect in history:
        # the current attempt's streak (a restart ends the one before it)
        for acc in history[perfect][attempt_start:start][::-1]:
            if acc < 1.0:
                break
            streak += 1
    t0 = time.perf_counter()
    t_compile = None
    end = start
    validated_params = None
    for i in range(start, total):
        before = state.params
        state, metrics = train_step(state, jax.random.fold_in(key_train, i), static)
        metrics = {k: float(v) for k, v in metrics.items()}
        if patience:
            streak = streak + 1 if metrics[perfect] >= 1.0 else 0
            if validator is not None and streak >= patience and (streak - patience) % validate_every == 0:
                metrics["validation_accuracy"] = validator(merge_params(before, static))
        if keep and metrics.get(keep, -math.inf) >= best_score:
            best_score, kept = metrics[keep], before  # a step's metrics are its starting params'
        if restart_after:
            metrics["attempt"] = attempt
        if t_compile is None:
            t_compile = time.perf_counter() - t0
            t_loop = time.perf_counter()
        if not math.isfinite(metrics[objective]):
            recent = ", ".join(f"{x:.4g}" for x in history[objective][max(0, i - 10) : i])
            raise TrainingDiverged(
                f"{experiment} seed {seed}: {objective.replace('_', ' ')} is {metrics[objective]} at step {i}; "
                f"the previous values were [{recent}]. No outputs were written."
            )
        for k, v in metrics.items():
            history[k][i] = v
        done = end = i + 1
        if trace is not None and done % snapshot_every == 0:
            trace["step"][done // snapshot_every] = done
            trace["state"][done // snapshot_every] = np.asarray(state.carry["out"][0])
        if max_spikes and metrics["spikes"] >= max_spikes:
            log(f"[{experiment} seed {seed}] step {done}: {max_spikes} noise spikes; stopping")
            break
        if patience and streak >= patience:
            held = f"[{experiment} seed {seed}] step {done}: hard accuracy 100% for {streak} steps"
            if validator is None:
                log(f"{held}; stopping")
                break
            if "validation_accuracy" in metrics:
                v = validate_settings(tcfg)
                where = f"{v['trials']} rollouts of the {v['scale']}x grid"
                if metrics["validation_accuracy"] >= 1.0:
                    log(f"{held}, and exact on {where}; stopping")
                    validated_params = before  # the step's metrics (and its check) are its starting params'
                    break
                # six significant digits: a near miss must not print as 100%
                log(
                    f"{held}, {100 * metrics['validation_accuracy']:.6g}% of cells right on {where}; training on"
                )
        if restart_after:
            reached = reached or metrics.get(goal["metric"], -math.inf) >= goal["at_least"]
            if not reached and done - attempt_start >= restart_after and done < total:
                attempt, attempt_start = attempt + 1, done
                log(
                    f"[{experiment} seed {seed}] step {done}: no step reached {goal['metric']} "
                    f"{goal['at_least']:g} in {restart_after} steps; restarting from new initial params "
                    f"(attempt {attempt + 1})"
                )
                trainable, static = split_params(init_params(exp, seed, attempt))
                streak = 0  # an attempt that ends on exact (unvalidated) steps passes no streak on
                optimizer, rate = attempt_optimizer(tcfg, total - done)
                state = TrainState(
                    trainable, optimizer.init(trainable), state.step, clock=initial_clock(tcfg)
                )
                train_step = make_train_step(exp, static, tcfg, optimizer, attempt_start, rate)
        if done % log_every == 0 or done == total:
            pace = (time.perf_counter() - t_loop) / max(1, done - start - 1) if done - start > 1 else 0.0
            eta = pace * (total - done)
            msg = " ".join(f"{k} {v:.4g}" for k, v in metrics.items() if "@" not in k)
            log(f"[{experiment} seed {seed}] step {done}/{total} {msg} ({pace:.3f} s/step, eta {eta:.0f} s)")
        if done % every == 0 and done < total:
            meta = {**prov, "step": done, **({"attempt": attempt} if attempt else {})}
            checkpoint.save(run_dir / f"step_{done:07d}", progress_tree(state, history, kept, trace), meta)
            for old in sorted(run_dir.glob("step_*"))[:-2]:
                _remove_tree(old)
    elapsed = time.perf_counter() - t0
    trained = end - start
    history = {k: v[:end] for k, v in history.items()}
    timing = {
        "train_seconds": elapsed,
        "compile_seconds": t_compile or 0.0,
        "seconds_per_step": (elapsed - (t_compile or 0.0)) / max(1, trained - 1),
        "steps_run": trained,
        "resumed_from": start,
        # the budget: rollouts simulated (an evolution step's whole population counts)
        "simulated_trajectories": end * simulated_trajectories(tcfg),
    }
    metadata = {**prov, "step": end, "config": exp_cfg, **({"attempt": attempt} if attempt else {})}
    params = merge_params(final_trainable(state, tcfg), static)
    best = None
    if keep:
        k = latest_argmax(history[keep])
        best = {"params": kept, "step": k, "score": float(history[keep][k])}
        kept_attempt = int(history["attempt"][k]) if restart_after else 0
        # the wiring of the attempt the kept step belongs to
        kept_static = (
            static if kept_attempt == attempt else split_params(init_params(exp, seed, kept_attempt))[1]
        )
        params = merge_params(jax.tree.map(jnp.asarray, kept), kept_static)
        metadata["kept_step"] = k
        log(f"[{experiment} seed {seed}] kept the params of step {k}: {keep} {best['score']:.4g}")
    if validated_params is not None:  # a validated stop delivers the circuit it validated
        params = merge_params(validated_params, static)
    # A run that stopped on a validated circuit (exact on its training rollouts and on the
    # larger grid's) has nothing to repair: the polish's objective would only trade its gates
    # for a pattern formed a few steps sooner on the training grid.
    if polishing and validated_params is not None:
        log(f"[{experiment} seed {seed}] the kept circuit passed validation; not polished")
    elif polishing:
        polished, report = polish(exp, params, tcfg, seed, lambda m: log(f"[{experiment} seed {seed}] {m}"))
        if validator is not None and report["changes"]:
            # the switches are scored on the training grid: keep them only if the circuit holds
            # on the validation rollouts at least as well as before
            ahead = {"before": validator(params), "after": validator(polished)}
            report["validation_accuracy"] = ahead
            if ahead["after"] < ahead["before"]:
                report["kept"] = "trained"
                log(
                    f"[{experiment} seed {seed}] the polished circuit is worse on the validation rollouts "
                    f"({ahead['after']:.4g} < {ahead['before']:.4g}); keeping the trained one"
                )
                polished = params
        params = polished
        log(f"[{experiment} seed {seed}] polished: {json.dumps(report)}")
        timing["polish_seconds"] = report.pop("seconds")  # the metadata stays byte-identical
        metadata["polish"] = report
    return {
        "state": state,
        "static": static,
        "params": params,
        "history": history,
        "metadata": metadata,
        "timing": timing,
        "kept": best,  # keep_best: {"params", "step", "score"} of the kept step (None otherwise)
        "trace": trace,  # online regime: snapshots of the trajectory (None otherwise)
    }


def progress_tree(state: TrainState, history: dict, kept=None, trace=None) -> tuple:
    """What an intermediate checkpoint holds: ``(state, history)``, and a dict of what else the
    run keeps (``kept``: keep_best's params, ``trace``: the online trajectory's snapshots)."""
    extras = {k: v for k, v in (("kept", kept), ("trace", trace)) if v is not None}
    return (state, history, extras) if extras else (state, history)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def final_params(state: TrainState, static):
    return merge_params(state.params, static)


def load_params(exp: Experiment, path: str | Path, seed: int):
    """The trained params of a final checkpoint (written by the train rule)."""
    template = init_params(exp, seed)
    tree, _ = checkpoint.load(path, {"params": template})
    return jax.tree.map(jnp.asarray, tree["params"])


def clear_progress(progress_dir: str | Path, cfg_hash: str) -> None:
    """Remove a finished run's intermediate checkpoints (the final checkpoint holds it all)."""
    run_dir = Path(progress_dir) / cfg_hash
    _remove_tree(run_dir)
    with contextlib.suppress(OSError):
        Path(progress_dir).rmdir()  # only if no other config's checkpoints are left


def load_checked_params(exp: Experiment, path: str | Path, seed: int, exp_cfg: dict):
    """Like :func:`load_params`, refusing a checkpoint trained with another config."""
    meta = checkpoint.read_metadata(path)
    want = provenance.config_hash(exp_cfg)
    if meta.get("config_hash") != want:
        raise checkpoint.CheckpointError(
            f"checkpoint {path} was trained with config hash {meta.get('config_hash')}, the config now "
            f"hashes to {want}; rerun its train job"
        )
    return load_params(exp, path, seed)
