"""Lateral-inhibition patterning: the utility's sanity values, the dynamics, gradients that the
walls do not cut, the kept best iterate of backpropagation and the evolution strategy's
checkpoint contract."""

import copy
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from morphogen import checkpoint, provenance, tasks, training, updates
from morphogen.models import patterning

MODEL = {"cells": 7, "hidden": [8, 8], "dt": 0.05, "noise": 0.1, "boundary": "free"}
EXPERIMENT = {
    "family": "patterning",
    "task": {"name": "patterning", "initial": [0.4, 0.6], "fate_temperature": 20.0, "bandwidth": 0.3},
    "model": MODEL,
    "update": {"mode": "sync"},
    "training": {
        "steps": 12,
        "batch": 16,
        "rollout_steps": 40,
        "optimizer": {"lr": 0.01, "b1": 0.9, "b2": 0.999, "weight_decay": 0.0, "clip_norm": 1.0},
        "checkpoint_every": 4,
        "log_every": 4,
    },
    "evaluation": {"trials": 32, "scales": [1]},
}


def _es(steps=12):
    cfg = copy.deepcopy(EXPERIMENT)
    cfg["training"] = {
        "regime": "evolution",
        "population": 6,
        "elites": 2,
        "mutation": 0.1,
        "steps": steps,
        "batch": 16,
        "rollout_steps": 40,
        "checkpoint_every": 4,
        "log_every": 4,
    }
    return cfg


def _bits(rows):
    return jnp.asarray(rows, jnp.float32)


# --------------------------------------------------------------------------- utility


def test_identical_patterns_have_no_reproducibility_entropy():
    z = _bits([[0, 1, 0, 1, 1]] * 20)
    assert float(tasks.hard_utility(z)[2]) == 0.0
    assert float(tasks.soft_utility(z, 0.05)[2]) == 0.0


def test_eight_distinct_three_cell_patterns_have_one_bit_per_cell():
    z = _bits([[(i >> k) & 1 for k in range(3)] for i in range(8)])
    assert float(tasks.hard_utility(z)[2]) == pytest.approx(1.0, abs=1e-6)


def test_two_patterns_half_and_half_on_three_cells_give_a_third():
    z = _bits([[0, 0, 1], [1, 1, 0]] * 5)
    assert float(tasks.hard_utility(z)[2]) == pytest.approx(1 / 3, abs=1e-6)


def test_the_alternating_pair_on_seven_cells_scores_0_857():
    z = _bits([[0, 1, 0, 1, 0, 1, 0], [1, 0, 1, 0, 1, 0, 1]] * 50)
    u, s_pat, s_rep = tasks.hard_utility(z)
    assert round(float(u), 3) == 0.857
    assert float(s_pat) == pytest.approx(1.0) and float(s_rep) == pytest.approx(1 / 7, abs=1e-6)


def test_soft_utility_equals_hard_utility_on_binary_patterns():
    z = jax.random.bernoulli(jax.random.key(3), 0.5, (200, 7)).astype(jnp.float32)
    for a, b in zip(tasks.hard_utility(z), tasks.soft_utility(z, 0.05)):
        assert float(a) == pytest.approx(float(b), abs=1e-5)


def test_soft_utility_has_a_gradient_through_the_whole_rollout():
    exp = training.build(EXPERIMENT)
    params = training.init_params(exp, 0)
    x0 = exp.task.initial_states(jax.random.key(1), 64)

    def loss(params):
        return exp.task.loss(updates.rollout(exp.step, params, x0, jax.random.key(2), MODEL, 200))

    grads = jax.grad(loss)(params)
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert all(math.isfinite(n) for n in norms)
    assert sum(norms) > 1e-3, norms


# --------------------------------------------------------------------------- dynamics


def test_euler_maruyama_without_noise_is_euler_integration():
    cfg = {**MODEL, "noise": 0.0, "dt": 0.01}
    params = patterning.init(jax.random.key(0), cfg)
    s = jax.random.uniform(jax.random.key(1), (4, 7), minval=0.4, maxval=0.6)
    x = np.asarray(s, np.float64)
    for t in range(100):
        s = patterning.step(params, s, jax.random.key(t), cfg)
        sbar = np.empty_like(x)
        sbar[:, 1:-1] = 0.5 * (x[:, :-2] + x[:, 2:])
        sbar[:, 0], sbar[:, -1] = x[:, 1], x[:, -2]
        f = np.asarray(patterning.regulation(params, jnp.asarray(sbar, jnp.float32)), np.float64)
        x = np.clip(x + f * cfg["dt"], 0, 1)
    np.testing.assert_allclose(np.asarray(s), x, atol=1e-5)


def test_a_fixed_boundary_keeps_the_ends_at_zero_and_the_walls_keep_states_in_the_interval():
    cfg = {**MODEL, "boundary": "fixed", "noise": 1.0}
    params = patterning.init(jax.random.key(0), cfg)
    s = jax.random.uniform(jax.random.key(1), (32, 7))
    traj = updates.rollout(patterning.step, params, s, jax.random.key(2), cfg, 100, trajectory=True)[1]
    assert np.all(np.asarray(traj[:, :, [0, -1]]) == 0.0)
    assert float(traj.min()) >= 0.0 and float(traj.max()) <= 1.0


def test_the_walls_clip_the_state_and_pass_its_gradient_straight_through():
    """Forward: the source's clip to [0, 1]. Backward: derivative 1, where the clip's is 0."""
    x = jnp.asarray([1.3, -0.2, 0.5])
    np.testing.assert_array_equal(np.asarray(patterning.clip_straight_through(x)), [1.0, 0.0, 0.5])
    slope = jax.vmap(jax.grad(patterning.clip_straight_through))(x)
    np.testing.assert_array_equal(np.asarray(slope), [1.0, 1.0, 1.0])
    assert np.allclose(np.asarray(jax.vmap(jax.grad(lambda v: jnp.clip(v, 0, 1)))(x))[:2], 0.0)


def test_the_initial_network_is_zero_or_odd_about_one_half():
    """init_output zero: f = 0, every cell diffuses; random: with zero biases and the centred
    input, f(1/2 + x) = -f(1/2 - x)."""
    sbar = jnp.linspace(0.0, 1.0, 11)
    zero = patterning.init(jax.random.key(3), MODEL)
    np.testing.assert_array_equal(np.asarray(patterning.regulation(zero, sbar)), 0.0)
    rand = patterning.init(jax.random.key(3), {**MODEL, "init_output": "random"})
    f = np.asarray(patterning.regulation(rand, sbar))
    assert np.abs(f).max() > 0.01
    np.testing.assert_allclose(f, -f[::-1], atol=1e-6)
    with pytest.raises(ValueError, match="model.init_output must be one of zero, random, got 'ones'"):
        patterning.validate({**MODEL, "init_output": "ones"})


def test_the_regulatory_network_has_97_parameters():
    assert patterning.parameter_count(MODEL)["parameters"] == 97
    params = patterning.init(jax.random.key(0), MODEL)
    assert sum(x.size for x in jax.tree.leaves(params)) == 97


# --------------------------------------------------------------------------- training regimes


def _train(cfg, tmp_path, name):
    return training.train(
        cfg, 0, experiment="pattern", preset="unit", progress_dir=tmp_path / name, log=lambda m: None
    )


def test_backprop_logs_utility_gradient_norm_and_the_learned_function(tmp_path):
    r = _train(EXPERIMENT, tmp_path, "bp")
    h = r["history"]
    assert {"soft_loss", "grad_norm", "utility", "s_pat", "s_rep", "f@0.50"} <= set(h)
    assert np.all(h["grad_norm"] > 0)
    assert r["timing"]["simulated_trajectories"] == 12 * 16


def _kept(steps=12):
    cfg = copy.deepcopy(EXPERIMENT)
    cfg["training"] = {**cfg["training"], "steps": steps, "keep_best": "utility"}
    return cfg


def test_backprop_keeps_the_params_of_its_best_step_and_resumes_bit_identical(tmp_path):
    full = _train(_kept(), tmp_path, "full")
    u = full["history"]["utility"]
    k = training.latest_argmax(u)  # the latest step with the highest training utility
    assert full["metadata"]["kept_step"] == k and float(full["kept"]["score"]) == float(u[k])
    # the kept params are those step k started from: the params after k steps of the same run
    if k == 0:
        want = training.split_params(training.init_params(training.build(EXPERIMENT), 0))[0]
    else:
        plain = copy.deepcopy(EXPERIMENT)
        plain["training"]["steps"] = k
        want = _train(plain, tmp_path, "first_k")["state"].params
    for x, y in zip(jax.tree.leaves(want), jax.tree.leaves(training.split_params(full["params"])[0])):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # killed at step 8 and resumed: the same kept params, step and history
    part = _train(_kept(steps=8), tmp_path, "part")
    dst = tmp_path / "cut" / provenance.config_hash(_kept()) / "step_0000008"
    history = {k: np.concatenate([v, np.full(4, np.nan, np.float32)]) for k, v in part["history"].items()}
    checkpoint.save(
        dst, training.progress_tree(part["state"], history, kept=part["kept"]["params"]), {"step": 8}
    )
    resumed = _train(_kept(), tmp_path, "cut")
    assert resumed["timing"]["resumed_from"] == 8
    assert resumed["metadata"]["kept_step"] == k
    for x, y in zip(jax.tree.leaves(full["params"]), jax.tree.leaves(resumed["params"])):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for name in full["history"]:
        np.testing.assert_array_equal(full["history"][name], resumed["history"][name])


def test_of_steps_that_tie_on_the_kept_metric_the_latest_is_kept():
    # a run exact at step 1 by one lucky draw, then for a streak that stops it: the streak's end
    assert training.latest_argmax(np.array([0.5, 1.0, 0.9, 1.0, 1.0, 1.0], np.float32)) == 5
    assert training.latest_argmax(np.array([0.2, 0.7, 0.3], np.float32)) == 1


def test_an_attempt_that_misses_its_goal_restarts_and_the_best_step_of_all_attempts_is_kept(tmp_path):
    cfg = _kept()
    cfg["training"].update(restart_after=4, restart_goal={"metric": "utility", "at_least": 2.0})  # > 1 bit
    r = _train(cfg, tmp_path, "restarts")
    h = r["history"]
    np.testing.assert_array_equal(h["attempt"], np.repeat([0, 1, 2], 4))
    assert r["metadata"]["attempt"] == 2
    assert r["metadata"]["kept_step"] == training.latest_argmax(h["utility"])
    cfg["training"]["restart_goal"] = {"metric": "hard_accuracy", "at_least": 1.0}
    with pytest.raises(ValueError, match="training.restart_goal.metric is 'hard_accuracy', not a metric"):
        _train(cfg, tmp_path, "no_goal")


def test_keep_best_must_name_a_metric_of_the_run(tmp_path):
    cfg = _kept()
    cfg["training"]["keep_best"] = "hard_accuracy"
    with pytest.raises(
        ValueError, match="training.keep_best names 'hard_accuracy', not a metric of this run"
    ):
        _train(cfg, tmp_path, "bad")


def test_evolution_keeps_its_elites_and_counts_the_whole_population(tmp_path):
    cfg = _es()
    exp = training.build(cfg)
    population, static = training.init_population(exp, 0, cfg["training"])
    state = training.TrainState(population, jnp.zeros(6), jnp.asarray(0, jnp.int32))
    step = training.make_evolution_step(exp, static, cfg["training"])
    new, metrics = step(state, jax.random.key(5))
    # the two elites are two old members, unchanged, best first
    order = np.argsort(-np.asarray(new.opt_state), kind="stable")
    assert np.all(order == np.arange(6))
    old = np.asarray(population["layers"][0]["w"])
    for member in np.asarray(new.params["layers"][0]["w"])[:2]:
        assert any(np.array_equal(member, o) for o in old)
    assert float(metrics["fitness_best"]) == float(new.opt_state[0]) >= float(metrics["fitness_mean"])
    r = _train(cfg, tmp_path, "es")
    assert r["timing"]["simulated_trajectories"] == 12 * 6 * 16


def test_a_resumed_evolution_run_equals_an_uninterrupted_one(tmp_path):
    cfg = _es()
    full = _train(cfg, tmp_path, "full")
    part = _train(_es(steps=8), tmp_path, "part")
    dst = tmp_path / "cut" / provenance.config_hash(cfg) / "step_0000008"
    history = {k: np.concatenate([v, np.full(4, np.nan, np.float32)]) for k, v in part["history"].items()}
    checkpoint.save(dst, (part["state"], history), {"step": 8})
    resumed = _train(cfg, tmp_path, "cut")
    assert resumed["timing"]["resumed_from"] == 8
    for x, y in zip(jax.tree.leaves(full["params"]), jax.tree.leaves(resumed["params"])):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for k in full["history"]:
        np.testing.assert_array_equal(full["history"][k], resumed["history"][k])
