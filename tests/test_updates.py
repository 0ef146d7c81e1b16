"""Sync and async (fire-rate) updates, named after the seed's tests."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from morphogen import training, updates


def _shift_step(params, state, key, cfg):
    """A model whose update changes every cell: new = state * w + 1."""
    return state * params["w"] + 1.0


def test_about_fire_rate_of_cells_update():
    """With fire rate 0.6 about 60% of cells update, all channels of a cell together."""
    step = updates.wrap(_shift_step, "async", 0.6)
    state = jnp.zeros((4, 64, 64, 3))
    fractions = []
    for i in range(5):
        new = step({"w": 1.0}, state, jax.random.key(i), {})
        fired = np.asarray(new != state)
        assert np.all(fired.all(-1) == fired.any(-1)), "a cell's channels must fire together"
        fractions.append(fired[..., 0].mean())
    # 16,384 Bernoulli(0.6) cells per draw: the standard error is ~0.004.
    assert np.mean(fractions) == pytest.approx(0.6, abs=0.01)
    assert all(abs(f - 0.6) < 0.02 for f in fractions)
    assert len(set(fractions)) == 5, "each key draws a new mask"


def test_sync_updates_every_cell():
    step = updates.wrap(_shift_step, "sync")
    new = step({"w": 1.0}, jnp.zeros((1, 8, 8, 2)), jax.random.key(0), {})
    assert np.all(np.asarray(new) == 1.0)


def test_async_backward_propagates_only_fired_cells():
    """A cell that did not fire passes the gradient of its old state through unchanged and
    sends none through its update; a fired cell sends it through the update only."""
    step = updates.wrap(_shift_step, "async", 0.5)
    key = jax.random.key(3)
    state = jax.random.uniform(jax.random.key(1), (1, 16, 16, 2))
    w = 3.0
    new = step({"w": w}, state, key, {})
    fired = np.asarray(new != state)[..., :1]

    g_params, g_state = jax.grad(lambda p, s: jnp.sum(step(p, s, key, {})), argnums=(0, 1))({"w": w}, state)
    # d/dw: the sum of old states over fired cells only.
    assert float(g_params["w"]) == pytest.approx(float(np.sum(np.asarray(state) * fired)), rel=1e-5)
    # d/dstate: w where fired, 1 (identity) where not.
    np.testing.assert_allclose(np.asarray(g_state), np.where(fired, w, 1.0) * np.ones_like(state), rtol=1e-6)


def test_unknown_mode_and_bad_fire_rate_are_rejected():
    with pytest.raises(ValueError, match="update mode must be one of"):
        updates.wrap(_shift_step, "sometimes")
    with pytest.raises(ValueError, match="fire_rate must be in"):
        updates.wrap(_shift_step, "async", 1.5)


def test_async_training_converges(tiny_experiment, tmp_path):
    """A few async training steps reduce the loss."""
    cfg = tiny_experiment
    cfg["update"] = {"mode": "async", "fire_rate": 0.6}
    cfg["training"].update(steps=40, batch=4, checkpoint_every=1000)
    cfg["training"]["optimizer"]["lr"] = 0.1
    cfg["model"]["pass_through_logit"] = 2.0
    h = training.train(cfg, 0, experiment="t", preset="unit", progress_dir=tmp_path, log=lambda m: None)[
        "history"
    ]
    loss = h["soft_loss"]
    assert loss[-10:].mean() < 0.99 * loss[:10].mean(), loss
