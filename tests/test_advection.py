"""Advection NCA: mass conserved and non-negative by construction (property tests, and the
converging flow that broke the source), formations that fit the grid, start states of equal
mass, the pool regime's micro-batches and kill-and-resume, and the transitions table."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_resumes_bit_identical, train_quietly
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morphogen import formations, tables, tasks, training, updates
from morphogen.figures import f5_advection
from morphogen.models import advection

MODEL = {
    "hidden_channels": 4,
    "hidden": [16],
    "dt": 0.5,
    "substeps": 2,
    "max_speed": 1.0,
    "velocity_noise": 0.1,
}
TASK = {"name": "formations", "size": 20, "extent": 0.28}


def _experiment(steps=8, mode="async", **training_keys):
    return {
        "family": "advection",
        "task": dict(TASK),
        "model": dict(MODEL),
        "update": {"mode": mode, "fire_rate": 0.5 if mode == "async" else 1.0},
        "training": {
            "regime": "pool",
            "steps": steps,
            "batch": 4,
            "accumulate": 2,
            "pool_size": 16,
            "rollout_min": 4,
            "rollout_steps": 8,
            "reseed_n": 2,
            "optimizer": {
                "lr": 2e-3,
                "b1": 0.9,
                "b2": 0.999,
                "weight_decay": 0.0,
                "clip_norm": 1.0,
                "schedule": "cosine",
                "warmup_steps": 2,
                "final_lr_fraction": 0.01,
            },
            "checkpoint_every": 3,
            "log_every": 4,
            **training_keys,
        },
        "evaluation": {"trials": 2, "scales": [1], "steps": 8, "frame_every": 4},
    }


# --------------------------------------------------------------------------- transport


@jax.jit
def _transport_many(mass, velocity):
    """1,000 steps of two substeps each (dt 0.5), walls at the edge."""

    def body(_, m):
        return advection.transport(m, velocity, {"dt": 0.5, "substeps": 2})

    return jax.lax.fori_loop(0, 1000, body, mass)


def _field(rng, n, kind, strength):
    """A velocity field (n, n, 2) of |components| up to ``strength``: random, converging on a
    point, diverging from it, or a vortex."""
    y, x = np.mgrid[:n, :n].astype(np.float32)
    cy, cx = rng.uniform(0, n - 1, 2)
    if kind == "random":
        v = rng.uniform(-1, 1, (n, n, 2))
    else:
        d = np.stack([cy - y, cx - x], -1) / (n / 2)
        v = {"converging": d, "diverging": -d, "vortex": np.stack([d[..., 1], -d[..., 0]], -1)}[kind]
        v = np.clip(v * 4, -1, 1)
    return (strength * v).astype(np.float32)


@settings(max_examples=24, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.sampled_from([8, 16, 33]),
    kind=st.sampled_from(["random", "converging", "diverging", "vortex"]),
    strength=st.sampled_from([0.1, 1.0, 3.0]),
    sparse=st.booleans(),
)
def test_any_flow_conserves_mass_to_1e_5_over_1000_steps_and_keeps_it_non_negative(
    seed, n, kind, strength, sparse
):
    """Velocities up to 3x the network's output range (training noise adds to it)."""
    rng = np.random.default_rng(seed)
    mass = rng.uniform(0, 2, (n, n)).astype(np.float32)
    if sparse:
        mass *= rng.uniform(size=(n, n)) < 0.1
    mass[0, 0] += 1.0  # never all zero
    out = np.asarray(_transport_many(jnp.asarray(mass), jnp.asarray(_field(rng, n, kind, strength))))
    before, after = mass.astype(np.float64).sum(), out.astype(np.float64).sum()
    assert abs(after / before - 1) < 1e-5, (before, after)
    assert out.min() >= 0.0


def test_the_converging_flow_that_broke_the_source_keeps_all_its_mass():
    """200 cells of density 1 pulled to one point, 64 steps of two substeps of dt 0.25 (the
    source's): the source's clip at 1 after transport left 33.4 of 200; the flux scheme keeps
    200 and lets densities exceed 1."""
    n = 64
    mass = np.zeros((n, n), np.float32)
    mass[22:42, 27:37] = 1.0  # 200 cells
    y, x = np.mgrid[:n, :n].astype(np.float32)
    velocity = jnp.asarray(np.clip(np.stack([(32 - y), (32 - x)], -1) / 4, -1, 1))
    cfg = {"dt": 0.5, "substeps": 2}
    m = jnp.asarray(mass)
    clipped = jnp.asarray(mass)
    for _ in range(64):
        m = advection.transport(m, velocity, cfg)
        for _ in range(2):  # the source: the same substep, then clip(., 0, 1)
            clipped = jnp.clip(
                advection.transport_substep(clipped, velocity[..., 0], velocity[..., 1], 0.25), 0, 1
            )
    assert float(np.asarray(m, np.float64).sum()) == pytest.approx(200.0, rel=1e-6)
    assert float(m.max()) > 10.0  # it piled up
    assert float(np.asarray(clipped, np.float64).sum()) < 100.0  # the clip destroys most of it


@pytest.mark.parametrize("boundary", ["wall", "periodic"])
def test_walls_send_nothing_across_the_edge_and_a_torus_wraps(boundary):
    mass = jnp.zeros((6, 6)).at[2, 5].set(1.0)
    right = jnp.zeros((6, 6, 2)).at[..., 1].set(1.0)
    out = np.asarray(advection.transport(mass, right, {"dt": 0.5, "substeps": 1, "boundary": boundary}))
    if boundary == "wall":
        assert out[2, 5] == 1.0 and out.sum() == 1.0
    else:
        assert out[2, 5] == 0.5 and out[2, 0] == 0.5


def test_diffusion_spreads_mass_and_conserves_it():
    mass = jnp.zeros((9, 9)).at[4, 4].set(1.0)
    out = np.asarray(advection.transport(mass, jnp.zeros((9, 9, 2)), {"dt": 0.5, "diffusion": 0.1}))
    assert out[4, 4] == pytest.approx(0.6) and out[3, 4] == pytest.approx(0.1)
    assert out.sum() == pytest.approx(1.0, abs=1e-7)


# --------------------------------------------------------------------------- the model


def test_the_untrained_model_holds_every_velocity_at_zero_so_mass_stays():
    exp = training.build(_experiment())
    params = training.init_params(exp, 0)
    x = exp.task.initial_states(jax.random.key(0), 2)
    out = updates.rollout(exp.step, params, x, jax.random.key(1), exp.model_cfg, 5)
    np.testing.assert_array_equal(np.asarray(out[..., 0]), np.asarray(x[..., 0]))
    assert advection.parameter_count(MODEL)["params_total"] == sum(p.size for p in jax.tree.leaves(params))


def test_a_random_network_under_fire_rate_updates_moves_mass_and_conserves_it():
    cfg = _experiment()
    cfg["model"]["init_output"] = "random"
    exp = training.build(cfg)
    params = training.init_params(exp, 3)
    noisy = advection.relax(params, None, 0, {**MODEL, "velocity_noise": 2.0})
    x = exp.task.initial_states(jax.random.key(0), 3)
    out = updates.rollout(exp.step, noisy, x, jax.random.key(1), exp.model_cfg, 40)
    before, after = (np.asarray(s[..., 0], np.float64).sum(axis=(1, 2)) for s in (x, out))
    assert np.abs(after / before - 1).max() < 1e-5
    assert float(out[..., 0].min()) >= 0.0
    assert np.abs(np.asarray(out[..., 0] - x[..., 0])).max() > 0.1  # it moved
    np.testing.assert_array_equal(np.asarray(out[..., 3:7]), np.asarray(x[..., 3:7]))  # the goal stays


def test_velocity_noise_is_on_in_training_steps_only():
    exp = training.build(_experiment())
    params = training.init_params(exp, 0)
    assert "velocity_noise" not in params
    assert float(advection.relax(params, None, 0, MODEL)["velocity_noise"]) == pytest.approx(0.1)
    assert "velocity_noise" not in advection.relax(params, None, 0, {**MODEL, "velocity_noise": 0.0})


# --------------------------------------------------------------------------- formations


@pytest.mark.parametrize(
    "task", [TASK, {"name": "formations", "size": 32}, {"name": "formations", "size": 128, "extent": 0.38}]
)
def test_no_formation_is_clipped_by_the_grid_at_any_angle_and_the_largest_offset(task):
    g = formations.geometry(task)
    for index in range(3):
        for angle in np.linspace(0, 2 * math.pi, 13):
            for oy, ox in [(1, 1), (-1, 1), (1, -1), (-1, -1), (1, 0), (0, -1)]:
                cov = np.asarray(
                    formations.formation_coverage(g, index, angle, jnp.asarray([oy, ox]) * g["offset"])
                )
                border = np.concatenate([cov[0], cov[-1], cov[:, 0], cov[:, -1]])
                assert border.max() == 0.0, (formations.FORMATIONS[index], angle, oy, ox)


def test_a_formation_that_would_not_fit_is_refused_naming_the_key():
    with pytest.raises(ValueError, match=r"task\.extent .* grid of size 32"):
        tasks.make({"name": "formations", "size": 32, "extent": 0.45}, channels=11)


def test_angles_are_radians_a_quarter_turn_makes_the_line_vertical():
    g = formations.geometry({"name": "formations", "size": 32})
    flat = np.asarray(formations.formation_coverage(g, 0, 0.0, jnp.zeros(2)))
    turned = np.asarray(formations.formation_coverage(g, 0, math.pi / 2, jnp.zeros(2)))
    np.testing.assert_allclose(turned, flat.T, atol=1e-6)
    assert flat.sum(axis=1).max() > 15 and flat.sum(axis=0).max() <= 4  # a horizontal bar


def test_start_states_and_targets_all_have_the_target_mass():
    task = tasks.make(TASK, channels=advection.channels(MODEL))
    x = np.asarray(task.initial_states(jax.random.key(0), 64), np.float64)
    mass = formations.target_mass(formations.geometry(TASK))
    np.testing.assert_allclose(x[..., 0].sum(axis=(1, 2)), mass, rtol=1e-5)
    np.testing.assert_allclose(x[..., 3].sum(axis=(1, 2)), mass, rtol=1e-5)
    assert x[..., 0].min() >= 0
    # the direction is a unit vector off the target (but on ridges between target cells, where
    # no way is nearer, e.g. a hollow square's centre) and 0 on it
    norm = np.linalg.norm(x[..., 4:6], axis=-1)
    on = x[..., 3] >= formations.TARGET_CELL * x[..., 3].max(axis=(1, 2), keepdims=True)
    assert norm[on].max() == 0 and norm.max() < 1 + 1e-6
    assert np.mean(np.abs(norm[~on] - 1) < 1e-3) > 0.95
    # the pairs: twelve of them, the sources clean (a blob or a formation), equal mass
    pairs = np.asarray(task.case_states(jax.random.key(1), 2), np.float64)
    assert pairs.shape[0] == 24 and len(task.cases) == 12 and task.cases[0] == "BLOB->LINE"
    np.testing.assert_allclose(pairs[..., 0].sum(axis=(1, 2)), mass, rtol=1e-5)


# --------------------------------------------------------------------------- training


def test_the_pool_regime_logs_each_loss_term_and_learns_to_move_mass(tmp_path):
    cfg = _experiment(steps=40, mode="sync", accumulate=1)
    cfg["training"]["optimizer"]["lr"] = 1e-2
    run = train_quietly(cfg, tmp_path)
    assert {"loss", "mass_mse", "alignment", "grad_norm", "rollout_length"} <= set(run["history"])
    exp = training.build(cfg)
    ds_trained = _final_mse(exp, run["params"], cfg)
    ds_untrained = _final_mse(exp, training.init_params(exp, 0), cfg)
    assert ds_trained < 0.7 * ds_untrained, (ds_trained, ds_untrained)


def _final_mse(exp, params, cfg):
    from morphogen import evaluation

    ds = evaluation.rollout_dataset(exp, params, cfg, 0, 1)
    return float(ds["mse"].isel(step=-1).mean())


def test_accumulated_micro_batches_average_their_gradients(tmp_path):
    """Two micro-batches of 4 give one update; a run of them differs from one of single ones
    and each step writes 8 distinct pool members back."""
    one = train_quietly(_experiment(steps=3, accumulate=1), tmp_path / "a")
    two = train_quietly(_experiment(steps=3, accumulate=2), tmp_path / "b")
    assert not np.array_equal(
        np.asarray(jax.tree.leaves(one["state"].params)[0]),
        np.asarray(jax.tree.leaves(two["state"].params)[0]),
    )
    pool = np.asarray(two["state"].carry["pool"])
    start = np.asarray(training.initial_pool(training.build(_experiment()), 0, {"pool_size": 16})["pool"])
    changed = np.any(pool != start, axis=(1, 2, 3)).sum()
    assert 8 <= changed <= 16


def test_an_advection_run_resumed_from_a_checkpoint_equals_the_uninterrupted_one(tmp_path):
    """Fire-rate updates, velocity noise, two micro-batches and fresh starts: bit-identical."""
    assert_resumes_bit_identical(_experiment(steps=7), tmp_path, 6)


def test_the_pool_regime_refuses_more_micro_batches_than_the_pool_holds(tmp_path):
    with pytest.raises(ValueError, match="accumulate"):
        train_quietly(_experiment(accumulate=5), tmp_path / "a")
    with pytest.raises(ValueError, match="reseed_n"):
        train_quietly(_experiment(reseed_n=5), tmp_path / "b")


# --------------------------------------------------------------------------- table and figure


def test_the_transition_table_and_f5_numbers_agree(tmp_path):
    from morphogen import evaluation, store

    cfg = _experiment()
    exp = training.build(cfg)
    params = training.init_params(exp, 0)
    path = tmp_path / "advection_formations" / "seed0" / "rollout.zarr"
    for i, (group, label) in enumerate([("scale1", ""), ("initial", "initial")]):
        ds = evaluation.rollout_dataset(exp, params, cfg, 0, 1, label=label)
        store.write(ds, path, group=group, mode="w" if i == 0 else "a")
    rows = tables.advection_transitions([path])
    assert len(rows) == 2 * 12 * 2 and set(rows["model"]) == {"trained", "untrained"}
    assert (rows["mass_error_max"] < 1e-5).all()
    summary = tables.advection_summary(rows)
    assert list(summary["source"] + "->" + summary["target"]) == list(formations.pair_names())
    ds = store.read(path, group="scale1")
    assert ds["mass"].dims == ("pair", "trial", "step", "y", "x")
    assert ds["state"].dims == ("pair", "trial", "frame_step", "y", "x", "channel")
    text = f5_advection.numbers(rows, summary)
    for r in summary.itertuples():
        assert f"{r.mse_mean:.4f} [{r.mse_lo:.4f}, {r.mse_hi:.4f}]" in text
        assert f"{r.factor_vs_uniform:.1f}" in text
    assert f"{summary['uniform_mse'].mean():.4g}" in text
    np.testing.assert_allclose(
        summary["uniform_mse"],
        rows[rows.model == "trained"].groupby(["source", "target"], sort=False)["uniform_mse"].mean(),
    )


def test_a_loss_that_turns_nan_stops_training_naming_the_step(tmp_path):
    cfg = _experiment(steps=6)
    cfg["training"]["optimizer"]["lr"] = float("nan")  # the params are NaN after the first update
    with pytest.raises(training.TrainingDiverged, match=r"loss is nan at step 1"):
        train_quietly(cfg, tmp_path)
