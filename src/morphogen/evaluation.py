"""Evaluation rollouts of trained models, as xarray Datasets.

Hard (discrete) models are evaluated in hard mode; others with their ordinary step. Trials are
independent start states drawn from the ``rollout`` stream, run in one vmapped batch.
"""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from morphogen import damage, rng, tasks, training, updates


def rollout_dataset(exp: training.Experiment, params, exp_cfg: dict, seed: int, scale: int) -> xr.Dataset:
    """Trajectories (trial, step, y, x, channel) on the ``scale``x evaluation grid
    (:func:`evaluation_grid`: ``scale`` times the training grid, matched to its border).

    Runs ``scale`` times the training rollout length; step 0 is the start state. Also holds
    ``accuracy(trial, step)``: the fraction of cells whose channel 0 matches the target, and
    ``phase_accuracy(trial, step)``: the same against the best-matching phase of the pattern
    (a pattern drawn right but shifted scores 1 there and about 0.5 or less in ``accuracy``).
    """
    n_trials = int(exp_cfg["evaluation"]["trials"])
    n_steps = int(exp_cfg["training"]["rollout_steps"]) * scale
    grid = evaluation_grid(exp_cfg, scale)
    task = tasks.make(exp_cfg["task"], channels=exp.model_cfg["channels"], grid=grid)
    hard = exp.hard_step is not None
    step = exp.hard_step if hard else exp.step
    run_params = exp.family.harden(params) if hard else params
    key = jax.random.fold_in(rng.stream(seed, "rollout"), scale)
    x0 = task.initial_states(jax.random.fold_in(key, 0), n_trials)

    # Params and key are arguments, not constants, so that every seed compiles to one program
    # (shared through the persistent compilation cache).
    @jax.jit
    def run(params, key, x0):
        _, traj = updates.rollout(step, params, x0, key, exp.model_cfg, n_steps, trajectory=True)
        traj = jnp.concatenate([x0[None], traj])  # (step, trial, H, W, C)
        acc = jax.vmap(task.accuracy)(traj)  # (step, trial)
        phase_acc = jax.vmap(task.phase_accuracy)(traj)
        return jnp.swapaxes(traj, 0, 1), acc.T, phase_acc.T

    traj, acc, phase_acc = jax.device_get(run(run_params, jax.random.fold_in(key, 1), x0))
    dtype = np.uint8 if hard else np.float32
    ds = xr.Dataset(
        {
            "state": (("trial", "step", "y", "x", "channel"), np.asarray(traj).astype(dtype)),
            "accuracy": (("trial", "step"), np.asarray(acc, np.float32)),
            "phase_accuracy": (("trial", "step"), np.asarray(phase_acc, np.float32)),
            "target": (("y", "x"), task.target.astype(np.float32)),
        },
        coords={
            "trial": np.arange(n_trials),
            "step": np.arange(n_steps + 1),
            "y": np.arange(task.target.shape[0]),
            "x": np.arange(task.target.shape[1]),
            "channel": np.arange(traj.shape[-1]),
        },
        attrs={"scale": scale, "grid": grid, "mode": "hard" if hard else "soft"},
    )
    return ds


def matched_grid(task_cfg: dict, grid: int) -> int:
    """The nearest grid side at or below ``grid`` on which the pattern meets its far border the
    way it does on the training grid: a checkerboard anchored at the top-left corner ends
    mid-period at the far border of a 14-cell grid but not of a 56- or 64-cell one, and a circuit
    trained on one kind of border need not know the other. So a 14x14-trained circuit is run on
    54x54 for its 4x grid and damaged on 62x62; a 16x16-trained one keeps 64x64."""
    size = int(task_cfg["size"])
    if task_cfg["name"] == "checkerboard":
        grid -= (grid - size) % (2 * int(task_cfg.get("square", 2)))
    return grid


def evaluation_grid(exp_cfg: dict, scale: int) -> int:
    """The side of the ``scale``x evaluation grid: ``scale`` x the training grid, matched to the
    training grid's border (:func:`matched_grid`) unless ``evaluation.match_border`` is false."""
    grid = int(exp_cfg["task"]["size"]) * scale
    if exp_cfg["evaluation"].get("match_border", True):
        grid = matched_grid(exp_cfg["task"], grid)
    return grid


def protocol_grid(task_cfg: dict, protocol: dict) -> int:
    """The side of a damage protocol's grid: ``scale`` x the training grid, or ``grid``, by
    default matched to the training grid's border (``match_border``, see :func:`matched_grid`)."""
    size = int(task_cfg["size"])
    if "grid" not in protocol:
        return size * int(protocol.get("scale", 1))
    grid = int(protocol["grid"])
    if protocol.get("match_border", True):
        grid = matched_grid(task_cfg, grid)
    return grid


def recovery_dataset(
    exp: training.Experiment,
    params,
    exp_cfg: dict,
    seed: int,
    protocol_name: str,
    protocol: dict,
) -> xr.Dataset:
    """Damage-recovery trials: form the pattern, then damage it and keep running.

    Each trial starts from random cells, runs ``warmup`` steps (the pattern forms), then
    ``steps`` more steps with the protocol's damage applied after each update. Holds
    ``error(trial, step)`` (sum over cells of |channel 0 - target| after step and damage) for
    every step, ``frames(trial, frame_step, y, x)`` of channel 0 for the first
    ``frame_trials`` trials, and ``damage(trial, frame_step, y, x)`` for the same frames.
    The protocol's ``inference`` is ``"model"`` (the model's own update mode, the default),
    ``"sync"`` or ``"async"`` (with the protocol's ``fire_rate``, default 0.6).
    """
    size = int(exp_cfg["task"]["size"])
    grid = protocol_grid(exp_cfg["task"], protocol)
    task = tasks.make({**exp_cfg["task"], "size": grid}, channels=exp.model_cfg["channels"])
    h, w = task.target.shape
    n_trials = int(protocol["trials"])
    # By default the pattern gets as many steps to form as training gave it, scaled with the grid.
    default_warmup = -(-exp_cfg["training"]["rollout_steps"] * grid // size)
    warmup = int(protocol.get("warmup", default_warmup))
    n_steps = int(protocol["run_steps"])
    frame_steps = np.unique(
        np.clip(np.asarray(protocol.get("frame_steps", _default_frames(n_steps))), 0, n_steps)
    )
    n_frame_trials = min(int(protocol.get("frame_trials", 2)), n_trials)

    inference = protocol.get("inference", "model")
    fire_rate = float(protocol.get("fire_rate", 0.6))
    mode = exp_cfg["update"]["mode"] if inference == "model" else inference
    rate = exp_cfg["update"].get("fire_rate", fire_rate) if inference == "model" else fire_rate
    hard = exp.hard_step is not None
    base = exp.family.hard_step if hard else exp.family.step
    step = updates.wrap(base, mode, rate)
    run_params = exp.family.harden(params) if hard else params
    target = jnp.asarray(task.target)
    root = jax.random.fold_in(rng.stream(seed, "damage"), _name_id(protocol_name))

    def trial(run_params, root, i):
        key = jax.random.fold_in(root, i)
        x = task.initial_states(jax.random.fold_in(key, 0), 1)
        x = updates.rollout(step, run_params, x, jax.random.fold_in(key, 1), exp.model_cfg, warmup)
        k_run, k_damage = jax.random.fold_in(key, 2), jax.random.fold_in(key, 3)

        def body(x, t):
            x = step(run_params, x, jax.random.fold_in(k_run, t), exp.model_cfg)
            m = damage.mask_at(protocol, k_damage, t, h, w)
            x = damage.apply(x, m)
            return x, (damage.recovery_error(x, target)[0], x[0, ..., 0], m)

        x0_err = damage.recovery_error(x, target)[0]
        _, (err, states, masks) = jax.lax.scan(body, x, jnp.arange(n_steps))
        err = jnp.concatenate([x0_err[None], err])
        states = jnp.concatenate([x[0, ..., 0][None], states])
        masks = jnp.concatenate([jnp.zeros((1, h, w)), masks])
        return err, states[frame_steps], masks[frame_steps]

    # As in rollout_dataset: params and key as arguments, one program for every seed.
    run = jax.jit(jax.vmap(trial, in_axes=(None, None, 0)))
    err, frames, masks = jax.device_get(run(run_params, root, jnp.arange(n_trials)))
    dtype = np.uint8 if hard else np.float32
    return xr.Dataset(
        {
            "error": (("trial", "step"), np.asarray(err, np.float32)),
            "frames": (
                ("frame_trial", "frame_step", "y", "x"),
                np.asarray(frames[:n_frame_trials]).astype(dtype),
            ),
            "damage": (
                ("frame_trial", "frame_step", "y", "x"),
                np.asarray(masks[:n_frame_trials]).astype(np.uint8),
            ),
            "target": (("y", "x"), task.target.astype(np.float32)),
        },
        coords={
            "trial": np.arange(n_trials),
            "step": np.arange(n_steps + 1),
            "frame_trial": np.arange(n_frame_trials),
            "frame_step": frame_steps,
            "y": np.arange(h),
            "x": np.arange(w),
        },
        attrs={
            "protocol": protocol_name,
            "protocol_config": dict(protocol),
            "inference": mode,
            "fire_rate": float(rate if mode == "async" else 1.0),
            "warmup_steps": warmup,
            "damage_end": min(damage.damage_end(protocol), n_steps),
        },
    )


def _default_frames(n_steps: int) -> list[int]:
    """Every step of short runs (for animations), a log-spaced selection of long ones."""
    if n_steps <= 400:
        return list(range(n_steps + 1))
    return sorted({0, *np.unique(np.geomspace(1, n_steps, 24).astype(int)).tolist()})


def _name_id(name: str) -> int:
    """A stable small integer for a protocol name (its key stream)."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF
