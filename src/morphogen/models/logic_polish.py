"""Polishing a trained logic circuit (``training.polish``), as the discrete circuit it is deployed
as: :func:`repair` searches single gate switches ranked by the relaxation's gradient;
:func:`evolve` lets the circuit drift through switches that leave the objective as it is until a
combination of them lowers it. Both evaluate every candidate exactly."""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from morphogen.netlist import GATE_NAMES


def _flat_ops(params: dict) -> tuple[list, Callable, np.ndarray]:
    """(leaves, unflat, ops): the per-layer (..., 16) logits, the inverse of concatenating
    per-gate rows of all layers, and every gate's argmax operation in that order."""
    leaves, tree = jax.tree.flatten(params["logits"])
    sizes = [int(np.prod(z.shape[:-1])) for z in leaves]
    bounds = np.cumsum([0, *sizes])

    def unflat(flat):
        return jax.tree.unflatten(
            tree, [flat[bounds[i] : bounds[i + 1]].reshape(z.shape) for i, z in enumerate(leaves)]
        )

    ops = np.concatenate([np.asarray(jnp.argmax(z, -1)).reshape(-1) for z in leaves])
    return leaves, unflat, ops


def _switched_logits(
    params: dict, leaves: list, unflat: Callable, trained: np.ndarray, ops: np.ndarray
) -> dict:
    """The trained logits, with each gate whose operation is now another's new operation
    leading by 1."""
    z = np.concatenate([np.asarray(x, np.float32).reshape(-1, 16) for x in leaves])
    for gate in np.flatnonzero(ops != trained):
        z[gate, ops[gate]] = z[gate].max() + 1.0
    return {**params, "logits": unflat(jnp.asarray(z))}


def repair(
    params: dict, wires: dict, objective: Callable, cfg: dict, log: Callable[[str], None]
) -> tuple[dict, dict]:
    """Repair a trained logic circuit, running on ``wires``, one gate at a time
    (``training.polish``), as the discrete object it is deployed as.

    Gradient training can stall a few cells short of an exact circuit: the straight-through
    gradient of a circuit whose gates are all discrete says little about which single gate to
    switch (on one such circuit, 1 cell in 256 wrong for 400 steps, the one switch that helped
    ranked 1,228th of 48,640 by the gradient's first-order estimate). So each round scores
    every (gate, operation) switch by that estimate (the relaxation's gradient at the one-hot
    circuit, taken from the soft circuit on the same starts), evaluates the ``candidates`` best
    exactly (the hard circuit's ``objective``), and makes the best switch if it lowers the
    objective; up to ``max_changes`` rounds, until it is 0 or no candidate helps.
    Deterministic: fixed start states, stable ordering, the first of equal scores. The
    returned logits differ from the trained ones only at the switched gates, whose new
    operation leads by 1."""
    n_cand = int(cfg.get("candidates", 2048))
    max_changes = int(cfg.get("max_changes", 20))
    chunk = min(n_cand, int(cfg.get("chunk", 512)))
    leaves, unflat, ops = _flat_ops(params)
    trained = ops.copy()

    def hard_objective(flat):
        return objective({"logits": unflat(flat), "wires": wires}, True)

    def soft_objective(flat):
        return objective({"weights": unflat(flat), "surrogate": None, "wires": wires}, False)

    score = jax.jit(hard_objective)
    grad = jax.jit(jax.grad(soft_objective))
    switched = jax.jit(
        jax.vmap(
            lambda flat, g, o: hard_objective(flat.at[g].set(jax.nn.one_hot(o, 16))), in_axes=(None, 0, 0)
        )
    )
    flat = jax.nn.one_hot(jnp.asarray(ops), 16, dtype=jnp.float32)
    start = current = float(score(flat))
    changes: list[tuple[int, int]] = []
    t0 = time.perf_counter()
    while current > 0 and len(changes) < max_changes:
        g = np.asarray(grad(flat), np.float64)
        estimate = g - g[np.arange(len(ops)), ops][:, None]  # the loss change if gate i took op j
        estimate[np.arange(len(ops)), ops] = np.inf
        best = np.argsort(estimate, axis=None, kind="stable")[: min(n_cand, estimate.size - len(ops))]
        gates, new_ops = np.unravel_index(best, estimate.shape)
        values = np.concatenate(
            [
                np.asarray(
                    switched(flat, jnp.asarray(gates[c : c + chunk]), jnp.asarray(new_ops[c : c + chunk]))
                )
                for c in range(0, len(gates), chunk)
            ]
        )
        j = int(np.argmin(values))
        if not values[j] < current:
            break
        gate, op = int(gates[j]), int(new_ops[j])
        ops[gate] = op
        flat = flat.at[gate].set(jax.nn.one_hot(op, 16))
        changes.append((gate, op))
        log(f"polish: switched gate {gate} to {GATE_NAMES[op]}, objective {current:.4g} -> {values[j]:.4g}")
        current = float(values[j])
    out = _switched_logits(params, leaves, unflat, trained, ops)
    report = {
        "objective_before": start,
        "objective_after": current,
        "changes": len(changes),
        "seconds": time.perf_counter() - t0,
    }
    return out, report


def evolve(
    params: dict, wires: dict, objective: Callable, cfg: dict, key: jax.Array, log: Callable[[str], None]
) -> tuple[dict, dict]:
    """Evolve a trained logic circuit, running on ``wires``, by neutral drift
    (``training.polish.search: evolve``): a (1 + ``offspring``) evolution strategy on the gates'
    operations, as Cartesian genetic programming evolves circuits.

    A circuit a few cells short of exact is often a local minimum of single switches: on the
    coloured G, none of the 69,000 (gate, operation) switches of one such circuit fixed its one
    wrong bit. Most switches change nothing the objective sees (a gate no output depends on,
    or an operation that agrees with the old one on every input the gate meets), and a
    combination of them can. So each generation switches ``mutations`` random gates to a
    random other operation in each of ``offspring`` copies of the circuit, evaluates every copy
    exactly (the hard circuit's ``objective``), and the best copy (the first of equal ones)
    replaces the circuit if its objective is no higher: ties are accepted, and the circuit
    drifts through the switches it is indifferent to. Up to ``generations`` generations, until
    the objective is 0. The drift switches most gates on its way; the switches the result does
    not need (its objective is as low without them) are then undone, halves first. Deterministic
    given ``key``. The returned logits differ from the trained ones only at the switched gates,
    whose new operation leads by 1."""
    offspring = int(cfg.get("offspring", 32))
    mutations = int(cfg.get("mutations", 5))
    generations = int(cfg.get("generations", 2000))
    log_every = max(1, int(cfg.get("log_every", 500)))
    leaves, unflat, trained = _flat_ops(params)
    n = len(trained)

    def hard_objective(ops):
        return objective({"logits": unflat(jax.nn.one_hot(ops, 16, dtype=jnp.float32)), "wires": wires}, True)

    @jax.jit
    def generation(ops, k):
        k_gate, k_op = jax.random.split(k)
        gates = jax.random.randint(k_gate, (offspring, mutations), 0, n)
        new = (ops[gates] + jax.random.randint(k_op, (offspring, mutations), 1, 16)) % 16
        children = jax.vmap(lambda g, o: ops.at[g].set(o))(gates, new)
        values = jax.vmap(hard_objective)(children)
        j = jnp.argmin(values)
        return children[j], values[j]

    score = jax.jit(hard_objective)  # the start's and the undoing's, compiled once
    ops = jnp.asarray(trained, jnp.int32)
    start = current = float(score(ops))
    t0 = time.perf_counter()
    done = 0
    while current > 0 and done < generations:
        child, value = generation(ops, jax.random.fold_in(key, done))
        done += 1
        value = float(value)
        if value <= current:
            if value < current:
                log(
                    f"polish: generation {done}: objective {current:.4g} -> {value:.4g} ({time.perf_counter() - t0:.0f} s)"
                )
            ops, current = child, value
        if done % log_every == 0:
            log(
                f"polish: generation {done}/{generations}: objective {current:.4g} ({time.perf_counter() - t0:.0f} s)"
            )
    drifted = int(np.sum(np.asarray(ops) != trained))
    ops = _undo_unneeded(np.asarray(ops), trained, current, score)
    out = _switched_logits(params, leaves, unflat, trained, ops)
    report = {
        "objective_before": start,
        "objective_after": current,
        "changes": int(np.sum(ops != trained)),
        "drifted": drifted,
        "generations": done,
        "seconds": time.perf_counter() - t0,
    }
    return out, report


def _undo_unneeded(ops: np.ndarray, trained: np.ndarray, value: float, objective: Callable) -> np.ndarray:
    """``ops`` with every switch away from ``trained`` that ``objective`` does not need to stay at
    ``value`` undone: the switched gates are tried in blocks, halving down to single gates, and
    a block goes back to the trained operations where the objective stays at most ``value``."""
    size = int(np.sum(ops != trained))
    while size >= 1:
        switched = np.flatnonzero(ops != trained)
        for i in range(0, len(switched), size):
            block = switched[i : i + size]
            trial = ops.copy()
            trial[block] = trained[block]
            if float(objective(jnp.asarray(trial))) <= value:
                ops = trial
        size //= 2
    return ops
