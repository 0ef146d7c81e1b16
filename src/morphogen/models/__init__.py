"""Model families: each is a pair of pure functions ``init(key, cfg) -> params`` and
``step(params, state, key, cfg) -> state``, plus optional discrete (hard) evaluation.

Adding a family means one module here and one entry in ``FAMILIES``; the training loop and the
workflow rules never name a family.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from morphogen.models import difflogic


class Family(NamedTuple):
    init: Callable  # (key, cfg) -> params
    step: Callable  # (params, state, key, cfg) -> state
    validate: Callable  # (cfg) -> None, raises ValueError naming the model key
    count: Callable  # (cfg) -> dict of sizes
    summary: Callable  # (params, cfg) -> dict of numbers for the models table
    harden: Callable | None = None  # params -> params of the discrete circuit
    hard_step: Callable | None = None  # fast step of the discrete circuit
    # (params, key, step, cfg) -> params: what one training step runs (a training method's
    # relaxation, e.g. noise on discrete choices); None: the params themselves
    relax: Callable | None = None


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
    ),
}


def get(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}") from None
