"""Named random streams derived from a run's seed.

Every random draw in a run comes from ``jax.random.key(seed)`` folded with the fixed id of the
stream that uses it, so adding a new use of randomness never shifts an existing stream.
"""

from __future__ import annotations

import jax

STREAMS = {
    "init": 1,  # model parameters and wiring
    "train": 2,  # per-training-step draws (fold_in the step number)
    "pool": 3,  # sample pools
    "rollout": 4,  # evaluation rollouts
    "damage": 5,  # damage trials (fold_in the trial number)
    "es": 6,  # evolution strategy perturbations
    "trajectory": 7,  # the online regime's one trajectory (its start states)
    "polish": 8,  # the start states (and async masks) a trained circuit is polished on
    "validate": 9,  # the larger grid's start states (and async masks) a stop is checked on
    "evolve": 10,  # the mutations of training.polish's evolutionary search
}


def stream(seed: int, name: str) -> jax.Array:
    """The key of stream ``name`` for the run with this ``seed``."""
    if name not in STREAMS:
        raise KeyError(f"unknown random stream {name!r}; known: {sorted(STREAMS)}")
    return jax.random.fold_in(jax.random.key(seed), STREAMS[name])
