"""The training regimes' steps. They never know which model they train.

The rollout regime (the DiffLogic checkerboard's): each step draws fresh start states, rolls the
model out for ``rollout_steps`` steps (sync or async), and descends the task loss of the final
state by backpropagation through time. Discrete (hard) models also get the loss and accuracy of
the hard circuit on the same start states and the same async masks, for the log only. The
evolution, online and pool regimes below say what they do in their own sections.

Each ``make_*_step`` returns ``train_step(state, key[, static]) -> (state, metrics)``, jitted, on
an :class:`~morphogen.experiment.TrainState`; :mod:`morphogen.training` runs the loop around it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from morphogen import damage, rng, updates
from morphogen.experiment import (
    RELAX_STREAM,
    Experiment,
    TrainState,
    bind_static,
    init_params,
    merge_params,
    split_params,
    training_params,
)
from morphogen.optimizers import SpikeGuardState
from morphogen.schedule_gate import advance_clock, schedule_gate

# --------------------------------------------------------------------------- rollout regime


def whole_set(exp: Experiment):
    """The start states on which the rollout regime logs ``soft_accuracy_all`` and
    ``hard_accuracy_all`` every step, or None: a task's fixed evaluation set, small enough to run
    every step (the Game of Life's 512 configurations), of a model with a hard circuit."""
    task = exp.task
    if exp.hard_step is None or task.evaluation_states is None or task.accuracy is None:
        return None
    return jnp.asarray(task.evaluation_states(None, 0))


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
        params = training_params(exp, static, k_relax, step_number)(trainable)
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

    return bind_static(jitted_step, static)


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

    return bind_static(jitted_step, static)


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

    return bind_static(jitted_step, static)


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
        params_of = training_params(exp, static, jax.random.fold_in(key, RELAX_STREAM), state.step)
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

    return bind_static(jitted_step, static)


def _mean(values: list):
    return values[0] if len(values) == 1 else jnp.mean(jnp.stack(values))
