"""S1: training methods of logic-gate circuits and the discretization gap (supplement).

(a) share of seeds whose hard circuit became exact within the step budget, per experiment and
method (one attempt each); (b) the step of the first exact hard rollout per seed; (c, d) the gap
between the deployed (hard) circuit's loss and the training loss over training, median and
25-75% band over the seeds still training; (e) active gates of the final circuits.

:func:`build` takes the study's tables and train.csv files and returns the figure and its
numbers (an RST table for the report caption); it trains nothing.
"""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from morphogen import plots, tables


def read_summary(path) -> pd.DataFrame:
    """tables/training_methods.csv as :func:`build` takes it (an empty `failed_seeds`: none)."""
    return pd.read_csv(path, dtype={"failed_seeds": str}, keep_default_na=False, na_values=[""])


def build(runs: pd.DataFrame, summary: pd.DataFrame, histories: list):
    """``runs``: tables/training_methods_runs.csv; ``summary``: :func:`read_summary`;
    ``histories``: the study runs' train.csv paths. Returns (figure, numbers RST)."""
    plots.theme()
    runs = runs.copy()
    # the reference method first, then the others
    summary = summary.sort_values(
        ["experiment", "method"],
        key=lambda c: c.map(lambda v: (v != "softmax", v)) if c.name == "method" else c,
    ).reset_index(drop=True)
    frames = []
    for p in histories:
        name, seed = tables.run_id(p)
        experiment, method = tables.split_study_name(name)
        frames.append(pd.read_csv(p).assign(experiment=experiment, method=method, seed=seed))
    hist = pd.concat(frames, ignore_index=True)

    methods = list(dict.fromkeys(summary.method))
    palette = dict(zip(sorted(set(methods)), sns.color_palette(plots.PALETTE, len(set(methods)))))
    experiments = list(dict.fromkeys(summary.experiment))
    SMOOTH = 10  # training steps per running mean of the gap (one or two rollouts a step)

    fig = plt.figure(figsize=(7.6, 6.0), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1])
    ax_rate, ax_first, ax_gates = top.subplots(1, 3, width_ratios=[1.1, 1.6, 1.6])
    gap_axes = bottom.subplots(1, max(1, len(experiments)), squeeze=False)[0]

    # (a) share of seeds exact within the budget
    labels = [e.removeprefix("checkerboard_") for e in experiments]
    width = 0.8 / max(1, summary.groupby("experiment").size().max())
    for i, exp in enumerate(experiments):
        rows = summary[summary.experiment == exp].reset_index(drop=True)
        for j, row in rows.iterrows():
            x = i + (j - (len(rows) - 1) / 2) * width
            ax_rate.bar(
                x, row.reached_exact_fraction, width * 0.9, color=palette[row.method], label=row.method
            )
            ax_rate.text(
                x,
                row.reached_exact_fraction + 0.02,
                f"{row.reached_exact}/{row.seeds}",
                ha="center",
                va="bottom",
                fontsize=6,
            )
    ax_rate.set_xticks(range(len(experiments)), labels)
    ax_rate.set_ylim(0, 1.15)
    ax_rate.set_ylabel("share of seeds")
    ax_rate.set_title("(a) exact within budget")
    handles, names = ax_rate.get_legend_handles_labels()
    unique = dict(zip(names, handles))
    ax_rate.legend(unique.values(), unique.keys(), loc="lower left", fontsize=6)

    # (b) steps to the first exact hard rollout; crosses: never (drawn at the budget)
    runs["group"] = [f"{e.removeprefix('checkerboard_')}\n{m}" for e, m in zip(runs.experiment, runs.method)]
    order = [f"{e.removeprefix('checkerboard_')}\n{m}" for e, m in zip(summary.experiment, summary.method)]
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(runs))
    for k, group in enumerate(order):
        sel = (runs.group == group).to_numpy()
        g = runs[sel]
        method = g.method.iloc[0]
        ok = g.reached_exact.to_numpy()
        x = k + jitter[sel]
        ax_first.scatter(x[ok], g.first_exact_step[ok], s=9, color=palette[method], lw=0)
        ax_first.scatter(x[~ok], g.budget[~ok], s=14, marker="x", color=palette[method], lw=0.8)
        if ok.any():
            ax_first.hlines(np.median(g.first_exact_step[ok]), k - 0.3, k + 0.3, color="0.2", lw=1)
    ax_first.set_xticks(range(len(order)), order, fontsize=6)
    ax_first.set_ylabel("training step")
    ax_first.set_ylim(bottom=0)
    ax_first.set_title("(b) first exact step (bar: median, x: never)")

    # (e) active gates of the final hard circuit
    if "gates_active" in runs:
        for k, group in enumerate(order):
            g = runs[runs.group == group]
            ax_gates.scatter(
                k + jitter[(runs.group == group).to_numpy()],
                g.gates_active,
                s=9,
                color=palette[g.method.iloc[0]],
                lw=0,
            )
        ax_gates.set_xticks(range(len(order)), order, fontsize=6)
        ax_gates.set_ylim(bottom=0)
        ax_gates.set_ylabel(f"gates (of {int(runs.gates_total.max())})")
        ax_gates.set_title("(e) active gates (pruned circuit)")

    # (c, d) the gap over training
    for ax, exp, letter in zip(gap_axes, experiments, "cdfg"):
        for method in summary[summary.experiment == exp].method:
            h = hist[(hist.experiment == exp) & (hist.method == method)].copy()
            h["gap"] = h.groupby("seed")["gap"].transform(lambda v: v.rolling(SMOOTH, min_periods=1).mean())
            wide = h.pivot_table(index="step", columns="seed", values="gap")
            running = wide.notna().sum(axis=1)
            wide = wide[running >= (wide.shape[1] + 1) // 2]  # steps that at least half the seeds ran
            lo, mid, hi = (np.nanpercentile(wide.to_numpy(), q, axis=1) for q in (25, 50, 75))
            plots.band(ax, wide.index.to_numpy(), mid, lo, hi, method, color=palette[method])
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_xlabel("training step")
        ax.set_ylabel("hard loss - training loss")
        ax.set_title(f"({letter}) gap over training, {exp.removeprefix('checkerboard_')}")
        ax.legend(loc="upper right", fontsize=6)

    n_seeds = int(summary.seeds.max())
    fig.suptitle(
        f"Training methods of logic-gate circuits: {n_seeds} seeds each, one attempt, "
        "the hard (deployed) circuit judged on the training rollouts\n"
        f"gap: median and 25-75% of the seeds still training, mean of {SMOOTH} steps",
        fontsize=8,
    )

    def _steps(row):
        if row.reached_exact == 0:
            return "never"
        return f"{row.first_exact_median:.0f} ({row.first_exact_q25:.0f}-{row.first_exact_q75:.0f}; {row.first_exact_min:.0f}-{row.first_exact_max:.0f})"

    table = pd.DataFrame(
        {
            "experiment": summary.experiment,
            "method": summary.method,
            "exact within budget": [f"{r.reached_exact}/{r.seeds}" for r in summary.itertuples()],
            "ended exact": [f"{r.ended_exact}/{r.seeds}" for r in summary.itertuples()],
            "exact after polish": [f"{r.exact_after_polish}/{r.seeds}" for r in summary.itertuples()],
            "first exact step: median (quartiles; range)": [_steps(r) for r in summary.itertuples()],
            "gap at the end (median)": [f"{v:.3g}" for v in summary.final_gap_median],
            "active gates (median)": [f"{v:.0f}" for v in summary.gates_active_median],
            "seeds never exact": [s if isinstance(s, str) else "" for s in summary.failed_seeds],  # NaN: none
            # why: the relaxed circuit had learnt and its hard circuit did not follow (gap), or not
            "of them: gap, unlearnt": [f"{r.failed_gap}, {r.failed_unlearnt}" for r in summary.itertuples()],
        }
    )
    numbers = io.StringIO()
    numbers.write(
        ".. The numbers behind S1 (rule figure_S1, from tables/training_methods.csv).\n\n"
        f".. csv-table:: Per experiment and method, over {n_seeds} seeds, step budget "
        f"{int(summary.budget.max())}.\n"
        "   :header-rows: 1\n\n"
    )
    for line in table.to_csv(index=False, lineterminator="\n").splitlines():
        numbers.write(f"   {line}\n")
    return fig, numbers.getvalue()
