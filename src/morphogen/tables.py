"""Tidy tables: the models table T1 (``experiment, seed, metric, value``) and wall times.

Tables are built from what the runs wrote (training history, checkpoint metadata, rollout
stores); nothing here trains or rolls out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from morphogen import store

COLUMNS = ["experiment", "seed", "metric", "value"]


def training_rows(history_csv: str | Path, experiment: str, seed: int) -> list[dict]:
    h = pd.read_csv(history_csv)
    last = h.iloc[-1]
    rows = [{"metric": "train_steps", "value": int(last["step"])}]
    for col in ("soft_loss", "hard_loss"):
        if col in h:
            rows.append({"metric": f"final_{col}", "value": float(last[col])})
    if "hard_accuracy" in h:
        hit = np.flatnonzero(h["hard_accuracy"].to_numpy() >= 1.0)
        rows.append(
            {"metric": "first_perfect_step", "value": int(h["step"].iloc[hit[0]]) if len(hit) else -1}
        )
    if "validation_accuracy" in h:  # training.validate: the step whose circuit held on the larger grid
        hit = np.flatnonzero(h["validation_accuracy"].to_numpy() >= 1.0)
        rows.append({"metric": "validated_step", "value": int(h["step"].iloc[hit[0]]) if len(hit) else -1})
    if "grad_norm" in h:  # gradient training: the share of steps whose gradient was exactly 0
        rows.append({"metric": "zero_gradient_fraction", "value": float((h["grad_norm"] == 0).mean())})
    if "spikes" in h:  # online regime: simulated trajectories completed (noise spikes)
        rows.append({"metric": "spikes", "value": int(last["spikes"])})
    if "loss" in h:  # online and pool regimes: the last training step's loss
        rows.append({"metric": "final_loss", "value": float(last["loss"])})
    if "attempt" in h:  # restarted runs: how many initialisations it took
        rows.append({"metric": "attempts", "value": int(last["attempt"]) + 1})
    return [{"experiment": experiment, "seed": seed, **r} for r in rows]


def rollout_rows(path: str | Path, experiment: str, seed: int) -> list[dict]:
    """Model sizes and, per grid scale, final-step accuracy (mean and share of perfect trials);
    for a store of per-step scores over its trials, the last step's (``heldout_<score>``); for an
    evaluation whose task summarised it (``attrs["summary"]``), those numbers."""
    rows = []
    model = None
    for group in store.groups(path):
        ds = store.read(path, group=group)
        if "scale" not in ds.attrs:  # not an evaluation (e.g. snapshots of training)
            continue
        if "summary" in ds.attrs:
            # the task's numbers of this evaluation; `_<group>` for an extra one (a variant,
            # the initial params); a fixed grid's name their grid themselves
            suffix = "" if group.startswith(("scale", "grid")) else f"_{group}"
            rows += [{"metric": f"{k}{suffix}", "value": v} for k, v in ds.attrs["summary"].items()]
            if not suffix:
                model = ds.attrs.get("model", model)
            continue
        per_step = [k for k, v in ds.data_vars.items() if v.dims == ("step",)]
        if per_step:
            # scores of the distribution over the held-out trials (replicates) at each step, e.g.
            # a pattern utility: those of the last step, `_<group>` for an extra evaluation
            suffix = "" if group.startswith("scale") else f"_{group}"
            last = ds.isel(step=-1)
            for k in per_step:
                value = last[k].item()
                rows.append({"metric": f"heldout_{k}{suffix}", "value": value})
            if not suffix:
                rows.append({"metric": "heldout_replicates", "value": int(ds.sizes["trial"])})
                model = ds.attrs.get("model", model)
            continue
        model = ds.attrs.get("model", model)
        scale = int(ds.attrs["scale"])
        name = "train" if scale == 1 else f"{scale}x"
        final = ds["accuracy"].isel(step=-1).values
        rows.append({"metric": f"grid_{name}", "value": int(ds.sizes["y"])})
        rows.append({"metric": f"hard_accuracy_{name}", "value": float(final.mean())})
        rows.append({"metric": f"perfect_trials_{name}", "value": float((final >= 1.0).mean())})
        if "phase_accuracy" in ds:  # the best of the pattern's phases: a shifted pattern scores 1
            phase = ds["phase_accuracy"].isel(step=-1).values
            rows.append({"metric": f"phase_accuracy_{name}", "value": float(phase.mean())})
            rows.append({"metric": f"phase_perfect_trials_{name}", "value": float((phase >= 1.0).mean())})
    for k, v in (model or {}).items():
        rows.append({"metric": k, "value": v})
    return [{"experiment": experiment, "seed": seed, **r} for r in rows]


def run_id(path: str | Path) -> tuple[str, int]:
    """(experiment, seed) from a path .../<experiment>/seed<k>/<file>."""
    p = Path(path)
    return p.parent.parent.name, int(p.parent.name.removeprefix("seed"))


def histories_by_experiment(paths) -> dict[str, pd.DataFrame]:
    """train.csv files, one frame per experiment with a ``seed`` column."""
    out: dict[str, list] = {}
    for p in paths:
        exp, seed = run_id(p)
        out.setdefault(exp, []).append(pd.read_csv(p).assign(seed=seed))
    return {k: pd.concat(v, ignore_index=True) for k, v in out.items()}


def circuit_rows(path: str | Path, experiment: str, seed: int) -> list[dict]:
    """An exported logic circuit (circuit.json and circuit.v beside it): its size on disk, and
    how many cells its NumPy evaluator got wrong against the JAX hard path (0: it is exact)."""
    p = Path(path)
    net = json.loads(p.read_text())
    rows = [
        {"metric": "netlist_json_bytes", "value": p.stat().st_size},
        {"metric": "netlist_verilog_bytes", "value": p.with_suffix(".v").stat().st_size},
    ]
    if "check" in net:
        rows.append({"metric": "netlist_cells_differing", "value": net["check"]["cells_differing"]})
    return [{"experiment": experiment, "seed": seed, **r} for r in rows]


def models_table(histories, rollouts, recoveries=(), timings=(), circuits=()) -> pd.DataFrame:
    rows = []
    for c in circuits:
        rows += circuit_rows(c, *run_id(c))
    for h in histories:
        rows += training_rows(h, *run_id(h))
    for t in timings:  # the training budget: trajectories simulated
        p = Path(t)
        n = json.loads(p.read_text()).get("simulated_trajectories")
        if n is not None:
            seed = int(p.stem.removeprefix("seed"))
            rows.append(
                {"experiment": p.parent.name, "seed": seed, "metric": "simulated_trajectories", "value": n}
            )
    for r in rollouts:
        rows += rollout_rows(r, *run_id(r))
    if recoveries:
        rows += recovery_model_rows(recovery_per_trial(*recovery_errors(recoveries)))
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values(["experiment", "seed", "metric"], kind="stable").reset_index(drop=True)


def timings_table(timing_files) -> pd.DataFrame:
    rows = []
    for f in timing_files:
        p = Path(f)
        experiment, seed = p.parent.name, int(p.stem.removeprefix("seed"))
        for k, v in json.loads(p.read_text()).items():
            rows.append({"experiment": experiment, "seed": seed, "metric": k, "value": v})
    return pd.DataFrame(rows, columns=COLUMNS)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    df.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")


# --------------------------------------------------------------------------- recovery


def recovery_errors(paths) -> tuple[pd.DataFrame, dict]:
    """Tidy error curves (experiment, seed, protocol, trial, step, error) and protocol facts."""
    frames, facts = [], {}
    for path in paths:
        experiment, seed = run_id(path)
        for protocol in store.groups(path):
            ds = store.read(path, group=protocol)
            err = ds["error"].to_pandas().stack().rename("error").reset_index()
            err.insert(0, "protocol", protocol)
            err.insert(0, "seed", seed)
            err.insert(0, "experiment", experiment)
            frames.append(err)
            facts[(experiment, protocol)] = {
                "damage_end": int(ds.attrs["damage_end"]),
                # what the error sums over (1: it is a mean already), for an error per cell
                "cells": int(ds.attrs.get("error_cells", ds.sizes["y"] * ds.sizes["x"])),
                "inference": ds.attrs["inference"],
                "threshold": float(ds.attrs.get("recovery_threshold", 0.0)),
            }
    cols = ["experiment", "seed", "protocol", "trial", "step", "error"]
    df = pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
    return df, facts


def learned_runs(histories) -> dict[tuple[str, int], bool]:
    """Per (experiment, seed): did training learn the pattern? Yes when its last step's hard
    rollout was exact (``hard_loss`` 0: runs stop after a streak of exact steps); runs with no
    hard loss (continuous models) count as learned."""
    out = {}
    for path in histories:
        h = pd.read_csv(path)
        out[run_id(path)] = "hard_loss" not in h or float(h["hard_loss"].iloc[-1]) == 0.0
    return out


def recovery_per_trial(errors: pd.DataFrame, facts: dict, learned: dict | None = None) -> pd.DataFrame:
    """Per trial: steps to recover (error back at or below the protocol's recovery threshold, 0
    for the exact checkerboard, after the damage ends; NaN if never or if the damage never
    ends), area under the error curve after damage starts (sum over steps), final error, and
    whether the run learned its pattern (``learned``, see `learned_runs`; default yes)."""
    learned = learned or {}
    rows = []
    for (exp, seed, protocol, trial), g in errors.groupby(
        ["experiment", "seed", "protocol", "trial"], sort=True
    ):
        err = g.sort_values("step")["error"].to_numpy()
        end = facts[(exp, protocol)]["damage_end"]
        steps = np.nan
        if end < len(err):
            zero = np.flatnonzero(err[end:] <= facts[(exp, protocol)].get("threshold", 0.0))
            steps = float(zero[0]) if len(zero) else np.nan
        rows.append(
            {
                "experiment": exp,
                "seed": seed,
                "protocol": protocol,
                "trial": trial,
                "recovery_steps": steps,
                "recovered": float(not np.isnan(steps)),
                "recovery_auc": float(err[1:].sum()),
                "final_error": float(err[-1]),
                "mean_error_fraction": float(err[1:].mean() / facts[(exp, protocol)]["cells"]),
                "learned": bool(learned.get((exp, int(seed)), True)),
            }
        )
    return pd.DataFrame(rows)


SUMMARY_METRICS = ("recovery_steps", "recovered", "recovery_auc", "final_error", "mean_error_fraction")


def bootstrap_mean(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap interval (NaNs ignored)."""
    v = values[~np.isnan(values)]
    if len(v) == 0:
        return np.nan, np.nan, np.nan
    rng = np.random.default_rng(seed)
    boots = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(v.mean()), float(lo), float(hi)


def recovery_summary(per_trial: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, protocol, metric): mean over the seeds x trials of runs that learned
    their pattern, with a 95% interval. Recovery is not defined for a circuit that never formed
    the pattern, so runs that did not learn are left out of the means and named: ``left_out``
    counts their trials, ``left_out_seeds`` lists their seeds (their curves stay in the tidy
    error table and the models table)."""
    rows = []
    for (exp, protocol), g in per_trial.groupby(["experiment", "protocol"], sort=True):
        kept = g[g["learned"]]
        dropped = g.drop(kept.index)
        seeds = " ".join(str(s) for s in sorted(dropped["seed"].unique()))
        for metric in SUMMARY_METRICS:
            mean, lo, hi = bootstrap_mean(kept[metric].to_numpy(float))
            rows.append(
                {
                    "experiment": exp,
                    "protocol": protocol,
                    "metric": metric,
                    "n": len(kept),
                    "mean": mean,
                    "ci_low": lo,
                    "ci_high": hi,
                    "left_out": len(dropped),
                    "left_out_seeds": seeds,
                }
            )
    return pd.DataFrame(rows)


def ratio_interval(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0):
    """mean(a) / mean(b) with a 95% bootstrap interval, resampling a's and b's units apart."""
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0 or b.mean() == 0:
        return np.nan, np.nan, np.nan
    rng = np.random.default_rng(seed)
    ra = a[rng.integers(0, len(a), (n_boot, len(a)))].mean(axis=1)
    rb = b[rng.integers(0, len(b), (n_boot, len(b)))].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = ra / rb
    lo, hi = np.nanpercentile(ratios, [2.5, 97.5])
    return float(a.mean() / b.mean()), float(lo), float(hi)


COMPARISON_COLUMNS = ["protocol", "metric", "numerator", "denominator", "ratio", "ci_low", "ci_high"]


def recovery_comparison(per_trial: pd.DataFrame, numerator: str, denominator: str) -> pd.DataFrame:
    """Per protocol and metric: numerator-model mean / denominator-model mean, 95% interval
    (bootstrap over the seed x trial units of each model; runs that learned their pattern)."""
    rows = []
    for protocol, g in per_trial[per_trial["learned"]].groupby("protocol", sort=True):
        a, b = g[g.experiment == numerator], g[g.experiment == denominator]
        if a.empty or b.empty:
            continue
        for metric in ("recovery_steps", "recovery_auc", "final_error", "mean_error_fraction"):
            r, lo, hi = ratio_interval(a[metric].to_numpy(float), b[metric].to_numpy(float))
            rows.append(
                {
                    "protocol": protocol,
                    "metric": metric,
                    "numerator": numerator,
                    "denominator": denominator,
                    "ratio": r,
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )
    # Columns even with no rows (no model, or no run that learned, to compare): a readable CSV.
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def recovery_comparisons(per_trial: pd.DataFrame, pairs) -> pd.DataFrame:
    """:func:`recovery_comparison` of each [numerator, denominator] pair, one table."""
    parts = [recovery_comparison(per_trial, a, b) for a, b in pairs]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COMPARISON_COLUMNS)


def recovery_model_rows(per_trial: pd.DataFrame) -> list[dict]:
    """Models-table rows: per (experiment, seed) and protocol, the recovery metrics."""
    rows = []
    for (exp, seed, protocol), g in per_trial.groupby(["experiment", "seed", "protocol"], sort=True):
        steps = g["recovery_steps"].to_numpy(float)
        vals = {
            "recovery_steps_mean": float(np.nanmean(steps)) if (~np.isnan(steps)).any() else np.nan,
            "recovered_fraction": float(g["recovered"].mean()),
            "recovery_auc_mean": float(g["recovery_auc"].mean()),
            "final_error_mean": float(g["final_error"].mean()),
        }
        rows += [
            {"experiment": exp, "seed": seed, "metric": f"{k}_{protocol}", "value": v}
            for k, v in vals.items()
        ]
    return rows


# --------------------------------------------------------------------------- training methods


def split_study_name(name: str) -> tuple[str, str]:
    """``<experiment>.<method>`` (a study run's experiment name) -> (experiment, method)."""
    experiment, _, method = name.partition(".")
    return experiment, method


LEARNT_BELOW = 1.0  # a training loss under one cell's squared error: the relaxed circuit has learnt


def failure_kind(hard_accuracy, soft_loss, learnt_below: float = LEARNT_BELOW) -> str:
    """Why a run's hard circuit was never exact: ``""`` (it was, at some step), ``"gap"`` (the
    circuit it trained, the relaxed one, reached a loss under ``learnt_below`` at some step:
    it had learnt the task and its hard circuit did not follow) or ``"unlearnt"`` (it never
    did). The two call for different remedies: hardening for the first, a start or wiring
    that learns for the second."""
    if np.any(np.asarray(hard_accuracy) >= 1.0):
        return ""
    soft = np.asarray(soft_loss, np.float64)
    return "gap" if np.any(soft[np.isfinite(soft)] < learnt_below) else "unlearnt"


def training_method_runs(histories, models: dict, budgets: dict) -> pd.DataFrame:
    """One row per study run: did its hard circuit become exact within the budget, when, why
    not (:func:`failure_kind`), the soft/hard gap and active gates (``models[(name, seed)]``:
    the family's summary). ``budgets[name]``: the run's step budget. Deterministic (wall
    times: :func:`training_methods_timing`)."""
    rows = []
    for path in histories:
        name, seed = run_id(path)
        experiment, method = split_study_name(name)
        h = pd.read_csv(path)
        acc = h["hard_accuracy"].to_numpy()
        hit = np.flatnonzero(acc >= 1.0)
        gap = h["gap"].to_numpy() if "gap" in h else np.full(len(h), np.nan)
        rows.append(
            {
                "experiment": experiment,
                "method": method,
                "seed": seed,
                "budget": int(budgets[name]),
                "steps_run": int(h["step"].iloc[-1]),
                "reached_exact": bool(len(hit)),
                "first_exact_step": int(h["step"].iloc[hit[0]]) if len(hit) else -1,
                "ended_exact": bool(float(h["hard_loss"].iloc[-1]) == 0.0),
                "failure": failure_kind(acc, h["soft_loss"].to_numpy()),
                "final_hard_accuracy": float(acc[-1]),
                "best_hard_accuracy": float(acc.max()),
                "best_soft_loss": float(h["soft_loss"].min()),
                "final_soft_loss": float(h["soft_loss"].iloc[-1]),
                "final_hard_loss": float(h["hard_loss"].iloc[-1]),
                "final_gap": float(gap[-1]),
                "mean_abs_gap": float(np.mean(np.abs(gap))),
                # steps whose gradient overflowed (not applied)
                "skipped_updates": int(h["skipped_update"].sum()) if "skipped_update" in h else 0,
                **{
                    k: v
                    for k, v in models.get((name, seed), {}).items()
                    if k in ("gates_total", "gates_active", "polish_changes")
                },
                # exact after training, or made exact by training.polish (on its start states)
                "exact_after_polish": bool(len(hit))
                or bool(models.get((name, seed), {}).get("polished_exact")),
            }
        )
    df = pd.DataFrame(rows)
    return df.sort_values(["experiment", "method", "seed"], kind="stable").reset_index(drop=True)


def training_methods_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, method): how many seeds reached an exact hard rollout (and ended on one),
    steps to the first (median, quartiles, range over the seeds that reached one), the gap and
    the active gates (medians over seeds), and the seeds that failed, by kind."""
    rows = []
    for (experiment, method), g in runs.groupby(["experiment", "method"], sort=True):
        first = g.loc[g.reached_exact, "first_exact_step"].to_numpy()
        q = np.percentile(first, [25, 50, 75]) if len(first) else [np.nan] * 3
        rows.append(
            {
                "experiment": experiment,
                "method": method,
                "seeds": len(g),
                "budget": int(g.budget.max()),
                "reached_exact": int(g.reached_exact.sum()),
                "reached_exact_fraction": float(g.reached_exact.mean()),
                "ended_exact": int(g.ended_exact.sum()),
                "exact_after_polish": int(g.exact_after_polish.sum()),
                "first_exact_median": float(q[1]),
                "first_exact_q25": float(q[0]),
                "first_exact_q75": float(q[2]),
                "first_exact_min": float(first.min()) if len(first) else np.nan,
                "first_exact_max": float(first.max()) if len(first) else np.nan,
                "final_hard_accuracy_min": float(g.final_hard_accuracy.min()),
                "final_gap_median": float(g.final_gap.median()),
                "skipped_updates_total": int(g.skipped_updates.sum()),
                "mean_abs_gap_median": float(g.mean_abs_gap.median()),
                "gates_active_median": float(g.gates_active.median()) if "gates_active" in g else np.nan,
                "gates_total": int(g.gates_total.max()) if "gates_total" in g else -1,
                "failed_seeds": " ".join(str(s) for s in g.loc[~g.reached_exact, "seed"]),
                # of those, the ones whose relaxed circuit had learnt (the gap) and the others
                "failed_gap": int((g.failure == "gap").sum()),
                "failed_unlearnt": int((g.failure == "unlearnt").sum()),
            }
        )
    return pd.DataFrame(rows)


def training_methods_timing(timings) -> pd.DataFrame:
    """Per (experiment, method) of the study: wall time per training step (median and range
    over seeds), compile time and the total training time. Wall times vary from run to run, so
    they have a table of their own."""
    rows = []
    for f in timings:
        p = Path(f)
        experiment, method = split_study_name(p.parent.name)
        rows.append({"experiment": experiment, "method": method, **json.loads(p.read_text())})
    df = pd.DataFrame(rows)
    out = []
    for (experiment, method), g in df.groupby(["experiment", "method"], sort=True):
        out.append(
            {
                "experiment": experiment,
                "method": method,
                "seeds": len(g),
                "seconds_per_step_median": float(g.seconds_per_step.median()),
                "seconds_per_step_min": float(g.seconds_per_step.min()),
                "seconds_per_step_max": float(g.seconds_per_step.max()),
                "compile_seconds_median": float(g.compile_seconds.median()),
                "train_seconds_total": float(g.train_seconds.sum()),
                "steps_run_total": int(g.steps_run.sum()),
            }
        )
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- advection transitions


def transition_rows(path: str | Path) -> pd.DataFrame:
    """One row per (model, source -> target pair, trial) of an advection rollout store: the
    trained model (group ``scale1``) and the untrained one (``initial``); the final step's
    ``mse``, ``mass_ratio`` (total mass at the end / at the start, summed in float64 from the
    stored float32 cells), ``mass_error_max`` (the largest |ratio - 1| over the steps) and the
    uniform-spread baseline's ``uniform_mse`` of the same target."""
    experiment, seed = run_id(path)
    frames = []
    present = store.groups(path)
    for group, model in (("scale1", "trained"), ("initial", "untrained")):
        if group not in present:
            continue
        ds = store.read(path, group=group)
        mass = ds["mass"].values.astype(np.float64).sum(axis=(-2, -1))  # (pair, trial, step)
        ratio = mass / mass[..., :1]
        pairs = [str(p).split("->") for p in ds["pair"].values]
        n_pairs, n_trials = ratio.shape[:2]
        frames.append(
            pd.DataFrame(
                {
                    "experiment": experiment,
                    "seed": seed,
                    "model": model,
                    "source": np.repeat([s for s, _ in pairs], n_trials),
                    "target": np.repeat([t for _, t in pairs], n_trials),
                    "trial": np.tile(np.arange(n_trials), n_pairs),
                    "mse": ds["mse"].isel(step=-1).values.astype(np.float64).ravel(),
                    "mass_ratio": ratio[..., -1].ravel(),
                    "mass_error_max": np.abs(ratio - 1.0).max(axis=-1).ravel(),
                    "uniform_mse": ds["uniform_mse"].values.astype(np.float64).ravel(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def advection_transitions(paths) -> pd.DataFrame:
    """tables/advection_transitions.csv: :func:`transition_rows` of every run."""
    return pd.concat([transition_rows(p) for p in sorted(paths)], ignore_index=True)


def advection_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per source -> target pair, over seeds x trials: the trained model's final MSE (mean and
    95% bootstrap interval), the uniform-spread baseline's and the untrained model's mean MSE,
    how many times lower the trained MSE is than each baseline's, and the largest mass error."""
    out = []
    for (source, target), pair in rows.groupby(["source", "target"], sort=False):
        trained, untrained = pair[pair["model"] == "trained"], pair[pair["model"] == "untrained"]
        mean, lo, hi = bootstrap_mean(trained["mse"].to_numpy(float))
        uniform = float(trained["uniform_mse"].mean())
        base = float(untrained["mse"].mean()) if len(untrained) else float("nan")
        out.append(
            {
                "source": source,
                "target": target,
                "units": len(trained),
                "mse_mean": mean,
                "mse_lo": lo,
                "mse_hi": hi,
                "uniform_mse": uniform,
                "untrained_mse": base,
                "factor_vs_uniform": uniform / mean,
                "factor_vs_untrained": base / mean,
                "mass_error_max": float(trained["mass_error_max"].max()),
            }
        )
    return pd.DataFrame(out)
