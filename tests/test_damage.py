"""Damage protocols zero exactly the cells they say; recovery metrics mean what they say."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from morphogen import damage, tables, tasks


def _mask(protocol, t, key=0, h=20, w=20):
    return np.asarray(damage.mask_at(protocol, jax.random.key(key), t, h, w))


def test_square_once_zeroes_the_centre_square_once():
    p = {"name": "square_once", "size": 6, "at": 3}
    m = _mask(p, 3)
    assert m.sum() == 36
    ys, xs = np.nonzero(m)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (7, 12, 7, 12)
    assert _mask(p, 2).sum() == 0 and _mask(p, 4).sum() == 0


def test_square_for_damages_for_k_steps_then_releases():
    p = {"name": "square_for", "size": 4, "steps": 5}
    assert all(_mask(p, t).sum() == 16 for t in range(5))
    assert all(_mask(p, t).sum() == 0 for t in range(5, 12))
    assert damage.damage_end(p) == 5


def test_random_block_moves_and_is_clipped_at_the_border():
    p = {"name": "random_block", "size": 10}
    sizes, corners = [], set()
    for t in range(40):
        m = _mask(p, t)
        ys, xs = np.nonzero(m)
        sizes.append(m.sum())
        corners.add((ys.min(), xs.min()))
        # a solid rectangle: as many cells as its bounding box
        assert m.sum() == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    assert max(sizes) == 100 and min(sizes) < 100  # clipped blocks occur
    assert len(corners) > 20


def test_dead_cells_are_the_same_at_every_step():
    p = {"name": "dead_cells", "fraction": 0.1}
    first = _mask(p, 0, h=100, w=100)
    assert first.mean() == pytest.approx(0.1, abs=0.02)
    for t in (1, 50, 999):
        np.testing.assert_array_equal(_mask(p, t, h=100, w=100), first)


def test_apply_zeroes_all_channels_of_damaged_cells_only():
    state = jnp.ones((1, 20, 20, 3))
    m = jnp.asarray(_mask({"name": "square_once", "size": 4, "at": 0}, 0))
    out = np.asarray(damage.apply(state, m))
    assert out.sum() == 3 * (400 - 16)
    assert np.all(out[0, 8:12, 8:12] == 0)


def test_recovery_error_is_zero_on_an_undamaged_perfect_pattern():
    task = tasks.make({"name": "checkerboard", "size": 16}, channels=8)
    state = np.random.default_rng(0).integers(0, 2, (2, 16, 16, 8)).astype(np.float32)
    state[..., 0] = task.target
    np.testing.assert_array_equal(np.asarray(task.damage_error(jnp.asarray(state))), [0, 0])
    state[0, 3, 3, 0] = 1 - state[0, 3, 3, 0]
    assert float(task.damage_error(jnp.asarray(state))[0]) == 1
    assert task.error_cells == 256


def test_validate_names_the_missing_key():
    with pytest.raises(ValueError, match="damage_protocols.heal: protocol square_for needs key 'steps'"):
        damage.validate("heal", {"name": "square_for", "size": 3})


def test_recovery_steps_count_from_the_end_of_the_damage():
    err = [0, 30, 30, 30, 20, 10, 0, 0]  # damage after steps 1..3 (damage_end = 3)
    df = pd.DataFrame(
        {"experiment": "e", "seed": 0, "protocol": "p", "trial": 0, "step": range(8), "error": err}
    )
    per = tables.recovery_per_trial(df, {("e", "p"): {"damage_end": 3, "cells": 100}})
    row = per.iloc[0]
    assert row.recovery_steps == 3 and row.recovered == 1
    assert row.recovery_auc == sum(err[1:]) and row.final_error == 0


def test_a_continuous_model_recovers_once_its_error_is_back_under_the_threshold():
    err = [0.001, 0.05, 0.02, 0.004, 0.0019, 0.003]  # damage once, after step 0
    df = pd.DataFrame(
        {"experiment": "g", "seed": 0, "protocol": "p", "trial": 0, "step": range(6), "error": err}
    )
    facts = {("g", "p"): {"damage_end": 1, "cells": 1, "threshold": 0.002}}
    row = tables.recovery_per_trial(df, facts).iloc[0]
    assert row.recovery_steps == 3 and row.recovered == 1  # under 0.002 at step 1 + 3
    assert row.mean_error_fraction == pytest.approx(np.mean(err[1:]))  # a mean error already
    strict = tables.recovery_per_trial(df, {("g", "p"): {**facts[("g", "p")], "threshold": 0.0}}).iloc[0]
    assert np.isnan(strict.recovery_steps) and strict.recovered == 0


def test_each_configured_pair_is_compared_in_one_table():
    rows = [
        {"experiment": e, "seed": 0, "protocol": p, "trial": t, "recovery_steps": s, "recovered": 1.0,
         "recovery_auc": s, "final_error": 0.0, "mean_error_fraction": 0.1, "learned": True}
        for e, p, s in (("a1", "p", 4.0), ("s1", "p", 2.0), ("a2", "q", 3.0), ("s2", "q", 6.0))
        for t in range(3)
    ]  # fmt: skip
    table = tables.recovery_comparisons(pd.DataFrame(rows), [["a1", "s1"], ["a2", "s2"], ["a1", "missing"]])
    steps = table[table.metric == "recovery_steps"].set_index("numerator")
    assert steps.loc["a1", "ratio"] == pytest.approx(2.0) and steps.loc["a1", "protocol"] == "p"
    assert steps.loc["a2", "ratio"] == pytest.approx(0.5) and steps.loc["a2", "denominator"] == "s2"
    assert list(table.columns) == tables.COMPARISON_COLUMNS


def test_runs_that_did_not_learn_are_left_out_of_the_means_and_named(tmp_path):
    histories = []
    for seed, last_hard in ((0, 0), (1, 142)):
        run = tmp_path / "e" / f"seed{seed}"
        run.mkdir(parents=True)
        pd.DataFrame({"step": [1, 2], "soft_loss": [9.0, 1.0], "hard_loss": [50, last_hard]}).to_csv(
            run / "train.csv", index=False
        )
        histories.append(run / "train.csv")
    learned = tables.learned_runs(histories)
    assert learned == {("e", 0): True, ("e", 1): False}
    rows = []
    for seed, err in ((0, [0, 30, 10, 0]), (1, [140, 150, 145, 142])):
        for trial in range(3):
            rows += [
                {"experiment": e, "seed": seed, "protocol": "p", "trial": trial, "step": t, "error": v}
                for e in ("e", "f")
                for t, v in enumerate(err)
            ]
    facts = {(e, "p"): {"damage_end": 1, "cells": 100} for e in "ef"}
    per = tables.recovery_per_trial(pd.DataFrame(rows), facts, learned)
    summary = tables.recovery_summary(per).set_index(["experiment", "metric"])
    # e: seed 1 never formed the pattern, so only seed 0's trials count, and seed 1 is named
    assert summary.loc[("e", "recovered"), "mean"] == 1.0
    assert summary.loc[("e", "recovered"), "n"] == 3 and summary.loc[("e", "recovered"), "left_out"] == 3
    assert summary.loc[("e", "recovered"), "left_out_seeds"] == "1"
    # f has no training history here: all of its runs count, half of its trials never recover
    assert summary.loc[("f", "recovered"), "mean"] == 0.5 and summary.loc[("f", "recovered"), "left_out"] == 0
    ratio = tables.recovery_comparison(per, "f", "e").set_index("metric")
    # area under the curve: f averages both seeds (40 and 437), e only its learned seed (40)
    assert ratio.loc["recovery_auc", "ratio"] == pytest.approx((40 + 437) / 2 / 40)
    # nothing to compare (no run of the numerator learned): no rows, but the columns stay
    none = tables.recovery_comparison(per.assign(learned=False), "f", "e")
    assert none.empty and list(none.columns) == tables.COMPARISON_COLUMNS


def test_ratio_interval_covers_the_ratio():
    rng = np.random.default_rng(0)
    a, b = rng.normal(10, 1, 200), rng.normal(20, 1, 200)
    r, lo, hi = tables.ratio_interval(a, b)
    assert lo < r < hi and r == pytest.approx(0.5, abs=0.02)


def test_fixed_grid_meets_the_far_border_as_the_training_grid_does():
    from morphogen.evaluation import protocol_grid

    cb14 = {"name": "checkerboard", "size": 14, "square": 2}
    cb16 = {"name": "checkerboard", "size": 16, "square": 2}
    assert protocol_grid(cb16, {"grid": 64}) == 64
    assert protocol_grid(cb14, {"grid": 64}) == 62  # 14 and 62 both end mid-period (mod 4 = 2)
    assert protocol_grid(cb14, {"grid": 64, "match_border": False}) == 64
    assert protocol_grid(cb14, {"scale": 4}) == 56


def test_scaled_evaluation_grids_meet_the_far_border_as_the_training_grid_does():
    from morphogen.evaluation import evaluation_grid

    def exp(size, **evaluation):
        return {"task": {"name": "checkerboard", "size": size, "square": 2}, "evaluation": evaluation}

    assert [evaluation_grid(exp(16), s) for s in (1, 2, 4)] == [16, 32, 64]
    assert [evaluation_grid(exp(14), s) for s in (1, 2, 4)] == [14, 26, 54]  # all = 2 (mod 4)
    assert evaluation_grid(exp(14, match_border=False), 4) == 56


def test_phase_accuracy_forgives_a_shifted_pattern_and_nothing_else():
    from morphogen import tasks

    task = tasks.make({"name": "checkerboard", "size": 12, "square": 2}, channels=1)
    target = task.target
    shifted = tasks.checkerboard(14, 14, 2)[2:, 1:13]  # the pattern drawn from another origin
    noisy = target.copy()
    noisy[0, :6] = 1 - noisy[0, :6]
    states = np.stack([target, 1 - target, shifted, noisy])[..., None]
    acc = np.asarray(task.accuracy(states))
    phase = np.asarray(task.phase_accuracy(states))
    np.testing.assert_allclose(acc, [1.0, 0.0, acc[2], 1 - 6 / 144])
    assert acc[2] < 0.6
    np.testing.assert_allclose(phase, [1.0, 1.0, 1.0, 1 - 6 / 144])
    # the inverted board is the board shifted by one tile: one of its 8 distinct phases
    assert len(tasks.checkerboard_phases(12, 12, 2)) == 8
