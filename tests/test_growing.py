"""Growing neural CA: perception, the zero start, alive masking, the pool regime (seed
replacement, learning, kill-and-resume) and the regeneration damages."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_resumes_bit_identical, train_quietly

from morphogen import damage, optimizers, tasks, training, updates
from morphogen.models import growing

MODEL = {"channels": 16, "hidden": [32], "init_output": "zero", "alive_threshold": 0.1}


def _experiment(steps=12, mode="sync", **training_keys):
    return {
        "family": "growing",
        "task": {"name": "growth", "image": "organism", "size": 8, "padding": 2},
        "model": dict(MODEL),
        "update": {"mode": mode, "fire_rate": 0.5 if mode == "async" else 1.0},
        "training": {
            "regime": "pool",
            "steps": steps,
            "batch": 4,
            "pool_size": 8,
            "rollout_min": 6,
            "rollout_steps": 10,
            "damage_n": 1,
            "optimizer": {
                "lr": 2e-3,
                "b1": 0.9,
                "b2": 0.999,
                "weight_decay": 0.0,
                "schedule": "piecewise",
                "decay_at": [steps // 2],
                "normalize_gradients": True,
            },
            "checkpoint_every": 4,
            "log_every": 4,
            **training_keys,
        },
        "evaluation": {"trials": 2, "scales": [1], "steps": 10},
    }


# --------------------------------------------------------------------------- the model


def test_perception_is_identity_then_sobel_x_then_sobel_y_per_channel():
    np.testing.assert_array_equal(growing.SOBEL_X, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8)
    np.testing.assert_array_equal(growing.SOBEL_Y, growing.SOBEL_X.T)
    # a ramp rising to the right in channel 1 (slope 1 per cell) and downwards in channel 2
    y, x = np.mgrid[:5, :5].astype(np.float32)
    state = np.zeros((1, 5, 5, 3), np.float32)
    state[0, ..., 1], state[0, ..., 2] = x, 2 * y
    p = np.asarray(growing.perceive(jnp.asarray(state)))[0, 2, 2]  # an interior cell
    # channel-major: [s_c, dx s_c, dy s_c] for c = 0, 1, 2
    np.testing.assert_allclose(p, [0, 0, 0, 2, 1, 0, 4, 0, 2], atol=1e-6)


def test_the_reference_model_has_8336_parameters():
    cfg = {**MODEL, "hidden": [128]}
    params = growing.init(jax.random.key(0), cfg)
    assert sum(x.size for x in jax.tree.leaves(params)) == 8336
    assert growing.parameter_count(cfg) == {"params_total": 8336}


def test_a_zero_output_layer_leaves_the_seed_unchanged_for_a_step():
    exp = training.build(_experiment())
    params = training.init_params(exp, 0)
    seed = exp.task.initial_states(None, 2)
    after = exp.step(params, seed, jax.random.key(1), exp.model_cfg)
    np.testing.assert_array_equal(np.asarray(after), np.asarray(seed))
    assert float(seed[0, 6, 6, 3]) == 1.0 and float(jnp.sum(seed)) == 2 * 13  # alpha + 12 hidden


def test_alive_masking_empties_a_lone_cell_whose_alpha_is_below_the_threshold():
    state = np.zeros((1, 7, 7, 16), np.float32)
    state[0, 1, 1, :] = 0.05  # alpha 0.05: dead, with everything it holds
    state[0, 5, 5, :] = 0.5  # alpha 0.5: alive, and its neighbours may live
    state[0, 5, 4, 0] = 0.3  # colour beside a living cell, alpha 0: kept
    out = np.asarray(growing.post({}, jnp.asarray(state), jnp.asarray(state), None, MODEL))
    assert not out[0, 1, 1].any()
    np.testing.assert_array_equal(out[0, 5, 5], state[0, 5, 5])
    assert out[0, 5, 4, 0] == np.float32(0.3)


def test_async_updates_apply_alive_masking_to_cells_that_did_not_fire():
    """The reference masks every cell after the fire-rate update, fired or not."""
    state = np.zeros((1, 6, 6, 16), np.float32)
    state[0, 1, 1, :] = 0.05
    cfg = training.build(_experiment(mode="async")).model_cfg
    params = growing.init(jax.random.key(0), cfg)
    step = updates.wrap(growing.step, "async", 0.01, growing.post)  # almost no cell fires
    out = np.asarray(step(params, jnp.asarray(state), jax.random.key(3), cfg))
    assert not out.any()


def test_the_alive_mask_passes_no_gradient():
    state = jnp.ones((1, 4, 4, 16)) * 0.5
    grad = jax.grad(lambda s: jnp.sum(growing.alive_mask(s)))(state)
    assert not np.asarray(grad).any()


# --------------------------------------------------------------------------- the task


@pytest.mark.parametrize("size,padding", [(8, 2), (20, 4), (40, 16)])
def test_the_growth_target_is_the_organism_centred_with_nothing_clipped(size, padding):
    side = size + 2 * padding
    target = tasks.growth_target({"name": "growth", "size": size, "padding": padding}, side)
    assert target.shape == (side, side, 4)
    np.testing.assert_array_equal(
        target[padding : padding + size, padding : padding + size], tasks.organism(size)
    )
    assert target.sum() == pytest.approx(tasks.organism(size).sum())


# --------------------------------------------------------------------------- the pool regime


def _pool_step(cfg, pool):
    exp = training.build(cfg)
    trainable, static = training.split_params(training.init_params(exp, 0))
    opt = optimizers.make_optimizer(cfg["training"]["optimizer"], cfg["training"]["steps"])
    state = training.TrainState(trainable, opt.init(trainable), jnp.asarray(0, jnp.int32), {"pool": pool})
    step = training.make_pool_step(exp, static, cfg["training"], opt)
    return exp, step(state, jax.random.key(5))


def test_the_pool_step_replaces_the_highest_loss_sample_with_the_seed_and_writes_back():
    cfg = _experiment(batch=4, pool_size=4, damage_n=0)
    side = 12
    # four states alive everywhere, each a different constant: the model's zero output layer
    # leaves them as they are, so what comes back is what went in, but for the seed
    values = [1.0, 3.0, 2.0, 1.5]  # losses rise with the value: slot 1 is the worst
    pool = jnp.stack([jnp.full((side, side, 16), v) for v in values])
    exp, (state, metrics) = _pool_step(cfg, pool)
    out = np.asarray(state.carry["pool"])
    np.testing.assert_array_equal(out[1], np.asarray(exp.task.initial_states(None, 1)[0]))
    for i in (0, 2, 3):
        np.testing.assert_array_equal(out[i], np.asarray(pool[i]))
    assert 6 <= int(metrics["rollout_length"]) <= 10


def test_the_pool_step_damages_the_lowest_loss_samples_with_circles():
    cfg = _experiment(batch=4, pool_size=4, damage_n=2, damage_radius=[0.3, 0.4])
    pool = jnp.stack([jnp.full((12, 12, 16), v) for v in [1.0, 3.0, 2.0, 1.5]])
    _, (state, _) = _pool_step(cfg, pool)
    out = np.asarray(state.carry["pool"])
    holes = [int((out[i, ..., 3] == 0).sum()) for i in range(4)]
    assert holes[0] > 0 and holes[3] > 0  # the two lowest-loss states have a hole
    assert holes[2] == 0  # the middle one is untouched; slot 1 became the seed


def test_a_few_pool_steps_grow_something_closer_to_the_target(tmp_path):
    cfg = _experiment(steps=60)
    run = train_quietly(cfg, tmp_path)
    exp = training.build(cfg)
    seed = exp.task.initial_states(None, 2)

    def grown_loss(params):
        final = updates.rollout(exp.step, params, seed, jax.random.key(2), exp.model_cfg, 10)
        return float(exp.task.loss(final))

    before, after = grown_loss(training.init_params(exp, 0)), grown_loss(run["params"])
    assert after < 0.7 * before, (before, after)


def test_a_pool_run_resumed_from_a_checkpoint_equals_the_uninterrupted_one(tmp_path):
    assert_resumes_bit_identical(_experiment(steps=10, mode="async"), tmp_path, 8)  # params, Adam, the pool


def test_the_pool_regime_refuses_restarts_and_too_many_damaged_samples(tmp_path):
    with pytest.raises(ValueError, match="restart_after"):
        train_quietly(_experiment(restart_after=4), tmp_path / "a")
    with pytest.raises(ValueError, match="damage_n"):
        train_quietly(_experiment(damage_n=4), tmp_path / "b")


# --------------------------------------------------------------------------- damage


@pytest.mark.parametrize(
    "side,rows,cols",
    [("bottom", slice(3, 6), slice(None)), ("top", slice(0, 3), slice(None)),
     ("left", slice(None), slice(0, 3)), ("right", slice(None), slice(3, 6))],
)  # fmt: skip
def test_each_half_damage_zeroes_exactly_its_half_once(side, rows, cols):
    protocol = {"name": "half", "side": side, "at": 2}
    want = np.zeros((6, 6), np.float32)
    want[rows, cols] = 1
    np.testing.assert_array_equal(np.asarray(damage.mask_at(protocol, None, 2, 6, 6)), want)
    assert not np.asarray(damage.mask_at(protocol, None, 3, 6, 6)).any()
    assert damage.damage_end(protocol) == 3


def test_the_moving_circle_erases_along_its_path_then_stops():
    protocol = {"name": "moving_circle", "radius": 1.0, "steps": 5, "start": [0.5, 0.0], "end": [0.5, 1.0]}
    first = np.asarray(damage.mask_at(protocol, None, 0, 9, 9))
    last = np.asarray(damage.mask_at(protocol, None, 4, 9, 9))
    # a disc of radius 1 (5 cells, 3 where the border cuts it) at row 4, column 0, then column 8
    assert first.sum() == 4 and first[4, 0] == 1 and first[4, 1] == 1 and first[3, 0] == 1
    assert last.sum() == 4 and last[4, 8] == 1 and last[4, 7] == 1
    assert not np.asarray(damage.mask_at(protocol, None, 5, 9, 9)).any()
    assert damage.damage_end(protocol) == 5


def test_random_training_circles_lie_in_their_ranges():
    masks = np.asarray(damage.random_circles(jax.random.key(0), 64, 40, 40, (0.1, 0.4)))
    areas = masks.sum(axis=(1, 2))
    cell = (2 / 39) ** 2  # a cell's area in coordinates from -1 to 1
    assert areas.min() > 0
    assert areas.max() * cell < np.pi * 0.4**2 * 1.2
    ys, xs = np.nonzero(masks.any(axis=0))
    assert 40 * 0.05 < ys.mean() < 40 * 0.95 and 40 * 0.05 < xs.mean() < 40 * 0.95
