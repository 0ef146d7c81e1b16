"""Damage protocols and the recovery error.

A protocol says which cells are zeroed (all channels) after which steps of a rollout:

``square_once``      a ``size`` x ``size`` square at the grid centre, zeroed once after step ``at``.
``square_for``       the same square zeroed after every step for ``steps`` steps, then released
                     (self-healing: does the pattern come back?).
``random_block``     after every step a ``size`` x ``size`` block at a random top-left corner,
                     clipped at the border (the robustness test).
``dead_cells``       a fixed random set of cells (``fraction`` of the grid) zeroed after every
                     step, for good (fault tolerance).
``half``             the ``side`` half of the grid (bottom, top, left or right) zeroed once
                     after step ``at`` (the growing NCA's regeneration test).
``none``             no damage: the control (does the pattern persist undamaged?).
``moving_circle``    a disc of ``radius`` cells erasing as it moves in a straight line from
                     ``start`` to ``end`` (fractions of the grid's height and width, [row,
                     column]) over ``steps`` steps, one position per step.

Masks are 1 where a cell is destroyed. Everything is a pure function of a key, so trials are
vmapped, each with its own stream.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PROTOCOLS = ("square_once", "square_for", "random_block", "dead_cells", "half", "moving_circle", "none")
SIDES = ("bottom", "top", "left", "right")


REQUIRED = {
    "square_once": ("size",),
    "square_for": ("size", "steps"),
    "random_block": ("size",),
    "dead_cells": ("fraction",),
    "half": ("side",),
    "moving_circle": ("radius", "steps", "start", "end"),
    "none": (),
}


def validate(name: str, protocol: dict) -> None:
    """Raise ValueError naming the missing key of protocol ``name``."""
    kind = protocol.get("name")
    if kind not in REQUIRED:
        raise ValueError(f"damage_protocols.{name}.name must be one of {', '.join(PROTOCOLS)}, got {kind!r}")
    for key in REQUIRED[kind]:
        if key not in protocol:
            raise ValueError(f"damage_protocols.{name}: protocol {kind} needs key {key!r}")
    if kind == "half" and protocol["side"] not in SIDES:
        raise ValueError(
            f"damage_protocols.{name}.side must be one of {', '.join(SIDES)}, got {protocol['side']!r}"
        )
    if "grid" in protocol and "scale" in protocol:
        raise ValueError(f"damage_protocols.{name}: give either 'grid' or 'scale', not both")


def square(height: int, width: int, size: int, top: int | None = None, left: int | None = None):
    """(H, W) float mask of a ``size`` square, centred unless ``top``/``left`` are given."""
    top = (height - size) // 2 if top is None else top
    left = (width - size) // 2 if left is None else left
    y = jnp.arange(height)[:, None]
    x = jnp.arange(width)[None, :]
    return ((y >= top) & (y < top + size) & (x >= left) & (x < left + size)).astype(jnp.float32)


def random_block(key, height: int, width: int, size: int):
    """A ``size`` block at a uniformly random top-left corner, clipped at the border."""
    k_y, k_x = jax.random.split(key)
    top = jax.random.randint(k_y, (), 0, height)
    left = jax.random.randint(k_x, (), 0, width)
    y = jnp.arange(height)[:, None]
    x = jnp.arange(width)[None, :]
    return ((y >= top) & (y < top + size) & (x >= left) & (x < left + size)).astype(jnp.float32)


def half(height: int, width: int, side: str):
    """(H, W) float mask of one half of the grid (the middle row or column of an odd grid goes
    with the damaged half)."""
    y, x = jnp.mgrid[:height, :width]
    cut = {"bottom": y >= height // 2, "top": y < (height + 1) // 2, "left": x < (width + 1) // 2,
           "right": x >= width // 2}[side]  # fmt: skip
    return cut.astype(jnp.float32)


def disc(height: int, width: int, cy, cx, radius: float):
    """(H, W) float mask of the cells whose centres lie within ``radius`` of (cy, cx)."""
    y = jnp.arange(height)[:, None]
    x = jnp.arange(width)[None, :]
    return ((y - cy) ** 2 + (x - cx) ** 2 <= radius**2).astype(jnp.float32)


def mask_at(protocol: dict, key, t, height: int, width: int):
    """(H, W) mask of the cells destroyed after step ``t`` (0-based) of a trial."""
    name = protocol["name"]
    if name == "square_once":
        hit = t == int(protocol.get("at", 0))
        return square(height, width, int(protocol["size"])) * hit
    if name == "square_for":
        hit = t < int(protocol["steps"])
        return square(height, width, int(protocol["size"])) * hit
    if name == "random_block":
        hit = t < int(protocol.get("steps", 1 << 30))
        return random_block(jax.random.fold_in(key, t), height, width, int(protocol["size"])) * hit
    if name == "dead_cells":
        return (jax.random.uniform(key, (height, width)) < float(protocol["fraction"])).astype(jnp.float32)
    if name == "half":
        return half(height, width, protocol["side"]) * (t == int(protocol.get("at", 0)))
    if name == "none":
        return jnp.zeros((height, width), jnp.float32)
    if name == "moving_circle":
        n = int(protocol["steps"])
        frac = jnp.minimum(t, n - 1) / max(n - 1, 1)
        (y0, x0), (y1, x1) = protocol["start"], protocol["end"]
        cy = (y0 + (y1 - y0) * frac) * (height - 1)
        cx = (x0 + (x1 - x0) * frac) * (width - 1)
        return disc(height, width, cy, cx, float(protocol["radius"])) * (t < n)
    raise ValueError(f"unknown damage protocol {name!r}; known: {', '.join(PROTOCOLS)}")


def damage_end(protocol: dict) -> int:
    """The first step after which no more damage is done (None-like large for permanent)."""
    name = protocol["name"]
    if name == "none":
        return 0
    if name in ("square_once", "half"):
        return int(protocol.get("at", 0)) + 1
    if name in ("square_for", "random_block", "moving_circle"):
        return int(protocol.get("steps", 1 << 30))
    return 1 << 30


def random_circles(key, n: int, height: int, width: int, radius=(0.1, 0.4)):
    """(n, H, W) masks of random discs (the growing NCA's training damage): in coordinates
    running from -1 to 1 across the grid, centres uniform in [-0.5, 0.5]^2 and radii uniform in
    ``radius``."""
    k_centre, k_radius = jax.random.split(key)
    centre = jax.random.uniform(k_centre, (n, 2, 1, 1), minval=-0.5, maxval=0.5)
    r = jax.random.uniform(k_radius, (n, 1, 1), minval=radius[0], maxval=radius[1])
    y = jnp.linspace(-1.0, 1.0, height)[:, None]
    x = jnp.linspace(-1.0, 1.0, width)[None, :]
    return ((y - centre[:, 0]) ** 2 + (x - centre[:, 1]) ** 2 < r**2).astype(jnp.float32)


def apply(state, mask):
    """Zero the masked cells (all channels): state (..., H, W, C), mask (..., H, W)."""
    return state * (1.0 - mask[..., None])
