"""The training loop, around whichever regime's step (:mod:`morphogen.regimes`) a config
names: checkpoints every ``checkpoint_every`` steps and resumes from the newest, restarted
attempts, the kept best step, validation on a larger grid, the discrete polish, and a clean stop
when the loss diverges. It never knows which model it trains.

The experiment pieces (:mod:`morphogen.experiment`) and the regimes' steps are importable from
here too, where the rest of the project and the tests reach them.
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
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from morphogen import checkpoint, provenance, rng, tasks, updates
from morphogen.experiment import (
    Experiment,
    TrainingDiverged,
    TrainState,
    build,
    init_params,
    merge_params,
    split_params,
)
from morphogen.optimizers import learning_rate, make_optimizer
from morphogen.regimes import (
    init_population,
    initial_carry,
    initial_pool,
    make_evolution_step,
    make_online_step,
    make_pool_step,
    make_train_step,
    rollout_objective,
    simulated_trajectories,
    whole_set,
)
from morphogen.schedule_gate import initial_clock, schedule_gate


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


def restart_goals(tcfg: dict, validated: bool) -> list[dict]:
    """The goals an attempt must meet to go on (``training.restart_goal``): each a train.csv
    metric, the value some step of the attempt must reach, and by which step of the attempt
    (``after``; default ``restart_after``). One goal or a list of them; by default one, an
    exact hard circuit (hard_accuracy 1), or with validation a validated one
    (validation_accuracy 1), in ``restart_after`` steps."""
    after = int(tcfg.get("restart_after", 0))
    goal = tcfg.get(
        "restart_goal", {"metric": "validation_accuracy" if validated else "hard_accuracy", "at_least": 1.0}
    )
    goals = [goal] if isinstance(goal, dict) else list(goal)
    return [
        {"metric": g["metric"], "at_least": float(g["at_least"]), "after": int(g.get("after", after))}
        for g in goals
    ]


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

# A step whose loss overflowed (inf or NaN) from finite params has its update skipped, as one
# whose gradient did (the rollout regime's step never applies a non-finite gradient), and the
# run goes on; it stops with TrainingDiverged when the loss overflows again after this many such
# steps in a row, or when the params themselves are not finite. (A relaxed DiffLogic rollout can
# overflow on one step's draws: a circuit that amplifies the rounding error of a state just
# outside [0, 1] grows it geometrically from step to step.)
MAX_OVERFLOWED_STEPS = 10


def _finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))


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
    # Optional restarts: an attempt none of whose steps reached a goal (restart_goals: a
    # train.csv metric, the value it must reach, and by which step of the attempt) in time
    # starts again from new initial params and a fresh optimizer whose schedule is as long as
    # the first one's, or the steps left of the budget (`steps`) if fewer, so that a late
    # attempt still ends at the final learning rate. train.csv's `attempt` column says which
    # row is which.
    restart_after = 0 if evolution else int(tcfg.get("restart_after", 0))
    goals = restart_goals(tcfg, validator is not None) if restart_after else []
    for i, g in enumerate(goals):
        where = "training.restart_goal" + (f"[{i}]" if isinstance(tcfg.get("restart_goal"), list) else "")
        if g["metric"] not in metric_names:
            raise ValueError(f"{where}.metric is {g['metric']!r}, not a metric of this run: {metric_names}")
        if g["after"] < 1:
            raise ValueError(f"{where}.after is {g['after']}: an attempt must have at least one step")
    if restart_after:
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
    reached = [bool(np.any(history[g["metric"]][attempt_start:start] >= g["at_least"])) for g in goals]
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
    # the steps in a row, up to the resumed one, whose loss overflowed (and were skipped)
    finite_until = np.flatnonzero(np.isfinite(history[objective][:start]))
    overflowed = start - 1 - int(finite_until[-1]) if len(finite_until) else start
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
        if math.isfinite(metrics[objective]):
            overflowed = 0
        elif (
            metrics.get("skipped_update") == 1.0
            and overflowed < MAX_OVERFLOWED_STEPS
            and _finite(state.params)
        ):
            # The rollout overflowed from finite params and the step was skipped (params and
            # optimizer state unchanged): the next step's draws (start states, hard gates) may not.
            overflowed += 1
        else:
            recent = ", ".join(f"{x:.4g}" for x in history[objective][max(0, i - 10) : i])
            raise TrainingDiverged(
                f"{experiment} seed {seed}: {objective.replace('_', ' ')} is {metrics[objective]} at step {i}"
                + (f" ({overflowed} steps in a row skipped before it)" if overflowed else "")
                + f"; the previous values were [{recent}]. No outputs were written."
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
        reached = [r or metrics.get(g["metric"], -math.inf) >= g["at_least"] for r, g in zip(reached, goals)]
        missed = [g for r, g in zip(reached, goals) if not r and done - attempt_start >= g["after"]]
        if missed and done < total:
            g = missed[0]
            attempt, attempt_start = attempt + 1, done
            reached = [False] * len(goals)
            log(
                f"[{experiment} seed {seed}] step {done}: no step of attempt {attempt} reached "
                f"{g['metric']} {g['at_least']:g} in {g['after']} steps; restarting from new initial "
                f"params (attempt {attempt + 1})"
            )
            trainable, static = split_params(init_params(exp, seed, attempt))
            streak = 0  # an attempt that ends on exact (unvalidated) steps passes no streak on
            optimizer, rate = attempt_optimizer(tcfg, total - done)
            state = TrainState(trainable, optimizer.init(trainable), state.step, clock=initial_clock(tcfg))
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
