"""Train one experiment on many seeds at once (one program, vmapped over seeds), one attempt each,
and print per seed the first step whose hard rollout was exact, the step an early stop would
have ended on, and the accuracy at the end.

    python benchmarks/seed_sweep.py EXPERIMENT NAME 'OVERRIDES_JSON' SEEDS [--preset quick]
        [--method M] [--chunk 50] [--out DIR] [--deadline S] [--probe STEP]
        [--init-offset N] [--data-offset N] [--perception-from SEEDS]

SEEDS: a comma list or a range a-b. The experiment is config/config.yaml's with the preset and
the training method (--method, else the one the experiment names) merged in, then OVERRIDES (a JSON object merged key by key). The step is the
pipeline's (training.make_train_step), so the per-seed numbers match what `train` computes up to
floating-point reassociation of the batched program; the early stop is not taken (every seed runs
the whole budget) and is read off the history instead. The offsets take a seed's initial params
(its wiring) and its training draws from other seeds, to tell which of the two decides a run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from morphogen import methods, rng, tables, training  # noqa: E402


def parse_seeds(text: str) -> list[int]:
    if "-" in text and "," not in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def experiment_config(name: str, preset: str, method: str | None, overrides: dict) -> dict:
    """The preset's experiment with ``method`` (by default its own), ``overrides`` merged in
    and no restarts."""
    exp = methods.merged(methods.preset_experiment(ROOT / "config", preset, name, method), overrides)
    exp["training"]["restart_after"] = 0
    return exp


def run(
    exp_cfg: dict,
    seeds: list[int],
    chunk: int,
    log=print,
    deadline: float = float("inf"),
    init_offset: int = 0,
    data_offset: int = 0,
    perception_from: list[int] | None = None,
) -> dict:
    """Train ``seeds`` at once. A seed's initial params (wiring) come from seed + ``init_offset``
    and its training draws (start states, async masks, training-method draws) from seed +
    ``data_offset``: apart, they say whether a seed's outcome follows its wiring or its data.
    ``perception_from`` (a DiffLogic circuit's; one seed per seed) takes the perception layers'
    wiring from other seeds' initial params, the rest of the wiring staying the seed's own."""
    tcfg = exp_cfg["training"]
    total = int(tcfg["steps"])
    exp = training.build(exp_cfg)
    optimizer, rate = training.attempt_optimizer(tcfg, total)
    states, statics = [], []
    for j, s in enumerate(seeds):
        params = training.init_params(exp, s + init_offset)
        if perception_from is not None:
            donor = training.init_params(exp, perception_from[j] + init_offset)
            params["wires"]["perception"] = donor["wires"]["perception"]
            if "wire_logits" in donor:  # learned wiring: the donor's choices too
                params["wire_logits"] = donor["wire_logits"]
        trainable, static = training.split_params(params)
        states.append(
            training.TrainState(
                trainable,
                optimizer.init(trainable),
                jnp.asarray(0, jnp.int32),
                clock=training.initial_clock(tcfg),
            )
        )
        statics.append(jax.tree.map(jnp.asarray, static))
    stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)  # noqa: E731
    state, static = stack(states), stack(statics)
    jitted_step = training.make_train_step(exp, statics[0], tcfg, optimizer, 0, rate).unbound
    keys = jnp.stack([rng.stream(s + data_offset, "train") for s in seeds])
    names = ["soft_loss", "hard_loss", "hard_accuracy", "skipped_update", "schedule_held"]

    @jax.jit
    def run_chunk(state, static, first):
        def one(st, i):
            ks = jax.vmap(lambda k: jax.random.fold_in(k, i))(keys)
            st, m = jax.vmap(jitted_step)(st, static, ks)
            return st, {k: m[k] for k in names if k in m}

        return jax.lax.scan(one, state, first + jnp.arange(chunk))

    hist = {k: [] for k in names}
    t0 = time.perf_counter()
    t_first = None
    for first in range(0, total, chunk):
        state, m = run_chunk(state, static, first)
        m = jax.device_get(m)
        if t_first is None:
            t_first = time.perf_counter() - t0
        for k, v in m.items():
            hist[k].append(np.asarray(v))
        acc = np.concatenate(hist["hard_accuracy"])
        soft = np.asarray(m["soft_loss"])[-1]
        log(
            f"  step {first + chunk}/{total}: exact so far {int(np.sum(np.any(acc >= 1, axis=0)))}/{len(seeds)};"
            f" soft loss now {' '.join(f'{v:.3g}' for v in soft)}, hard loss at best"
            f" {' '.join(f'{v:.3g}' for v in np.min(np.concatenate(hist['hard_loss']), axis=0))}"
            f" ({time.perf_counter() - t0:.0f} s)",
        )
        if time.perf_counter() - t0 > deadline:
            log(f"  deadline of {deadline:.0f} s passed: stopping at step {first + chunk}")
            break
    hist = {k: np.concatenate(v)[:total] for k, v in hist.items() if v}
    log(
        f"  {len(hist['hard_accuracy'])} steps, {(time.perf_counter() - t0 - t_first) / max(1, len(hist['hard_accuracy']) - chunk):.4f} s a step after the first chunk"
    )
    elapsed = time.perf_counter() - t0
    return {"history": hist, "seconds": elapsed, "first_chunk_seconds": t_first}


def summarise(hist: dict, seeds: list[int], patience: int, probe: int = 400) -> list[dict]:
    """Per seed: first exact step, the step an early stop after ``patience`` exact steps ends
    on, best and final accuracy, and accuracy and soft loss at step ``probe`` (e.g. the step a
    hardening schedule starts at)."""
    out = []
    acc = hist["hard_accuracy"]
    at = min(probe, len(acc)) - 1
    for j, s in enumerate(seeds):
        a = acc[:, j]
        exact = np.flatnonzero(a >= 1.0)
        streak, stop = 0, None
        for i, v in enumerate(a):
            streak = streak + 1 if v >= 1.0 else 0
            if patience and streak >= patience:
                stop = i + 1
                break
        out.append(
            {
                "seed": s,
                "first_exact": int(exact[0]) if len(exact) else None,
                "stop": stop,
                "best_acc": float(a.max()),
                "end_acc": float(a[-1]),
                "best_hard_loss": float(np.nanmin(hist["hard_loss"][:, j])),
                "end_soft": float(hist["soft_loss"][-1, j]),
                f"acc_{probe}": float(a[at]),
                f"soft_{probe}": float(hist["soft_loss"][at, j]),
                "skipped": int(np.nansum(hist["skipped_update"][:, j])),
                "failure": tables.failure_kind(a, hist["soft_loss"][:, j]) or None,
            }
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("experiment")
    p.add_argument("name")
    p.add_argument("overrides")
    p.add_argument("seeds")
    p.add_argument("--preset", default="quick")
    p.add_argument("--method", default=None)
    p.add_argument("--chunk", type=int, default=50)
    p.add_argument("--out", default=None)
    p.add_argument(
        "--probe", type=int, default=400, help="training step whose accuracy and soft loss to report"
    )
    p.add_argument(
        "--deadline", type=float, default=float("inf"), help="seconds; stop after the chunk past it"
    )
    p.add_argument("--init-offset", type=int, default=0, help="initial params from seed + this")
    p.add_argument("--data-offset", type=int, default=0, help="training draws from seed + this")
    p.add_argument(
        "--perception-from",
        default=None,
        help="DiffLogic: seeds (one per seed) to take the perception wiring from",
    )
    a = p.parse_args()
    seeds = parse_seeds(a.seeds)
    cfg = experiment_config(a.experiment, a.preset, a.method, json.loads(a.overrides))
    print(
        f"{a.name}: {a.experiment} ({a.preset}, method {a.method or 'its own'}) on {jax.devices()[0]}, seeds {seeds}",
        flush=True,
    )
    res = run(
        cfg,
        seeds,
        a.chunk,
        log=lambda m: print(f"[{a.name}]{m}", flush=True),
        deadline=a.deadline,
        init_offset=a.init_offset,
        data_offset=a.data_offset,
        perception_from=parse_seeds(a.perception_from) if a.perception_from else None,
    )
    patience = int(cfg["training"].get("stop_after_perfect", 0))
    rows = summarise(res["history"], seeds, patience, a.probe)
    n_stop = sum(r["stop"] is not None for r in rows)
    n_exact = sum(r["first_exact"] is not None for r in rows)
    n_end = sum(r["end_acc"] >= 1 for r in rows)
    kinds = [r["failure"] for r in rows]
    print(
        f"SUMMARY {a.name}: stopped exact {n_stop}/{len(seeds)}, ever exact {n_exact}, exact at end {n_end}; "
        f"never exact: {kinds.count('gap')} gap, {kinds.count('unlearnt')} unlearnt; "
        f"{res['seconds']:.0f} s ({res['first_chunk_seconds']:.0f} s first chunk)",
        flush=True,
    )
    for r in rows:
        print(f"  {a.name} " + " ".join(f"{k}={v}" for k, v in r.items()), flush=True)
    if a.out:
        d = Path(a.out)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{a.name}.json").write_text(
            json.dumps({"config": cfg, "rows": rows, "seconds": res["seconds"]})
        )
        np.savez(d / f"{a.name}.npz", **res["history"])


if __name__ == "__main__":
    main()
