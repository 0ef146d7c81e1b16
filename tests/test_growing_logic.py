"""The DiffLogic growth tasks: the lizard and the coloured G as drawn, their start states, a loss
and a count of wrong cells that see the image's channels only, and the lizard's evaluation on a
grid twice as wide for as many steps as training ran; and that a restarted run delivers the
circuit of its best step whichever attempt it belongs to."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_MODEL, train_quietly
from test_learning import preset_experiment

from morphogen import evaluation, tasks, training

LIZARD = {"name": "bitmap", "image": "lizard", "size": 20, "start": "seed"}
G = {"name": "bitmap", "image": "colored_g", "size": 16, "start": "zeros"}


def _components(mask: np.ndarray) -> int:
    """Number of 4-connected components of a boolean image."""
    seen = np.zeros_like(mask, bool)
    n = 0
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        n += 1
        todo = [start]
        seen[start] = True
        while todo:
            y, x = todo.pop()
            for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                q = (y + dy, x + dx)
                if 0 <= q[0] < mask.shape[0] and 0 <= q[1] < mask.shape[1] and mask[q] and not seen[q]:
                    seen[q] = True
                    todo.append(q)
    return n


def test_the_lizard_is_one_silhouette_around_the_seed_cell_and_the_g_uses_eight_colours():
    lizard = tasks.lizard()
    assert lizard.shape == (20, 20) and set(np.unique(lizard)) == {0.0, 1.0}
    assert _components(lizard > 0) == 1
    assert lizard[10, 10] == 1  # the seed cell grows from inside the body
    assert 60 < lizard.sum() < 200 and not lizard[[0, -1]].any() and not lizard[:, [0, -1]].any()
    g = tasks.colored_g()
    assert g.shape == (16, 16, 3) and set(np.unique(g)) == {0.0, 1.0}
    assert len({tuple(c) for c in g.reshape(-1, 3)}) == 8
    assert _components(g.any(axis=-1)) == 1
    # an empty border: from an all-zero start, only the zero padding tells cells apart
    assert not g[[0, -1]].any() and not g[:, [0, -1]].any()


def test_start_states_loss_and_wrong_cells_see_the_image_channels_only():
    lizard = tasks.make(LIZARD, channels=6)
    x = lizard.initial_states(jax.random.PRNGKey(0), 2)
    assert x.shape == (2, 20, 20, 6) and float(x.sum()) == 2 * 6 and bool(jnp.all(x[:, 10, 10] == 1))
    g = tasks.make(G, channels=5)
    assert float(jnp.abs(g.initial_states(jax.random.PRNGKey(0), 1)).sum()) == 0.0

    grown = np.zeros((1, 16, 16, 5), np.float32)
    grown[0, ..., :3] = tasks.colored_g()
    grown[0, ..., 3:] = 1.0  # hidden channels are free
    assert float(g.loss(jnp.asarray(grown))) == 0.0
    assert int(g.scores(jnp.asarray(grown)[None])["cells_wrong"][0, 0]) == 0
    grown[0, 8, 1, 1] = 1 - grown[0, 8, 1, 1]  # one channel of one cell
    grown[0, 0, 0, :3] = 1.0  # three channels of another
    assert float(g.loss(jnp.asarray(grown))) == 4.0
    assert int(g.scores(jnp.asarray(grown)[None])["cells_wrong"][0, 0]) == 2
    assert float(g.accuracy(jnp.asarray(grown))[0]) == pytest.approx(1 - 4 / (16 * 16 * 3))

    wide = tasks.make(LIZARD, channels=6, scale=2)
    assert wide.target.shape == (40, 40) and wide.target[10:30, 10:30].sum() == tasks.lizard().sum()
    traj = np.zeros((3, 1, 40, 40, 6), np.float32)
    traj[2, 0, 10:30, 10:30, 0] = tasks.lizard()
    summary = wide.summary({k: np.asarray(v) for k, v in wide.scores(jnp.asarray(traj)).items()})
    assert summary == {"cells_wrong_2x": 0, "first_exact_step_2x": 2}


@pytest.mark.parametrize(
    "tcfg, channels, message",
    [
        ({**LIZARD, "size": 24}, 4, "task.size must be 20 for task.image 'lizard'"),
        (G, 2, "model.channels must be at least 3 for task.image 'colored_g'"),
        ({**G, "start": "noise"}, 4, "task.start must be seed or zeros"),
    ],
)
def test_a_task_that_cannot_be_built_says_which_key(tcfg, channels, message):
    with pytest.raises(ValueError, match=message):
        tasks.make(tcfg, channels=channels)


def test_the_wider_grid_runs_as_many_steps_as_training_when_steps_do_not_scale():
    cfg = preset_experiment("test", "logic_lizard")
    exp = training.build(cfg)
    params = training.init_params(exp, 0)
    steps = cfg["training"]["rollout_steps"]
    wide = evaluation.rollout_dataset(exp, params, cfg, 0, 2)
    assert wide.sizes["step"] == steps + 1 and wide.sizes["y"] == 40
    assert set(wide.attrs["summary"]) == {"cells_wrong_2x", "first_exact_step_2x"}
    scaled = evaluation.rollout_dataset(
        exp, params, {**cfg, "evaluation": {**cfg["evaluation"], "scale_steps": True}}, 0, 2
    )
    assert scaled.sizes["step"] == 2 * steps + 1
    # the stored state keeps the image's channel only
    assert wide["state"].sizes["channel"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["logic_colored_g", "logic_lizard"])
def test_quick_growth_stops_at_its_first_exact_step_and_keeps_that_circuit(tmp_path, experiment):
    """`quick`'s G and lizard recipes (a discrete share of gates rising from the start, stop
    once exact; the lizard grown for 16 steps): seed 0 draws the image bit for bit within its
    step budget, and the params kept are the exact circuit's, not the step after."""
    cfg = preset_experiment("quick", experiment)
    r = training.train(cfg, 0, experiment=experiment, preset="quick", progress_dir=tmp_path, log=print)
    hard = r["history"]["hard_loss"]
    assert hard[-1] == 0 and len(hard) < cfg["training"]["steps"]
    assert r["kept"]["step"] == len(hard) - 1
    exp = training.build(cfg)
    ds = evaluation.rollout_dataset(exp, r["params"], cfg, 0, 1)
    assert ds.attrs["summary"]["cells_wrong_train"] == 0


def test_a_restarted_run_delivers_its_best_circuit_on_the_wiring_of_that_steps_attempt(tmp_path):
    """`quick`'s G restarts an attempt with no exact step from new initial params (a new wiring)
    and keeps the best step of all attempts: the delivered circuit, rolled out, is wrong on as
    many cells as that step's training rollout was, also when the step is an earlier attempt's."""
    cfg = {
        "family": "difflogic",
        "task": LIZARD,
        "model": {**TINY_MODEL, "pass_through_logit": 2.0, "periodic": True},
        "update": {"mode": "sync"},
        "training": {
            "steps": 31,
            "batch": 1,
            "rollout_steps": 6,
            "restart_after": 10,
            "keep_best": "hard_accuracy",
            "optimizer": {"lr": 0.2, "b1": 0.9, "b2": 0.99, "weight_decay": 0.01, "clip": 100.0},
            "checkpoint_every": 1000,
        },
        "evaluation": {"trials": 1, "scales": [1]},
    }
    r = train_quietly(cfg, tmp_path, seed=2)
    h, k = r["history"], r["metadata"]["kept_step"]
    assert r["metadata"]["attempt"] == 3 and h["hard_accuracy"][k] == np.max(h["hard_accuracy"])
    # the last attempt is one step, its initial circuit (integers: the same on any CPU), 100
    # cells wrong; the first two attempts start from circuits 98 wrong
    assert h["hard_loss"][30] == 100 and h["hard_loss"][[0, 10]].max() == 98
    assert h["attempt"][k] < 3
    ds = evaluation.rollout_dataset(training.build(cfg), r["params"], cfg, 2, 1)
    assert ds.attrs["summary"]["cells_wrong_train"] == h["hard_loss"][k]  # one channel, 0/1 cells
