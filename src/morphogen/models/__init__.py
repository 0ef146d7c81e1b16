"""Model families: each is a pair of pure functions ``init(key, cfg) -> params`` and
``step(params, state, key, cfg) -> state``, plus optional discrete (hard) evaluation.

Adding a family means one module here and one entry in ``FAMILIES``; the training loop and the
workflow rules never name a family.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from morphogen.models import difflogic, patterning


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


FAMILIES: dict[str, Family] = {
    "difflogic": Family(
        init=difflogic.init,
        step=difflogic.step,
        validate=difflogic.validate,
        count=difflogic.gate_count,
        summary=difflogic.summary,
        harden=difflogic.harden,
        hard_step=difflogic.hard_step,
        relax=difflogic.relax,
        channels=lambda cfg: int(cfg["channels"]),
    ),
    "patterning": Family(
        init=patterning.init,
        step=patterning.step,
        validate=patterning.validate,
        count=patterning.parameter_count,
        summary=patterning.summary,
        channels=lambda cfg: int(cfg["cells"]),
        probe=patterning.probe,
        curves=patterning.curves,
    ),
}


def get(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}") from None
