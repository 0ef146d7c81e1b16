"""Training: the loss goes down, a killed run resumes bit-identically, divergence is caught."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, assert_resumes_bit_identical, compile_cache_env

from morphogen import checkpoint, optimizers, training


def _train(cfg, tmp_path, name="run", seed=0, log=lambda m: None):
    return training.train(cfg, seed, experiment="tiny", preset="unit", progress_dir=tmp_path / name, log=log)


def test_a_few_training_steps_reduce_the_loss(tiny_experiment, tmp_path):
    cfg = tiny_experiment
    cfg["training"].update(steps=40, batch=4, checkpoint_every=1000)
    cfg["training"]["optimizer"]["lr"] = 0.1
    cfg["model"]["pass_through_logit"] = 2.0  # leave the pass-through plateau quickly
    h = _train(cfg, tmp_path)["history"]["soft_loss"]
    assert np.all(np.isfinite(h))
    # A tiny circuit leaves the 0.5-everywhere plateau slowly: the loss must fall steadily.
    assert h[-10:].mean() < 0.99 * h[:10].mean(), h
    assert h[-10:].mean() < h[-20:-10].mean() < h[:10].mean(), h


def test_history_has_soft_hard_loss_and_accuracy(tiny_experiment, tmp_path):
    r = _train(tiny_experiment, tmp_path)
    assert set(r["history"]) == {
        "soft_loss",
        "hard_loss",
        "hard_accuracy",
        "gap",
        "grad_norm",
        "skipped_update",
    }
    acc = r["history"]["hard_accuracy"]
    assert np.all((acc >= 0) & (acc <= 1))
    # The hard loss counts wrong cells of channel 0: batch * cells * (1 - accuracy).
    cells = 2 * 8 * 8
    np.testing.assert_allclose(r["history"]["hard_loss"], cells * (1 - acc), atol=1e-3)


def test_same_seed_same_result_other_seed_other_result(tiny_experiment, tmp_path):
    a = _train(tiny_experiment, tmp_path, "a")["history"]["soft_loss"]
    b = _train(tiny_experiment, tmp_path, "b")["history"]["soft_loss"]
    c = _train(tiny_experiment, tmp_path, "c", seed=1)["history"]["soft_loss"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_divergence_stops_with_the_step_and_loss_history(tiny_experiment, tmp_path):
    cfg = tiny_experiment
    cfg["training"]["optimizer"]["lr"] = float("inf")
    with pytest.raises(training.TrainingDiverged, match=r"at step \d+; the previous values were"):
        _train(cfg, tmp_path)


def _overflowing(monkeypatch, rate: float) -> None:
    """Make every experiment's relaxed step overflow (NaN) on a share ``rate`` of its draws, as a
    DiffLogic circuit that amplifies rounding error does on some steps' choice of hard gates."""
    build = training.build

    def overflowing_build(cfg):
        exp = build(cfg)

        def step(params, state, key, mcfg):
            new = exp.step(params, state, key, mcfg)
            blown = jax.random.uniform(jax.random.fold_in(key, 99)) < rate
            return new * jnp.where(blown, jnp.inf, 1.0)  # inf or NaN, and so is the gradient

        return exp._replace(step=step)

    monkeypatch.setattr(training, "build", overflowing_build)


def test_a_step_whose_rollout_overflows_is_skipped_and_training_goes_on(
    tiny_experiment, tmp_path, monkeypatch
):
    _overflowing(monkeypatch, 0.05)  # about one training step in four (6 rollout steps)
    cfg = tiny_experiment
    r = _train(cfg, tmp_path)
    h = r["history"]
    overflowed = ~np.isfinite(h["soft_loss"])
    assert len(overflowed) == cfg["training"]["steps"] and 2 <= overflowed.sum() <= 10
    assert np.all(h["skipped_update"][overflowed] == 1.0)
    assert all(np.all(np.isfinite(x)) for x in _final_params(r))
    assert np.all(np.isfinite(h["hard_loss"]))  # the deployed circuit never overflows
    # the skipped steps' count carries over a checkpoint: the resumed run is the same run
    assert_resumes_bit_identical(cfg, tmp_path / "resume", cut=10)


def test_a_rollout_that_keeps_overflowing_stops_the_run(tiny_experiment, tmp_path, monkeypatch):
    _overflowing(monkeypatch, 1.0)
    with pytest.raises(
        training.TrainingDiverged,
        match=rf"nan at step {training.MAX_OVERFLOWED_STEPS} \({training.MAX_OVERFLOWED_STEPS} steps in a row skipped",
    ):
        _train(tiny_experiment, tmp_path)


def _final_params(result):
    return jax.tree.leaves(training.final_params(result["state"], result["static"]))


# A gate whose running loss mean the tiny run never gets under: its schedules are held for 12
# steps from step 3 (checkpoints every 5 steps: the resumed run starts with the gate half-way).
HOLDING_GATE = {"at": 3, "below": 1e-6, "max_wait": 12}


@pytest.mark.parametrize(
    "relaxation,skip_spikes,wiring,gate,form",
    [
        ("softmax", None, "shared", None, "operations"),
        ("gumbel_st", None, "shared", None, "operations"),
        ("mixed_st", 1.5, "shared", None, "operations"),
        ("mixed_st", None, "learned", None, "operations"),
        ("mixed_st", None, "shared", HOLDING_GATE, "operations"),
        ("mixed_st", None, "shared", None, "truth_table"),
    ],
)
def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(
    tiny_experiment, tmp_path, relaxation, skip_spikes, wiring, gate, form
):
    """Also with a training method that draws noise every step (gumbel_st's Gumbel noise,
    mixed_st's choice of hard gates): the draws come from the step's key, not from state; with
    the spike guard, whose running norm is optimizer state (a factor of 1.5 skips steps); with
    learned perception wiring (its wire logits are trained params, its choices drawn); and with
    a schedule gate holding the hardening when the run is cut (its clock is state); and with
    truth-table gates (4 logits a gate)."""
    tiny_experiment["model"].update(
        relaxation=relaxation, pass_through_logit=2.0, perception_wiring=wiring, gate_parametrisation=form
    )
    tiny_experiment["training"]["optimizer"]["skip_spikes"] = skip_spikes
    if relaxation == "mixed_st":
        tiny_experiment["model"].update(hard_fraction=1.0, hard_fraction_start=3, hard_fraction_steps=10)
    tiny_experiment["training"]["schedule_gate"] = gate
    full = _train(tiny_experiment, tmp_path, "full")
    if skip_spikes:
        assert 0 < np.sum(full["history"]["skipped_update"]) < len(full["history"]["skipped_update"])
    if gate:
        held = full["history"]["schedule_held"]
        assert held[9] > 0 and held[-1] == gate["max_wait"], held
    # Interrupted: the same run stopped after 10 steps (two checkpoints), then resumed.
    short = {**tiny_experiment, "training": {**tiny_experiment["training"], "steps": 10}}
    part = training.train(
        short, 0, experiment="tiny", preset="unit", progress_dir=tmp_path / "cut", log=lambda m: None
    )
    # Move its state to the progress folder of the full config, as a killed job would leave it.
    from morphogen import provenance

    dst = tmp_path / "cut2" / provenance.config_hash(tiny_experiment) / "step_0000010"
    history = {k: np.concatenate([v, np.full(10, np.nan, np.float32)]) for k, v in part["history"].items()}
    checkpoint.save(dst, (part["state"], history), {"step": 10})
    resumed = training.train(
        tiny_experiment,
        0,
        experiment="tiny",
        preset="unit",
        progress_dir=tmp_path / "cut2",
        log=lambda m: None,
    )
    assert resumed["timing"]["resumed_from"] == 10
    for x, y in zip(_final_params(full), _final_params(resumed)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for k in full["history"]:
        np.testing.assert_array_equal(full["history"][k], resumed["history"][k])


def _gated(cfg, below, max_wait=100, hold_lr=True):
    cfg = {**cfg, "training": {**cfg["training"], "steps": 16}}
    cfg["model"] = {**cfg["model"], "relaxation": "mixed_st", "pass_through_logit": 2.0, "hard_fraction": 1.0,
                    "hard_fraction_start": 4, "hard_fraction_steps": 4}  # fmt: skip
    # the learning rate falls tenfold at step 6
    cfg["training"]["optimizer"] = {**cfg["training"]["optimizer"], "schedule": "piecewise", "decay_at": [6]}
    if below is not None:
        cfg["training"]["schedule_gate"] = {"at": 4, "below": below, "max_wait": max_wait, "hold_lr": hold_lr}
    return cfg


def test_the_schedule_gate_holds_the_hardening_until_the_loss_is_low(tiny_experiment, tmp_path):
    """A gate the loss passes at once changes nothing; one it never passes holds the hardening
    and the learning rate's schedule for max_wait steps, the run training its mixture as if both
    started that late."""
    plain = _train(_gated(tiny_experiment, None), tmp_path, "plain")["history"]
    open_ = _train(_gated(tiny_experiment, 1e9), tmp_path, "open")["history"]
    assert not np.any(open_["schedule_held"])
    for k in plain:
        np.testing.assert_array_equal(plain[k], open_[k])
    # Held for 6 steps at schedule step 4 (steps 4-9): the hardening starts at step 10 and the
    # learning rate falls at step 12.
    held = _train(_gated(tiny_experiment, 1e-9, max_wait=6), tmp_path, "held")["history"]
    np.testing.assert_array_equal(held["schedule_held"], [0] * 4 + list(range(1, 7)) + [6] * 6)
    late = _gated(tiny_experiment, None)
    late["model"]["hard_fraction_start"] = 10
    late["training"]["optimizer"]["decay_at"] = [12]
    late = _train(late, tmp_path, "late")["history"]
    np.testing.assert_array_equal(held["soft_loss"], late["soft_loss"])
    # without hold_lr the learning rate falls at step 6 as in the plain run
    unheld = _train(_gated(tiny_experiment, 1e-9, max_wait=6, hold_lr=False), tmp_path, "unheld")["history"]
    np.testing.assert_array_equal(unheld["soft_loss"][:7], held["soft_loss"][:7])
    assert not np.array_equal(unheld["soft_loss"][7:], held["soft_loss"][7:])
    # the hardening changes the loss it trains on: the held run differs from the plain one there
    np.testing.assert_array_equal(held["soft_loss"][:5], plain["soft_loss"][:5])
    assert not np.array_equal(held["soft_loss"][5:], plain["soft_loss"][5:])


def test_a_schedule_gate_outside_the_gradient_regime_is_refused():
    with pytest.raises(
        ValueError, match="training.schedule_gate is not available with training.regime online"
    ):
        training.schedule_gate({"regime": "online", "schedule_gate": HOLDING_GATE})


KILL_SCRIPT = """
import json, sys
from morphogen import checkpoint, training
cfg = json.loads(sys.argv[1])
r = training.train(cfg, 0, experiment="tiny", preset="unit", progress_dir=sys.argv[2])
checkpoint.save(sys.argv[3], (r["state"], r["history"]), {"step": int(r["state"].step)})
"""

STEP_LINE = re.compile(r"\] step (\d+)/")


def _train_process(cfg, progress, out):
    # The processes share a compilation cache beside the progress folder: each rerun loads the
    # programs the first compiled (as a killed job rerun by the workflow does).
    cache = compile_cache_env(Path(progress).parent / "jax_cache")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1", **cache}
    return subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, json.dumps(cfg), str(progress), str(out)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def test_training_killed_five_times_at_random_steps_ends_bit_identical(tiny_experiment, tmp_path):
    """SIGKILL the training process at five random steps (between checkpoints); each rerun
    resumes from the last checkpoint, and the final checkpoint equals an uninterrupted run's
    byte for byte."""
    cfg = tiny_experiment
    total = 80
    cfg["training"].update(steps=total, checkpoint_every=7, log_every=1)
    reference = _train_process(cfg, tmp_path / "ref_progress", tmp_path / "ref_final")
    assert reference.wait(timeout=300) == 0, reference.stderr.read()[-2000:]

    progress, final = tmp_path / "progress", tmp_path / "final"
    kill_steps = sorted(np.random.default_rng(2026).choice(np.arange(8, total - 2), 5, replace=False))
    resumed_from = []
    for target in kill_steps:
        proc = _train_process(cfg, progress, final)
        seen = 0
        for line in proc.stderr:  # the loop logs every step: kill once it reports `target`
            if m := STEP_LINE.search(line):
                seen = int(m.group(1))
            if line.startswith("resuming"):
                resumed_from.append(int(line.split("(step ")[1].split("/")[0]))
            if seen >= target:
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, f"the run ended before step {target}"
        assert not final.exists()
    proc = _train_process(cfg, progress, final)
    tail = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, tail[-2000:]
    resumed_from.append(int(tail.split("resuming")[1].split("(step ")[1].split("/")[0]))

    # Every rerun but the first started from the newest checkpoint at or before the kill.
    assert resumed_from == [7 * (k // 7) for k in kill_steps], (kill_steps, resumed_from)
    a = (tmp_path / "ref_final" / "arrays.npz").read_bytes()
    b = (final / "arrays.npz").read_bytes()
    assert hashlib.sha256(a).hexdigest() == hashlib.sha256(b).hexdigest()


def _scripted_accuracy(monkeypatch, accuracy):
    """make_train_step whose steps log ``accuracy[step]`` as their hard accuracy."""
    import jax.numpy as jnp

    real = training.make_train_step

    def scripted(*args):
        step_fn = real(*args)

        def step(state, key, static=None):
            state, metrics = step_fn(state, key, static)
            return state, {**metrics, "hard_accuracy": jnp.float32(accuracy[int(state.step) - 1])}

        return step

    monkeypatch.setattr(training, "make_train_step", scripted)


def test_training_stops_after_a_run_of_perfect_steps(tiny_experiment, tmp_path, monkeypatch):
    """With stop_after_perfect=N, training ends N steps into an unbroken run of exact hard
    rollouts, and the history holds only the steps taken."""
    # a perfect step, a miss, then perfection from step 4
    _scripted_accuracy(monkeypatch, [0.5, 1.0, 0.9] + [1.0] * 30)
    cfg = tiny_experiment
    cfg["training"].update(steps=20, stop_after_perfect=5, checkpoint_every=1000)
    r = _train(cfg, tmp_path)
    assert len(r["history"]["hard_accuracy"]) == 3 + 5
    assert r["metadata"]["step"] == 8 and r["timing"]["steps_run"] == 8


def test_a_validated_stop_waits_for_the_larger_grid(tiny_experiment, tmp_path, monkeypatch):
    """With validate, a streak of stop_after_perfect exact steps stops the run only once the
    step's circuit is also exact on the larger grid's rollouts: checked when the streak is
    reached and every `every` steps while it lasts, logged as validation_accuracy."""
    _scripted_accuracy(monkeypatch, [0.5] + [1.0] * 40)
    verdicts = iter([0.97, 0.999995, 1.0])  # the second misses a few cells in 200,000
    checked = []

    def scripted_validator(exp, exp_cfg, seed):
        def validator(params):
            checked.append(params)
            return next(verdicts)

        return validator

    monkeypatch.setattr(training, "make_validator", scripted_validator)
    cfg = tiny_experiment
    cfg["training"].update(
        steps=30, stop_after_perfect=3, validate={"scale": 2, "trials": 2, "every": 2}, checkpoint_every=1000
    )
    lines = []
    r = _train(cfg, tmp_path, log=lines.append)
    v = r["history"]["validation_accuracy"]
    # exact from step 2: the streak reaches 3 at step 4, then checks at steps 6 and 8
    assert r["metadata"]["step"] == 8 and len(v) == 8 and len(checked) == 3
    np.testing.assert_array_equal(np.flatnonzero(~np.isnan(v)), [3, 5, 7])
    np.testing.assert_allclose(v[[3, 5, 7]], [0.97, 0.999995, 1.0], rtol=1e-6)
    # a near miss is logged as one, not rounded to 100%
    missed = [m for m in lines if "training on" in m]
    assert len(missed) == 2 and "97% of cells right" in missed[0] and "99.9995% of cells right" in missed[1]
    # the run delivers the circuit it validated (the stop step's starting params), not the
    # params that step's update left
    for x, y in zip(jax.tree.leaves(checked[-1]), jax.tree.leaves(r["params"]), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert any(
        not np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(checked[-1]), _final_params(r))
    )


def test_an_unvalidated_attempt_restarts_and_an_untrained_circuit_fails_validation(
    tiny_experiment, tmp_path, monkeypatch
):
    """The real check on the 2x grid: an untrained circuit that the (scripted) training log
    calls exact on every step is not exact on the larger grid's rollouts, so the run never
    stops, and with restarts each attempt ends after restart_after steps although every one of
    its steps was exact: the default restart goal is a validated circuit."""
    _scripted_accuracy(monkeypatch, [1.0] * 40)
    cfg = tiny_experiment
    cfg["training"].update(
        steps=16,
        stop_after_perfect=2,
        validate={"scale": 2, "trials": 2, "every": 3},
        restart_after=8,
        checkpoint_every=1000,
    )
    h = _train(cfg, tmp_path)["history"]
    np.testing.assert_array_equal(h["attempt"], np.repeat([0, 1], 8))
    # each attempt's streak starts with it: checks at its steps 2, 5 and 8
    np.testing.assert_array_equal(np.flatnonzero(~np.isnan(h["validation_accuracy"])), [1, 4, 7, 9, 12, 15])
    checked = h["validation_accuracy"][~np.isnan(h["validation_accuracy"])]
    assert np.all((checked > 0.2) & (checked < 1.0)), checked


def test_the_polish_leaves_a_validated_circuit_alone_and_may_not_break_one(
    tiny_experiment, tmp_path, monkeypatch
):
    """With validate, a run that stopped on a validated circuit delivers that circuit
    unpolished; the polish of a run that ended unvalidated scores its switches on the training
    grid, and a polished circuit that the validation rollouts find worse is not delivered."""
    _scripted_accuracy(monkeypatch, [1.0] * 40)
    marker = "polished"
    polished = []

    def fake_polish(exp, params, tcfg, seed, log):
        polished.append(seed)
        return {**params, marker: True}, {"objective_after": 0.0, "changes": 1, "seconds": 0.0}

    def validator_scoring(trained, after):
        return lambda exp, exp_cfg, seed: lambda params: after if marker in params else trained

    monkeypatch.setattr(training, "polish", fake_polish)
    cfg = tiny_experiment
    cfg["training"].update(
        steps=10,
        stop_after_perfect=2,
        validate={"scale": 2, "trials": 2},
        polish={"states": 2},
        checkpoint_every=1000,
    )
    monkeypatch.setattr(training, "make_validator", validator_scoring(1.0, 0.5))
    r = _train(cfg, tmp_path, "validated")
    assert r["metadata"]["step"] == 2 and not polished and "polish" not in r["metadata"]
    assert marker not in r["params"]

    monkeypatch.setattr(training, "make_validator", validator_scoring(0.9, 0.5))
    r = _train(cfg, tmp_path, "worse")
    assert r["metadata"]["step"] == 10 and polished and marker not in r["params"]
    assert r["metadata"]["polish"]["kept"] == "trained"
    assert r["metadata"]["polish"]["validation_accuracy"] == {"before": 0.9, "after": 0.5}

    monkeypatch.setattr(training, "make_validator", validator_scoring(0.9, 0.9))
    r = _train(cfg, tmp_path, "as_good")
    assert marker in r["params"] and "kept" not in r["metadata"]["polish"]


def test_validate_names_what_it_needs(tiny_experiment, tmp_path):
    cfg = tiny_experiment
    cfg["training"].update(validate={"scale": 2})
    with pytest.raises(ValueError, match="training.validate checks the stop of training.stop_after_perfect"):
        _train(cfg, tmp_path)
    cfg["training"].update(stop_after_perfect=2, regime="evolution")
    with pytest.raises(ValueError, match="training.validate needs a discrete model"):
        training.make_validator(training.build(cfg), cfg, 0)


def test_a_run_with_no_exact_rollout_restarts_and_resumes_bit_identical(tiny_experiment, tmp_path):
    """restart_after=N: an attempt whose hard circuit is never exact within N steps starts over
    from new initial params (new wiring too) and a fresh schedule (decay_steps long, cut to the
    steps left); train.csv's
    attempt column says which rows belong to which attempt, and a run resumed from a checkpoint
    taken after a restart ends in the same circuit as the uninterrupted run."""
    import shutil

    from morphogen import provenance

    cfg = tiny_experiment
    cfg["training"].update(steps=30, restart_after=8, checkpoint_every=5)
    cfg["training"]["optimizer"].update(schedule="cosine", decay_steps=12)
    full = _train(cfg, tmp_path, "full")
    h = full["history"]
    assert not np.any(h["hard_accuracy"] >= 1.0)  # the tiny circuit never gets there
    np.testing.assert_array_equal(h["attempt"], np.repeat([0, 1, 2, 3], [8, 8, 8, 6]))
    assert full["metadata"]["attempt"] == 3
    # Each attempt has its own wiring; the first attempt's is the plain seed's.
    exp = training.build(cfg)
    wires = [jax.tree.leaves(training.split_params(training.init_params(exp, 0, a))[1]) for a in range(4)]
    assert all(np.array_equal(np.asarray(x), y) for x, y in zip(jax.tree.leaves(full["static"]), wires[3]))
    assert not all(np.array_equal(x, y) for x, y in zip(wires[0], wires[3]))

    # The checkpoint the run left at step 20 (attempt 2, four steps in), resumed elsewhere.
    run = provenance.config_hash(cfg)
    shutil.copytree(tmp_path / "full" / run / "step_0000020", tmp_path / "cut" / run / "step_0000020")
    resumed = _train(cfg, tmp_path, "cut")
    assert resumed["timing"]["resumed_from"] == 20
    for x, y in zip(_final_params(full), _final_params(resumed)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for k in h:
        np.testing.assert_array_equal(h[k], resumed["history"][k])


def test_each_restart_goal_is_checked_by_its_own_step_and_a_resumed_run_agrees(tiny_experiment, tmp_path):
    """restart_goal as a list: an attempt that met one goal (any hard accuracy by step 20) but
    not a later-checked or earlier-checked other (an exact circuit by its step 7) starts over
    when that one falls due, each attempt meeting its goals anew; a run resumed from a
    checkpoint taken inside a restarted attempt ends as the uninterrupted one."""
    import shutil

    from morphogen import provenance

    cfg = tiny_experiment
    cfg["training"].update(
        steps=30,
        restart_after=20,
        checkpoint_every=5,
        restart_goal=[
            {"metric": "hard_accuracy", "at_least": 0.0},
            {"metric": "hard_accuracy", "at_least": 1.0, "after": 7},
        ],
    )
    full = _train(cfg, tmp_path, "full")
    h = full["history"]
    assert not np.any(h["hard_accuracy"] >= 1.0)
    np.testing.assert_array_equal(h["attempt"], np.repeat([0, 1, 2, 3, 4], [7, 7, 7, 7, 2]))
    run = provenance.config_hash(cfg)
    shutil.copytree(tmp_path / "full" / run / "step_0000020", tmp_path / "cut" / run / "step_0000020")
    resumed = _train(cfg, tmp_path, "cut")
    assert resumed["timing"]["resumed_from"] == 20
    for k in h:
        np.testing.assert_array_equal(h[k], resumed["history"][k])
    for x, y in zip(_final_params(full), _final_params(resumed)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

    # A goal met in time is not checked again in that attempt: with only the first goal, no
    # attempt restarts.
    cfg["training"]["restart_goal"] = cfg["training"]["restart_goal"][:1]
    np.testing.assert_array_equal(_train(cfg, tmp_path, "met")["history"]["attempt"], np.zeros(30))

    # A goal that names no metric of the run is refused before training, by its place in the list.
    cfg["training"]["restart_goal"] = [
        {"metric": "hard_accuracy", "at_least": 0.5},
        {"metric": "nope", "at_least": 1},
    ]
    with pytest.raises(ValueError, match=r"training.restart_goal\[1\].metric is 'nope', not a metric"):
        _train(cfg, tmp_path, "bad")


def test_a_restarted_attempt_runs_the_training_methods_schedule_from_its_start(tiny_experiment, tmp_path):
    """mixed_st with every gate discrete from step 4 of an attempt: each attempt's first four
    steps train the mixture (the loss it descends is not the deployed circuit's), the rest the
    discrete circuit (no gap), as the first attempt does."""
    cfg = tiny_experiment
    cfg["model"].update(
        relaxation="mixed_st", hard_fraction=1.0, hard_fraction_start=4, hard_fraction_steps=1
    )
    cfg["training"].update(steps=24, restart_after=8, checkpoint_every=1000)
    h = _train(cfg, tmp_path)["history"]
    np.testing.assert_array_equal(h["attempt"], np.repeat([0, 1, 2], 8))
    hardened = np.abs(h["gap"]) < 1e-5
    for first in (0, 8, 16):
        assert not hardened[first : first + 4].any() and hardened[first + 5 : first + 8].all(), h["gap"]


def test_a_step_with_a_non_finite_gradient_is_skipped_and_counted(tiny_experiment, tmp_path, monkeypatch):
    """A gradient that overflowed to NaN leaves params and optimizer state as they were, the
    step is counted in train.csv's skipped_update, and training goes on."""
    import jax.numpy as jnp

    from morphogen import tasks

    # value 0, gradient 0 * inf = NaN
    monkeypatch.setattr(
        tasks, "channel0_sq_error", lambda final, target: jnp.sum(jnp.sqrt(final[..., 0] * 0.0))
    )
    r = _train(tiny_experiment, tmp_path)
    assert np.all(r["history"]["skipped_update"] == 1.0)
    assert np.all(np.isfinite(r["history"]["soft_loss"]))
    start = training.init_params(training.build(tiny_experiment), 0)
    for x, y in zip(jax.tree.leaves(start), _final_params(r)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_gradient_spike_is_skipped_and_a_lasting_change_of_scale_is_not():
    """optimizer.skip_spikes: a gradient far above the running norm leaves params and Adam's
    moments as they were and is flagged; ordinary gradients are applied; a gradient scale that
    stays high is accepted after a few dozen steps, so training does not freeze."""
    import jax.numpy as jnp
    import optax

    opt = optimizers.make_optimizer(
        {"lr": 0.1, "b1": 0.9, "b2": 0.99, "weight_decay": 0.0, "skip_spikes": 10}, 100
    )
    params = {"w": jnp.ones(3)}
    state = opt.init(params)

    def step(params, state, g):
        upd, state = opt.update({"w": jnp.full(3, g, jnp.float32)}, state, params)
        return optax.apply_updates(params, upd), state

    for _ in range(5):
        params, state = step(params, state, 0.1)
        assert float(state.skipped) == 0.0
    before_params, before_state = params, state
    params, state = step(params, state, 1000.0)
    assert float(state.skipped) == 1.0
    np.testing.assert_array_equal(np.asarray(params["w"]), np.asarray(before_params["w"]))
    for x, y in zip(jax.tree.leaves(state.inner), jax.tree.leaves(before_state.inner)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    params, state = step(params, state, 0.2)  # twice the usual: applied
    assert float(state.skipped) == 0.0
    assert not np.array_equal(np.asarray(params["w"]), np.asarray(before_params["w"]))
    skipped = []
    for _ in range(60):
        params, state = step(params, state, 30.0)
        skipped.append(float(state.skipped))
    assert skipped[0] == 1.0 and 0 < sum(skipped) < 40 and skipped[-10:] == [0.0] * 10


def test_weight_decay_stops_after_weight_decay_steps():
    """optimizer.weight_decay_steps: the first updates are AdamW's, decay included, bit for bit;
    after them the decay is off: under zero gradients (with b1 = 0, Adam's step is then zero)
    the params stay where they are, where AdamW's go on shrinking."""
    import jax.numpy as jnp
    import optax

    ocfg = {"lr": 0.1, "b1": 0.0, "b2": 0.99, "weight_decay": 0.5}
    cut = optimizers.make_optimizer({**ocfg, "weight_decay_steps": 3}, 100)
    full = optimizers.make_optimizer(ocfg, 100)
    p_cut = p_full = {"w": jnp.asarray([1.0, -2.0, 4.0])}
    s_cut, s_full = cut.init(p_cut), full.init(p_full)
    for i in range(6):
        g = {"w": jnp.asarray([0.3, -0.1, 0.2]) if i < 3 else jnp.zeros(3)}
        u_cut, s_cut = cut.update(g, s_cut, p_cut)
        u_full, s_full = full.update(g, s_full, p_full)
        before = np.asarray(p_cut["w"])
        p_cut, p_full = optax.apply_updates(p_cut, u_cut), optax.apply_updates(p_full, u_full)
        if i < 3:
            np.testing.assert_array_equal(np.asarray(p_cut["w"]), np.asarray(p_full["w"]))
        else:
            np.testing.assert_array_equal(np.asarray(p_cut["w"]), before)
            assert np.all(np.abs(np.asarray(p_full["w"])) < np.abs(before))


def test_the_seed_sweep_trains_each_seed_as_train_does(tiny_experiment, tmp_path):
    """benchmarks/seed_sweep.py maps the training step over seeds in one program: each seed's
    losses are those of its own run (up to the batched program's float reassociation), and its
    summary reads the early stop off the history."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import seed_sweep

    cfg = tiny_experiment
    cfg["training"].update(steps=6, checkpoint_every=1000)
    swept = seed_sweep.run(cfg, [0, 3], chunk=3, log=lambda m: None)["history"]
    assert swept["soft_loss"].shape == (6, 2)
    for j, seed in enumerate([0, 3]):
        own = _train(cfg, tmp_path, name=f"seed{seed}", seed=seed)["history"]
        for k in ("soft_loss", "hard_loss", "hard_accuracy"):
            np.testing.assert_allclose(swept[k][:, j], own[k], rtol=1e-5, err_msg=f"{k} of seed {seed}")
    assert not np.allclose(swept["soft_loss"][:, 0], swept["soft_loss"][:, 1])  # two runs, not one
    # seed 0 with its initial params and its training draws both from seed 3 is seed 3's run;
    # with one of the two only, it is neither seed's
    moved = {
        offsets: seed_sweep.run(
            cfg, [0], chunk=3, log=lambda m: None, init_offset=offsets[0], data_offset=offsets[1]
        )["history"]["soft_loss"][:, 0]
        for offsets in ((3, 3), (3, 0), (0, 3))
    }
    np.testing.assert_allclose(moved[3, 3], swept["soft_loss"][:, 1], rtol=1e-5)
    for half in (moved[3, 0], moved[0, 3]):
        assert not np.allclose(half, swept["soft_loss"][:, 0]) and not np.allclose(
            half, swept["soft_loss"][:, 1]
        )
    acc = np.array([[0.5, 1.0], [1.0, 1.0], [1.0, 0.9], [0.2, 1.0]])
    rows = seed_sweep.summarise(
        {"hard_accuracy": acc, "hard_loss": 1 - acc, "soft_loss": acc, "skipped_update": 0 * acc},
        [0, 3],
        patience=2,
    )
    assert [(r["first_exact"], r["stop"], r["end_acc"]) for r in rows] == [(1, 3, 0.2), (0, 2, 1.0)]
