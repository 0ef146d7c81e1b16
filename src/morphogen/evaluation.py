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
from morphogen.tasks import evaluation_grid, matched_grid


def rollout_dataset(
    exp: training.Experiment,
    params,
    exp_cfg: dict,
    seed: int,
    scale: int,
    *,
    label: str = "",
    variant: dict | None = None,
    grid: int | None = None,
) -> xr.Dataset:
    """Trajectories ``state(trial, step, ...)`` on the ``scale``x evaluation grid
    (:func:`evaluation_grid`: ``scale`` times the training grid, matched to its border), with
    the task's scores of every step (:attr:`tasks.Task.scores`).

    Runs ``scale`` times ``evaluation.steps`` (default the training rollout length; once, with
    ``evaluation.scale_steps`` false: a seed that grows to a fixed size); step 0 is
    the start state, and every
    ``evaluation.frame_every``-th step is stored (default 1: all). For the checkerboard the
    scores are ``accuracy(trial, step)``: the fraction of cells whose channel 0 matches the
    target, and ``phase_accuracy(trial, step)``: the same against the best-matching phase of the
    pattern (a pattern drawn right but shifted scores 1 there and about 0.5 or less in
    ``accuracy``). A family's curves of the trained model (e.g. a learned function) are added.
    ``label`` names a second evaluation of the same run (e.g. its initial params) whose start
    states are drawn from a stream of their own. ``variant`` overrides model keys for this
    evaluation only (e.g. ``{"noise": 0.0}``), on the same start states and keys. A task with a
    ``summary`` puts its numbers of the evaluation in ``attrs["summary"]`` (the models table
    reads them). A task with evaluation ``cases`` (the advection NCA's source -> target pairs)
    runs ``trials`` start states of each and stores every per-trial array with a leading case
    axis (``pair``); its ``stored_channels`` are the state channels kept at the frames.
    ``grid`` runs on a grid of that side instead, for ``evaluation.grid_steps`` steps (``scale``
    is then ignored; the attrs' is the grid's multiple of the training grid, rounded down).
    """
    ecfg = exp_cfg["evaluation"]
    n_trials = int(ecfg["trials"])
    n_steps = int(ecfg.get("steps", exp_cfg["training"]["rollout_steps"]))
    if ecfg.get("scale_steps", True):
        n_steps *= scale
    if grid is not None:
        n_steps = int(ecfg.get("grid_steps", ecfg.get("steps", exp_cfg["training"]["rollout_steps"])))
        scale = grid // tasks.grid_side(exp_cfg["task"])
    mcfg = {**exp.model_cfg, **(variant or {})}
    stride = int(ecfg.get("frame_every", 1))
    key = jax.random.fold_in(rng.stream(seed, "rollout"), scale if grid is None else _name_id(f"grid{grid}"))
    grid = evaluation_grid(exp_cfg, scale) if grid is None else grid
    task = tasks.make(exp_cfg["task"], channels=exp.family.channels(exp.model_cfg), grid=grid)
    hard = exp.hard_step is not None
    step = exp.hard_step if hard else exp.step
    run_params = exp.family.harden(params) if hard else params
    if label:
        key = jax.random.fold_in(key, _name_id(label))
    cases = task.cases
    if cases:  # n_trials start states of every case, case-major
        x0 = task.case_states(jax.random.fold_in(key, 0), n_trials)
    elif task.evaluation_states is not None:  # a fixed set (e.g. every configuration)
        x0 = task.evaluation_states(jax.random.fold_in(key, 0), n_trials)
        n_trials = int(x0.shape[0])
    else:
        x0 = task.initial_states(jax.random.fold_in(key, 0), n_trials)
    frames = np.arange(0, n_steps + 1, stride)
    kept = slice(None) if task.stored_channels is None else np.asarray(task.stored_channels)

    # Params and key are arguments, not constants, so that every seed compiles to one program
    # (shared through the persistent compilation cache).
    @jax.jit
    def run(params, key, x0):
        _, traj = updates.rollout(step, params, x0, key, mcfg, n_steps, trajectory=True)
        traj = jnp.concatenate([x0[None], traj])  # (step, trial, ...)
        return jnp.swapaxes(traj[frames][..., kept], 0, 1), task.scores(traj)

    traj, scores = jax.device_get(run(run_params, jax.random.fold_in(key, 1), x0))

    def by_case(values, dims):
        """A case-major (cases x trials, ...) array as (case, trial, ...)."""
        if not cases or dims[0] != "trial":
            return values, dims
        return values.reshape(len(cases), n_trials, *values.shape[1:]), (task.case_dim, *dims)

    dtype = np.uint8 if hard else np.float32
    dims = ("trial", "frame_step" if stride > 1 else "step", *task.state_dims)
    data = {"state": by_case(np.asarray(traj).astype(dtype), dims)[::-1]}
    for name, values in scores.items():
        values = np.asarray(values)
        values = values.astype(np.float32 if values.dtype.kind == "f" else np.int32)
        data[name] = by_case(values, task.score_dims[name])[::-1]
    coords = {"trial": np.arange(n_trials), "step": np.arange(n_steps + 1)}
    if cases:
        coords[task.case_dim] = np.asarray(cases, dtype=object)  # variable-length UTF-8 in zarr
    if stride > 1:
        coords["frame_step"] = frames
    coords.update({d: np.arange(n) for d, n in zip(task.state_dims, traj.shape[2:])})
    if task.stored_channels is not None:
        coords["channel"] = np.asarray(task.stored_channels)
    if task.target is not None:  # (y, x), or (y, x, colour) for an image
        data["target"] = (("y", "x", "colour")[: task.target.ndim], task.target.astype(np.float32))
    if exp.family.curves is not None:
        for name, (curve_dims, values, curve_coords) in exp.family.curves(params, exp.model_cfg).items():
            data[name] = (curve_dims, values)
            coords.update(curve_coords)
    attrs = {"scale": scale, "mode": "hard" if hard else "soft", **({"grid": grid} if grid else {})}
    if label:
        attrs["params"] = label
    if variant:
        attrs["variant"] = dict(variant)
    if task.summary is not None:
        attrs["summary"] = task.summary({k: np.asarray(v) for k, v in scores.items()})
    return xr.Dataset(data, coords=coords, attrs=attrs)


def trace_dataset(trace: dict, exp_cfg: dict) -> xr.Dataset:
    """The snapshots of an online run's training trajectory (:func:`training.load_trace`) as
    ``state(snapshot, y, x, channel)`` with the training step of each snapshot."""
    states = np.asarray(trace["state"], np.float32)
    return xr.Dataset(
        {"state": (("snapshot", "y", "x", "channel"), states)},
        coords={
            "snapshot": np.arange(len(states)),
            "snapshot_step": ("snapshot", np.asarray(trace["step"], np.int64)),
            "y": np.arange(states.shape[1]),
            "x": np.arange(states.shape[2]),
            "channel": np.arange(states.shape[3]),
        },
        attrs={"kind": "training trajectory", "snapshot_every": int(exp_cfg["training"]["snapshot_every"])},
    )


def protocol_grid(task_cfg: dict, protocol: dict) -> int:
    """The side of a damage protocol's grid: ``scale`` x the training grid, or ``grid``, by
    default matched to the training grid's border (``match_border``, see :func:`matched_grid`)."""
    size = tasks.grid_side(task_cfg)
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

    Each trial starts from the task's start state (random cells, or the growing NCA's seed),
    runs ``warmup`` steps (the pattern forms), then ``steps`` more steps with the protocol's
    damage applied after each update. Holds ``error(trial, step)`` (the task's ``damage_error``:
    for the checkerboard the sum over cells of |channel 0 - target|, for growth the mean squared
    RGBA error) for every step, ``frames(trial, frame_step, y, x[, colour])`` (the task's
    ``frame``: channel 0, or RGBA) for the first ``frame_trials`` trials, and ``damage(trial,
    frame_step, y, x)`` for the same frames. The protocol's ``inference`` is ``"model"`` (the
    model's own update mode, the default), ``"other"`` (the other one), ``"sync"`` or ``"async"``
    (async with the protocol's ``fire_rate``, default 0.6). A trial has recovered once its
    error is back at or below ``recovery_threshold`` (default 0: exact) after the damage ends;
    the store's attrs carry it for the tables.
    """
    size = tasks.grid_side(exp_cfg["task"])
    grid = protocol_grid(exp_cfg["task"], protocol)
    task = tasks.make(exp_cfg["task"], channels=exp.family.channels(exp.model_cfg), grid=grid)
    h, w = task.target.shape[:2]
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
    own = exp_cfg["update"]["mode"]
    mode = {"model": own, "other": "sync" if own == "async" else "async"}.get(inference, inference)
    rate = exp_cfg["update"].get("fire_rate", fire_rate) if inference == "model" else fire_rate
    hard = exp.hard_step is not None
    base = exp.family.hard_step if hard else exp.family.step
    step = updates.wrap(base, mode, rate, exp.family.post)
    run_params = exp.family.harden(params) if hard else params
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
            return x, (task.damage_error(x)[0], task.frame(x)[0], m)

        x0_err = task.damage_error(x)[0]
        _, (err, states, masks) = jax.lax.scan(body, x, jnp.arange(n_steps))
        err = jnp.concatenate([x0_err[None], err])
        states = jnp.concatenate([task.frame(x)[0][None], states])
        masks = jnp.concatenate([jnp.zeros((1, h, w)), masks])
        return err, states[frame_steps], masks[frame_steps]

    # As in rollout_dataset: params and key as arguments, one program for every seed.
    run = jax.jit(jax.vmap(trial, in_axes=(None, None, 0)))
    err, frames, masks = jax.device_get(run(run_params, root, jnp.arange(n_trials)))
    dtype = np.uint8 if hard else np.float32
    colour = ("colour",) if frames.ndim == 5 else ()
    return xr.Dataset(
        {
            "error": (("trial", "step"), np.asarray(err, np.float32)),
            "frames": (
                ("frame_trial", "frame_step", "y", "x", *colour),
                np.asarray(frames[:n_frame_trials]).astype(dtype),
            ),
            "damage": (
                ("frame_trial", "frame_step", "y", "x"),
                np.asarray(masks[:n_frame_trials]).astype(np.uint8),
            ),
            "target": (("y", "x", "colour")[: task.target.ndim], task.target.astype(np.float32)),
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
            "recovery_threshold": float(protocol.get("recovery_threshold", 0.0)),
            "error_cells": int(task.error_cells),
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


def describe(ds: xr.Dataset) -> str:
    """One line on an evaluation rollout's final step, for the log."""
    steps = ds.sizes["step"] - 1
    if "accuracy" in ds:
        final = ds["accuracy"].isel(step=-1).values
        return (
            f"grid {ds.sizes['y']}x{ds.sizes['x']}, {steps} steps, final accuracy mean {final.mean():.4f}, "
            f"perfect trials {(final >= 1).mean():.2%}"
        )
    last = ds.isel(step=-1)
    return ", ".join(
        [f"{ds.sizes['trial']} trials, {steps} steps"]
        + [f"{k} {float(last[k]):.4f}" for k in ds.data_vars if last[k].ndim == 0]
        + [f"{k} {v:.4g}" for k, v in ds.attrs.get("summary", {}).items()]
    )
