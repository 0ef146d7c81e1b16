"""The pattern forms: the `quick` sync checkerboard learns to 100% (minutes; `pytest -m slow`)."""

import pytest
from conftest import ROOT

from morphogen import evaluation, methods, training


def preset_experiment(preset: str, name: str) -> dict:
    """The preset's experiment as the workflow runs it, with the training method it names."""
    return methods.preset_experiment(ROOT / "config", preset, name)


@pytest.mark.slow
def test_quick_sync_checkerboard_forms_the_pattern_on_1x_and_4x_grids(tmp_path):
    cfg = preset_experiment("quick", "checkerboard_sync")
    seed = 0
    r = training.train(
        cfg, seed, experiment="checkerboard_sync", preset="quick", progress_dir=tmp_path, log=print
    )
    assert r["history"]["hard_accuracy"][-20:].min() == 1.0
    exp = training.build(cfg)
    params = r["params"]  # the deployed circuit: the kept step's, polished
    for scale in (1, 4):
        ds = evaluation.rollout_dataset(exp, params, cfg, seed, scale)
        assert float(ds["accuracy"].isel(step=-1).min()) == 1.0, scale
