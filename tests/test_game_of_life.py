"""The Game of Life task: an exact reference, every configuration, a loss against the start's next
state, and scores that count the cells a circuit gets wrong."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_learning import preset_experiment

from morphogen import evaluation, tasks, training


def test_life_step_moves_a_glider_and_keeps_oscillators_and_still_lifes():
    grid = np.zeros((12, 12), np.float32)
    grid[1:4, 1:4] = tasks.pattern(tasks.GLIDER)
    run = tasks.life_run(grid, 4)
    assert np.array_equal(run[4], np.roll(grid, (1, 1), axis=(0, 1)))  # one cell down and right
    blinker = np.zeros((7, 7), np.float32)
    blinker[3, 2:5] = 1
    run = tasks.life_run(blinker, 2)
    assert np.array_equal(run[1], blinker.T) and np.array_equal(run[2], blinker)
    block = np.zeros((6, 6), np.float32)
    block[2:4, 2:4] = 1
    assert np.array_equal(tasks.life_run(block, 3)[3], block)
    # on a torus: a glider leaves at one border and comes back at the other
    assert np.array_equal(tasks.life_run(grid, 48)[48], grid)
    assert np.array_equal(np.asarray(tasks.life_step(jnp.asarray(grid))), tasks.life_step(grid, np))


def test_glider_gun_fires_a_glider_every_30_steps():
    grid = np.zeros((64, 64), np.float32)
    grid[2:11, 2:38] = tasks.pattern(tasks.GOSPER_GUN)
    population = tasks.life_run(grid, 120).sum(axis=(1, 2))
    assert list(population[::30]) == [36, 41, 46, 51, 56]
    scene = tasks.life_scene(128)
    assert scene.shape == (128, 128) and scene.sum() > 100


def test_all_configurations_and_their_targets():
    configs = tasks.life_configs()
    assert configs.shape == (512, 3, 3)
    assert len({c.tobytes() for c in configs}) == 512
    # the rule, read off each configuration's centre cell and its 8 neighbours
    n = configs.sum(axis=(1, 2)) - configs[:, 1, 1]
    alive = configs[:, 1, 1] == 1
    expected = (n == 3) | (alive & (n == 2))
    assert np.array_equal(tasks.life_step(configs, np)[:, 1, 1] == 1, expected)


def test_task_scores_the_next_state_of_the_start_state():
    task = tasks.make({"name": "game_of_life", "size": 3}, channels=1)
    start = task.initial_states(jax.random.key(0), 20)
    assert start.shape == (20, 3, 3, 1)
    exact = tasks.life_step(start[..., 0])[..., None]
    assert float(task.loss(exact, start)) == 0.0
    assert float(task.loss(1.0 - exact, start)) == 20 * 9
    assert np.all(np.asarray(task.accuracy(exact, start)) == 1.0)
    everything = task.evaluation_states(None, 1)
    assert everything.shape == (512, 3, 3, 1)
    # scores of a trajectory (step, trial, ...): exact, then with one cell flipped at step 1
    traj = jnp.stack([everything, tasks.life_step(everything[..., 0])[..., None]])
    assert task.summary(task.scores(traj)) == {
        "hard_accuracy_all_configs": 1.0,
        "configs_wrong_all_configs": 0,
    }
    flipped = traj.at[1, 7, 0, 2, 0].set(1 - traj[1, 7, 0, 2, 0])
    # a circuit gets a neighbourhood wrong in all 9 grids that hold it; one cell is 1/4608
    assert task.summary(task.scores(flipped))["hard_accuracy_all_configs"] == pytest.approx(1 - 1 / 4608)
    assert int(np.asarray(task.scores(flipped)["cells_wrong"])[7, 1]) == 1
    big = tasks.make({"name": "game_of_life", "size": 3}, channels=1, grid=128)
    x0 = big.initial_states(jax.random.key(0), 1)
    run = jnp.asarray(tasks.life_run(np.asarray(x0[0, ..., 0]), 5))[:, None, ..., None]
    assert big.summary(big.scores(run)) == {"gol_cells_wrong_128": 0, "gol_steps_exact_128": 5}
    late = run.at[4, 0, 60, 60, 0].set(1 - run[4, 0, 60, 60, 0])
    assert big.summary(big.scores(late)) == {"gol_cells_wrong_128": 1, "gol_steps_exact_128": 3}


@pytest.mark.slow
def test_quick_game_of_life_circuit_is_exact_on_every_configuration_and_the_scene(tmp_path):
    cfg = preset_experiment("quick", "logic_game_of_life")
    seed = 0
    r = training.train(
        cfg, seed, experiment="logic_game_of_life", preset="quick", progress_dir=tmp_path, log=print
    )
    exp = training.build(cfg)
    params = jax.tree.map(jnp.asarray, training.final_params(r["state"], r["static"]))
    assert (
        evaluation.rollout_dataset(exp, params, cfg, seed, 1).attrs["summary"]["hard_accuracy_all_configs"]
        == 1.0
    )
    scene = evaluation.rollout_dataset(exp, params, cfg, seed, 1, grid=128)
    assert scene.attrs["summary"]["gol_cells_wrong_128"] == 0


def test_training_logs_accuracy_on_all_configurations_as_the_evaluation_scores_it(tmp_path):
    cfg = preset_experiment("test", "logic_game_of_life")
    cfg["training"]["steps"] = 3
    r = training.train(
        cfg, 0, experiment="logic_game_of_life", preset="test", progress_dir=tmp_path, log=print
    )
    exp = training.build(cfg)
    # a step's metrics are of the params it starts from: step 1's, the initial circuit's
    initial = evaluation.rollout_dataset(exp, training.init_params(exp, 0), cfg, 0, 1)
    assert initial.sizes["trial"] == 512
    assert r["history"]["hard_accuracy_all"][0] == pytest.approx(
        initial.attrs["summary"]["hard_accuracy_all_configs"], abs=1e-6
    )
    assert np.all((r["history"]["soft_accuracy_all"] >= 0) & (r["history"]["soft_accuracy_all"] <= 1))
