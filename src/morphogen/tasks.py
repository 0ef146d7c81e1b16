"""Targets and start states of the tasks.

Shapes: states and targets are ``(batch, height, width, channels)``; a target covers the
channels its loss reads (channel 0 for the checkerboard).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def checkerboard(height: int, width: int, square: int = 2) -> np.ndarray:
    """(H, W) float32 checkerboard of ``square`` x ``square`` tiles, 0 at the top-left."""
    y, x = np.mgrid[:height, :width]
    return (((y // square) + (x // square)) % 2).astype(np.float32)


def random_binary_states(key: jax.Array, batch: int, height: int, width: int, channels: int):
    """Fresh uniformly random binary start states (the DiffLogic checkerboard's)."""
    return jax.random.randint(key, (batch, height, width, channels), 0, 2).astype(jnp.float32)


def channel0_sq_error(final, target):
    """Sum over batch and cells of (channel 0 - target)^2: the reference raw-sum loss."""
    return jnp.sum(jnp.square(final[..., 0] - target))


def channel0_accuracy(final, target):
    """Per-sample fraction of cells whose rounded channel 0 equals the target: (batch,)."""
    return jnp.mean(jnp.round(final[..., 0]) == target, axis=(-2, -1))


def checkerboard_phases(height: int, width: int, square: int = 2) -> np.ndarray:
    """(P, H, W): every distinct translate of the checkerboard (its phases), the anchored one
    first. A period is two tiles each way; a shift by one tile each way gives the same board."""
    period = 2 * square
    big = checkerboard(height + period, width + period, square)
    phases, seen = [], set()
    for dy in range(period):
        for dx in range(period):
            board = big[dy : dy + height, dx : dx + width]
            if board.tobytes() not in seen:
                seen.add(board.tobytes())
                phases.append(board)
    return np.stack(phases)


def best_phase_accuracy(final, phases):
    """Per-sample accuracy against the best-matching phase of the pattern: (batch,). A circuit
    that draws the right pattern shifted (e.g. anchored on the other border) scores 1."""
    hits = jnp.round(final[..., 0])[:, None] == phases[None]  # (batch, P, H, W)
    return jnp.max(jnp.mean(hits, axis=(-2, -1)), axis=1)


class Task(NamedTuple):
    """A task: how start states are drawn, what the target is, how a final state is scored."""

    name: str
    target: np.ndarray  # (H, W) for channel-0 tasks
    initial_states: Callable  # (key, batch) -> (batch, H, W, C)
    loss: Callable  # final (batch, H, W, C) -> scalar
    accuracy: Callable  # final -> (batch,)
    # final -> (batch,): accuracy against the best of the pattern's phases (translates)
    phase_accuracy: Callable


def make(tcfg: dict, *, channels: int, scale: int = 1, grid: int | None = None) -> Task:
    """Build the task named in ``tcfg["name"]``; ``scale`` enlarges the grid (evaluation), or
    ``grid`` sets its side."""
    name = tcfg["name"]
    if name == "checkerboard":
        size = int(grid) if grid is not None else int(tcfg["size"]) * scale
        square = int(tcfg.get("square", 2))
        target = checkerboard(size, size, square)
        t = jnp.asarray(target)
        phases = jnp.asarray(checkerboard_phases(size, size, square))
        return Task(
            name=name,
            target=target,
            initial_states=lambda key, batch: random_binary_states(key, batch, size, size, channels),
            loss=lambda final: channel0_sq_error(final, t),
            accuracy=lambda final: channel0_accuracy(final, t),
            phase_accuracy=lambda final: best_phase_accuracy(final, phases),
        )
    raise ValueError(f"unknown task {name!r}; known: checkerboard")
