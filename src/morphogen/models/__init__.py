"""Model families: each is a pair of pure functions ``init(key, cfg) -> params`` and
``step(params, state, key, cfg) -> state``, plus optional discrete (hard) evaluation.

Adding a family means one module here that defines ``FAMILY`` and its name in ``FAMILIES``; the
training loop and the workflow rules never name a family. A family's module is imported when
:func:`get` first asks for it, so code that serves every family imports none of them: the
workflow's code stamps (rules/common.smk, ``sources``) add a job's own family, and an edit of one
family reruns only that family's jobs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import NamedTuple


class Family(NamedTuple):
    init: Callable  # (key, cfg) -> params
    step: Callable  # (params, state, key, cfg) -> state
    validate: Callable  # (cfg) -> None, raises ValueError naming the model key
    count: Callable  # (cfg) -> dict of sizes
    summary: Callable  # (params, cfg) -> dict of numbers for the models table
    channels: Callable  # (cfg) -> the size of a state's last axis (a task's state shape)
    harden: Callable | None = None  # params -> params of the discrete circuit
    hard_step: Callable | None = None  # fast step of the discrete circuit
    # (params, key, step, cfg) -> params: what one training step runs (a training method's
    # relaxation, e.g. noise on discrete choices); None: the params themselves
    relax: Callable | None = None
    # (params, cfg) -> {name: scalar}: numbers of the params logged per training step (e.g. the
    # learned function at a few points, for an animation of it over training)
    probe: Callable | None = None
    # (params, cfg) -> {name: (dims, array, coords)}: curves of a trained model for its figure
    curves: Callable | None = None
    # (params, state before, state after, key, cfg) -> state: a rule every cell obeys after
    # each update, whether it fired or not (the growing NCA's alive masking, the advection NCA's
    # transport of mass); updates.wrap applies it
    post: Callable | None = None
    # (params, objective, cfg, key, log) -> (params, report): a discrete search that repairs the
    # trained circuit (training.polish, its settings; key: the search's own random draws);
    # objective(params, hard) is the training loss on fixed start states, of the discrete
    # circuit (hard) or of its relaxation at those params
    polish: Callable | None = None


def check_model_keys(cfg: dict, choices: dict | None = None, non_negative: tuple = ()) -> None:
    """Raise ValueError naming the model key: ``choices`` maps a key to (allowed values, default),
    ``non_negative`` names numeric keys that must be >= 0 (when given)."""
    for key, (allowed, default) in (choices or {}).items():
        if cfg.get(key, default) not in allowed:
            raise ValueError(f"model.{key} must be one of {', '.join(allowed)}, got {cfg.get(key)!r}")
    for key in non_negative:
        if float(cfg.get(key, 0.0)) < 0:
            raise ValueError(f"model.{key} must be >= 0, got {cfg[key]}")


def glorot_mlp(key, sizes: list[int], zero_output: bool) -> list[dict]:
    """``[{"w": (n_in, n_out), "b": (n_out,)}, ...]`` for layer widths ``sizes``: Glorot-uniform
    weights (Keras' default), zero biases, the last layer's weights zero if ``zero_output``."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    keys = jax.random.split(key, len(sizes) - 1)
    layers = []
    for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
        limit = np.sqrt(6.0 / (n_in + n_out))
        w = jax.random.uniform(k, (n_in, n_out), jnp.float32, -limit, limit)
        if zero_output and i == len(sizes) - 2:
            w = jnp.zeros_like(w)
        layers.append({"w": w, "b": jnp.zeros((n_out,), jnp.float32)})
    return layers


# The families, each a module of this package with a module-level ``FAMILY``.
FAMILIES = ("difflogic", "patterning", "attention", "growing", "advection")


def get(name: str) -> Family:
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}")
    return importlib.import_module(f"{__name__}.{name}").FAMILY
