"""Attention NCA and the online regime: attention over the neighbourhood, the injected noise, the
spikes, the gradient through one step, learning a uniform target, kill-and-resume."""

import copy
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from conftest import train_quietly

from morphogen import optimizers, provenance, tasks, training
from morphogen.models import attention

ROOT = Path(__file__).resolve().parents[1]
MODEL = {"channels": 3, "heads": 1, "width": 16, "noise": 0.01, "init_output": "zero", "self_bias": 4.0}


def _experiment(size=8, steps=30, **training_keys):
    return {
        "family": "attention",
        "task": {
            "name": "image",
            "image": "uniform",
            "color": [1.0, 0.0, 0.0],
            "size": size,
            "epsilon": 1e-3,
        },
        "model": dict(MODEL),
        "update": {"mode": "sync"},
        "training": {
            "regime": "online",
            "steps": steps,
            "batch": 1,
            "rollout_steps": 1,
            "spike_noise": 1.0,
            "snapshot_every": 3,
            "optimizer": {"lr": 0.01, "b1": 0.5, "b2": 0.999, "weight_decay": 0.0},
            "checkpoint_every": 10,
            "log_every": 10,
            **training_keys,
        },
        "evaluation": {"trials": 2, "scales": [1], "steps": 5},
    }


# --------------------------------------------------------------------------- the model


def test_attention_keeps_the_state_shape_and_its_weights_sum_to_one_inside_the_grid():
    cfg = {**MODEL, "init_output": "random", "heads": 2}
    params = attention.init(jax.random.key(0), cfg)
    x = jax.random.normal(jax.random.key(1), (2, 5, 5, 3))
    assert attention.update(params, x, cfg).shape == x.shape
    assert attention.step(params, x, jax.random.key(2), cfg).shape == x.shape
    w = np.asarray(attention.attention_weights(params, x, cfg))  # (B, H, W, 9, heads)
    np.testing.assert_allclose(w.sum(axis=3), 1.0, rtol=1e-6)
    inside = attention.neighbourhood_mask(5, 5)
    assert np.all(w[:, ~inside] == 0.0)  # cells outside the grid get no attention at all
    assert np.all(w[:, inside] > 0.0)
    # a corner cell attends over 4 cells, an edge cell over 6, an inner one over 9
    assert [int(inside[y, x].sum()) for y, x in ((0, 0), (0, 2), (2, 2))] == [4, 6, 9]


def test_the_update_reads_only_the_3x3_neighbourhood():
    cfg = {**MODEL, "init_output": "random"}
    params = attention.init(jax.random.key(0), cfg)
    x = jax.random.normal(jax.random.key(1), (1, 9, 9, 3))
    far = x.at[0, 0, 0].add(5.0)  # a cell two or more steps away from (4, 4)
    y0, y1 = attention.update(params, x, cfg), attention.update(params, far, cfg)
    np.testing.assert_array_equal(np.asarray(y0[0, 4, 4]), np.asarray(y1[0, 4, 4]))
    assert not np.allclose(np.asarray(y0[0, 1, 1]), np.asarray(y1[0, 1, 1]))


def test_a_zero_output_layer_changes_nothing_but_the_noise_and_the_noise_has_its_std():
    params = attention.init(jax.random.key(0), MODEL)
    x = jax.random.normal(jax.random.key(1), (4, 64, 64, 3))
    noiseless = attention.step(params, x, jax.random.key(2), {**MODEL, "noise": 0.0})
    np.testing.assert_array_equal(np.asarray(noiseless), np.asarray(x))
    delta = np.asarray(attention.step(params, x, jax.random.key(2), MODEL) - x)
    assert abs(delta.mean()) < 0.01 * 0.05
    assert delta.std() == pytest.approx(0.01, rel=0.03)  # 49,152 draws: a standard error of 0.3%


def test_asynchronous_updates_leave_the_cells_that_do_not_fire_as_they_were():
    cfg = {**MODEL, "init_output": "random", "noise": 0.0}
    exp = training.build(
        {**_experiment(size=16), "model": cfg, "update": {"mode": "async", "fire_rate": 0.5}}
    )
    params = training.init_params(exp, 0)
    x = exp.task.initial_states(jax.random.key(1), 2)
    y = exp.step(params, x, jax.random.key(2), cfg)
    kept = np.all(np.asarray(y) == np.asarray(x), axis=-1)
    assert 0.35 < kept.mean() < 0.65  # about half the cells fired
    sync = attention.step(params, x, jax.random.key(2), cfg)
    np.testing.assert_allclose(np.asarray(y)[~kept], np.asarray(sync)[~kept], rtol=1e-6)


def test_the_parameter_count_includes_the_position_bias():
    params = attention.init(jax.random.key(0), {**MODEL, "heads": 2})
    n = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    assert n == attention.parameter_count({**MODEL, "heads": 2})["params_total"]
    assert float(params["position"][4, 0]) == 4.0 and float(jnp.sum(jnp.abs(params["position"]))) == 8.0


# --------------------------------------------------------------------------- the online regime


def _one_online_step(x, cfg):
    exp = training.build(cfg)
    trainable, static = training.split_params(training.init_params(exp, 0))
    optimizer = optimizers.make_optimizer(cfg["training"]["optimizer"], 10)
    carry = {"x": jnp.asarray(x), "out": jnp.asarray(x), "spikes": jnp.asarray(0, jnp.int32)}
    state = training.TrainState(trainable, optimizer.init(trainable), jnp.asarray(0, jnp.int32), carry)
    step = training.make_online_step(exp, static, cfg["training"], optimizer)
    return step(state, jax.random.key(3))


def test_a_spike_fires_when_and_only_when_a_sample_comes_within_epsilon():
    cfg = _experiment(size=16)
    cfg["model"]["noise"] = 0.0  # with a zero output layer the step leaves the state as it is
    red = np.zeros((16, 16, 3), np.float32)
    red[..., 0] = 1.0
    near, far = red + 0.02, red + 0.05  # squared errors 4e-4 < 1e-3 < 2.5e-3
    state, metrics = _one_online_step(np.stack([near, far]), cfg)
    x = np.asarray(state.carry["x"])
    assert int(metrics["spikes"]) == 1 and int(state.carry["spikes"]) == 1
    np.testing.assert_array_equal(x[1], far)  # no spike: the state goes on
    np.testing.assert_array_equal(np.asarray(state.carry["out"]), np.stack([near, far]))  # before spikes
    spike = x[0] - near
    assert spike.std() == pytest.approx(1.0, rel=0.1)  # the spike's std, spike_noise
    cfg["training"]["spike_noise"] = 0.1
    state, _ = _one_online_step(np.stack([near] * 8), cfg)
    assert (np.asarray(state.carry["x"]) - near).std() == pytest.approx(0.1, rel=0.05)


def test_the_one_step_loss_has_a_gradient_where_the_designs_detach_would_have_none():
    cfg = _experiment()
    cfg["model"]["init_output"] = "random"
    exp = training.build(cfg)
    params = training.init_params(exp, 0)
    x = exp.task.initial_states(jax.random.key(1), 1)

    def loss(p, detach_update):
        f = attention.update(p, x, cfg["model"])
        return exp.task.loss(x + (jax.lax.stop_gradient(f) if detach_update else f))

    ours = jax.grad(loss)(params, False)
    theirs = jax.grad(loss)(params, True)  # the design's s + f(s).detach(): no gradient at all
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(ours))
    assert all(float(jnp.max(jnp.abs(g))) == 0 for g in jax.tree.leaves(theirs))
    state, metrics = _one_online_step(x, cfg)
    assert float(metrics["grad_norm"]) > 0


def _merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _quick_uniform():
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["experiments"]["attention_uniform"]
    quick = yaml.safe_load((ROOT / "config" / "presets" / "quick.yaml").read_text())["experiments"]
    return _merge(base, quick["attention_uniform"])


def test_the_quick_recipe_brings_a_uniform_target_within_epsilon_in_1000_steps(tmp_path):
    cfg = _quick_uniform()
    cfg["training"].update(steps=1000, max_spikes=5, snapshot_every=0)
    r = train_quietly(cfg, tmp_path / "p")
    loss, spikes = r["history"]["loss"], r["history"]["spikes"]
    first = int(np.argmax(loss < 1e-3))
    assert loss[first] < 1e-3 and first < 1000
    assert spikes[-1] == 5  # the run stopped at its fifth spike
    assert len(loss) < 1000


def test_an_online_run_resumed_from_a_checkpoint_equals_the_uninterrupted_one(tmp_path):
    cfg = _experiment(steps=30)
    full = train_quietly(cfg, tmp_path / "full")
    run = provenance.config_hash(cfg)
    saved = tmp_path / "full" / run / "step_0000020"
    assert saved.is_dir()
    shutil.copytree(saved, tmp_path / "cut" / run / "step_0000020")
    resumed = train_quietly(cfg, tmp_path / "cut")
    assert resumed["timing"]["resumed_from"] == 20
    for a, b in zip(jax.tree.leaves(full["state"]), jax.tree.leaves(resumed["state"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # params, Adam, trajectory
    for k in full["history"]:
        np.testing.assert_array_equal(full["history"][k], resumed["history"][k])
    for k in ("step", "state"):
        np.testing.assert_array_equal(full["trace"][k], resumed["trace"][k])
    assert list(full["trace"]["step"]) == list(range(0, 31, 3))


def test_the_online_regime_refuses_restarts_and_tasks_without_an_epsilon(tmp_path):
    with pytest.raises(ValueError, match="restart_after"):
        train_quietly(_experiment(restart_after=10), tmp_path / "a")
    cfg = _experiment()
    exp = training.build(cfg)._replace(task=tasks.make({"name": "checkerboard", "size": 8}, channels=3))
    with pytest.raises(ValueError, match="epsilon"):
        training.make_online_step(
            exp, None, cfg["training"], optimizers.make_optimizer(cfg["training"]["optimizer"], 1)
        )


# --------------------------------------------------------------------------- the targets


@pytest.mark.parametrize("size", [32, 40, 72])
def test_the_organism_fits_its_grid_and_is_drawn_the_same_every_time(size):
    img = tasks.organism(size)
    assert img.shape == (size, size, 4)
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    assert np.all(border == 0.0)  # nothing clipped by the grid
    assert 0.1 < img[..., 3].mean() < 0.4
    np.testing.assert_array_equal(img, tasks.organism(size))
    colours = {tuple(np.round(c, 2)) for c in img[img[..., 3] == 1.0][:, :3]}
    assert len(colours) >= 3  # body, spots, eyes


def test_the_image_summary_counts_steps_to_epsilon():
    loss = np.array([[1.0, 0.1, 5e-4, 4e-4], [1.0, 0.5, 0.2, 0.1]])
    s = tasks.image_summary(loss, 1e-3)
    assert s["reached_epsilon_fraction"] == 0.5 and s["steps_to_epsilon_mean"] == 2.0
    assert s["eval_loss_ratio"] == pytest.approx((4e-4 + 0.1) / 2 / 1.0)
