"""Evaluation rollouts of trained models, as xarray Datasets.

Hard (discrete) models are evaluated in hard mode; others with their ordinary step. Trials are
independent start states drawn from the ``rollout`` stream, run in one vmapped batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from morphogen import rng, tasks, training, updates


def rollout_dataset(exp: training.Experiment, params, exp_cfg: dict, seed: int, scale: int) -> xr.Dataset:
    """Trajectories (trial, step, y, x, channel) on a grid ``scale`` times the training grid.

    Runs ``scale`` times the training rollout length; step 0 is the start state. Also holds
    ``accuracy(trial, step)``: the fraction of cells whose channel 0 matches the target.
    """
    n_trials = int(exp_cfg["evaluation"]["trials"])
    n_steps = int(exp_cfg["training"]["rollout_steps"]) * scale
    task = tasks.make(exp_cfg["task"], channels=exp.model_cfg["channels"], scale=scale)
    hard = exp.hard_step is not None
    step = exp.hard_step if hard else exp.step
    run_params = exp.family.harden(params) if hard else params
    key = jax.random.fold_in(rng.stream(seed, "rollout"), scale)
    x0 = task.initial_states(jax.random.fold_in(key, 0), n_trials)

    @jax.jit
    def run(x0):
        _, traj = updates.rollout(
            step, run_params, x0, jax.random.fold_in(key, 1), exp.model_cfg, n_steps, trajectory=True
        )
        traj = jnp.concatenate([x0[None], traj])  # (step, trial, H, W, C)
        acc = jax.vmap(task.accuracy)(traj)  # (step, trial)
        return jnp.swapaxes(traj, 0, 1), acc.T

    traj, acc = jax.device_get(run(x0))
    dtype = np.uint8 if hard else np.float32
    ds = xr.Dataset(
        {
            "state": (("trial", "step", "y", "x", "channel"), np.asarray(traj).astype(dtype)),
            "accuracy": (("trial", "step"), np.asarray(acc, np.float32)),
            "target": (("y", "x"), task.target.astype(np.float32)),
        },
        coords={
            "trial": np.arange(n_trials),
            "step": np.arange(n_steps + 1),
            "y": np.arange(task.target.shape[0]),
            "x": np.arange(task.target.shape[1]),
            "channel": np.arange(traj.shape[-1]),
        },
        attrs={"scale": scale, "mode": "hard" if hard else "soft"},
    )
    return ds
