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
    return [{"experiment": experiment, "seed": seed, **r} for r in rows]


def rollout_rows(path: str | Path, experiment: str, seed: int) -> list[dict]:
    """Model sizes and, per grid scale, final-step accuracy (mean and share of perfect trials)."""
    rows = []
    model = None
    for group in store.groups(path):
        ds = store.read(path, group=group)
        model = ds.attrs.get("model", model)
        scale = int(ds.attrs["scale"])
        name = "train" if scale == 1 else f"{scale}x"
        final = ds["accuracy"].isel(step=-1).values
        rows.append({"metric": f"hard_accuracy_{name}", "value": float(final.mean())})
        rows.append({"metric": f"perfect_trials_{name}", "value": float((final >= 1.0).mean())})
    for k, v in (model or {}).items():
        rows.append({"metric": k, "value": v})
    return [{"experiment": experiment, "seed": seed, **r} for r in rows]


def run_id(path: str | Path) -> tuple[str, int]:
    """(experiment, seed) from a path .../<experiment>/seed<k>/<file>."""
    p = Path(path)
    return p.parent.parent.name, int(p.parent.name.removeprefix("seed"))


def models_table(histories, rollouts) -> pd.DataFrame:
    rows = []
    for h in histories:
        rows += training_rows(h, *run_id(h))
    for r in rollouts:
        rows += rollout_rows(r, *run_id(r))
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
