"""F3: does asynchronous training help a growing neural CA regenerate?

Two models, one trained with synchronous updates and one with fire rate 0.5, several seeds each.
(a) training loss (log scale), mean and 95% band over seeds; (b) growth from the seed cell in
the evaluation rollouts, mean and 95% band over seeds x trials, with the growth bar; (c) frames
of the first seed's first trial for every damage (own update mode): grown, just damaged,
at the end; (d) error over time after each damage, sync- vs async-trained, under the model's own
update mode (solid, mean and 95% band over seeds x trials) and under the other mode (dashed);
(e) async/sync ratios of the mean steps to recover and of the area under the error curve, with
95% bootstrap intervals, per damage.

:func:`build` takes loaded tables and stores and returns the figure, its numbers (an RST table)
and one animation per model (RGB frames of every damage side by side); it trains nothing.
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from morphogen import plots, tables

MODELS = {"growing_sync": "sync-trained", "growing_async": "async-trained"}
# The damages, by protocol name under the model's own update mode; `<name>_other` is the same
# damage under the other update mode.
DAMAGES = {
    "grow_none": "no damage (control)",
    "grow_bottom": "bottom half",
    "grow_top": "top half",
    "grow_left": "left half",
    "grow_right": "right half",
    "grow_square": "centre square",
    "grow_circle": "moving circle",
}
OTHER = "_other"


def rgb(rgba) -> np.ndarray:
    """Premultiplied RGBA (..., 4) on a white background, in [0, 1] (the reference's to_rgb)."""
    x = np.clip(np.asarray(rgba, np.float32), 0.0, 1.0)
    return np.clip(x[..., :3] + 1.0 - x[..., 3:4], 0.0, 1.0)


def load(histories, rollouts, recoveries, read, groups) -> tuple[dict, dict, dict]:
    """Training histories per model, growth rollouts ``{model: [(seed, Dataset)]}`` and recovery
    stores ``{model: {protocol: [(seed, Dataset)]}}``, from the rule's inputs."""
    hist = tables.histories_by_experiment(histories)
    growth: dict = {}
    for path in rollouts:
        exp, seed = tables.run_id(path)
        growth.setdefault(exp, []).append((seed, read(path, group="scale1")))
    recovery: dict = {}
    for path in recoveries:
        exp, seed = tables.run_id(path)
        for protocol in groups(path):
            recovery.setdefault(exp, {}).setdefault(protocol, []).append((seed, read(path, group=protocol)))
    return hist, growth, recovery


def _band_over_units(ax, curves: np.ndarray, x, label, color, style="-") -> None:
    """Mean and 95% bootstrap band over the rows (units) of ``curves`` (units, steps)."""
    frame = pd.DataFrame(curves.T, index=x).stack().rename("v").reset_index()
    frame.columns = ["x", "unit", "v"]
    xs, mean, lo, hi = plots.mean_ci(frame, "x", "v", group="unit")
    line = ax.plot(xs, mean, style, color=color, lw=1.1, label=label)[0]
    if style == "-":
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, lw=0)


def damages(recovery: dict) -> dict:
    """The damages run (under either update mode), by protocol name of the own mode."""
    return {
        p: t for p, t in DAMAGES.items() if any(p in runs or p + OTHER in runs for runs in recovery.values())
    }


def _first_run(recovery: dict, model: str, protocol: str):
    """The store of the seed of lowest number for a damage, in the model's own update mode if it
    ran (else the other)."""
    runs = recovery[model].get(protocol) or recovery[model][protocol + OTHER]
    return min(runs, key=lambda run: run[0])[1]


def _frames_row(subfig, recovery: dict, model: str) -> None:
    """Per damage: the grown pattern, the damaged one and the last frame (first seed, trial 0)."""
    shown_damages = damages(recovery)
    axes = np.atleast_1d(subfig.subplots(1, 3 * len(shown_damages)))
    for i, (protocol, title) in enumerate(shown_damages.items()):
        ds = _first_run(recovery, model, protocol)
        steps = ds["frame_step"].values
        end = int(ds.attrs["damage_end"])
        shown = {"grown": 0, "damaged": min(end, int(steps[-1])), f"step {int(steps[-1])}": int(steps[-1])}
        for j, (label, step) in enumerate(shown.items()):
            ax = axes[3 * i + j]
            k = int(np.searchsorted(steps, step))
            ax.imshow(rgb(ds["frames"].values[0, min(k, len(steps) - 1)]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            ax.set_title(f"{title}\n{label}" if j == 1 else label, fontsize=5.5)
    subfig.suptitle(
        f"(c) {MODELS[model]}: grown, damaged, at the end (seed of lowest number, trial 0)", fontsize=8
    )


def _stat(summary: pd.DataFrame, exp: str, protocol: str, metric: str) -> tuple[float, float, float]:
    r = summary[(summary.experiment == exp) & (summary.protocol == protocol) & (summary.metric == metric)]
    if r.empty:
        return np.nan, np.nan, np.nan
    return float(r["mean"].iloc[0]), float(r["ci_low"].iloc[0]), float(r["ci_high"].iloc[0])


def _ratio(comparison: pd.DataFrame, protocol: str, metric: str) -> tuple[float, float, float]:
    r = comparison[
        (comparison.numerator == "growing_async")
        & (comparison.protocol == protocol)
        & (comparison.metric == metric)
    ]
    if r.empty:
        return np.nan, np.nan, np.nan
    return float(r["ratio"].iloc[0]), float(r["ci_low"].iloc[0]), float(r["ci_high"].iloc[0])


def _fmt(stat, fmt="{:.1f}") -> str:
    mean, lo, hi = stat
    if np.isnan(mean):
        return "n/a"
    return f"{fmt.format(mean)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def build(
    histories: dict,
    growth: dict,
    recovery: dict,
    summary: pd.DataFrame,
    comparison: pd.DataFrame,
    models: pd.DataFrame,
    threshold: float,
):
    """The figure, its numbers (RST) and ``{model: frames (T, H, W, 3) uint8}`` for the GIFs.
    ``threshold``: the growth bar and recovery threshold (mean squared RGBA error)."""
    plots.theme()
    colors = dict(zip(MODELS, plots.sns.color_palette(plots.PALETTE, 2)))
    fig = plt.figure(figsize=(12.5, 12.0), layout="constrained")
    top, frames_a, frames_b, curves, ratios = fig.subfigures(5, 1, height_ratios=[1.0, 0.42, 0.42, 1.0, 0.95])

    # (a) training loss, (b) growth from the seed
    ax_train, ax_growth = top.subplots(1, 2)
    for exp, label in MODELS.items():
        h = histories[exp]
        xs, mean, lo, hi = plots.mean_ci(h, "step", "loss")
        plots.band(ax_train, xs, mean, lo, hi, f"{label} ({h.seed.nunique()} seeds)", colors[exp])
        curves_growth = np.concatenate([ds["loss"].values for _, ds in growth[exp]])  # (units, steps)
        _band_over_units(ax_growth, curves_growth, growth[exp][0][1]["step"].values, label, colors[exp])
    ax_train.set(yscale="log", xlabel="training step", ylabel="loss (mean squared RGBA error)")
    ax_train.set_title("(a) training loss (pool batch), mean and 95% band over seeds")
    ax_train.legend()
    ax_growth.axhline(threshold, color="0.3", ls=":", lw=1, label=f"growth bar {threshold:g}")
    ax_growth.set(yscale="log", xlabel="step from the seed cell", ylabel="mean squared RGBA error")
    ax_growth.set_title("(b) growth from the seed, mean and 95% band over seeds x trials")
    ax_growth.legend()

    _frames_row(frames_a, recovery, "growing_sync")
    _frames_row(frames_b, recovery, "growing_async")

    # (d) error over time per damage
    axes = np.atleast_1d(curves.subplots(1, len(damages(recovery)), sharey=True))
    for ax, (protocol, title) in zip(axes, damages(recovery).items()):
        for exp, label in MODELS.items():
            for name, style, suffix in ((protocol, "-", "own mode"), (protocol + OTHER, "--", "other mode")):
                runs = recovery[exp].get(name)
                if not runs:
                    continue
                err = np.concatenate([ds["error"].values for _, ds in runs])
                _band_over_units(ax, err, runs[0][1]["step"].values, f"{label}, {suffix}", colors[exp], style)
        ax.axhline(threshold, color="0.3", ls=":", lw=1)
        ax.set(yscale="log", xlabel="step after damage", title=title)
    axes[0].set_ylabel("mean squared RGBA error")
    axes[0].legend(fontsize=5.5, loc="upper right")
    curves.suptitle(
        "(d) error after damage (at step 0; the circle erases for its first steps): own update mode solid "
        f"(95% band over seeds x trials), other mode dashed; dotted: recovery threshold {threshold:g}",
        fontsize=8,
    )

    # (e) async / sync ratios
    ax_r, ax_t = ratios.subplots(1, 2, width_ratios=[1.0, 1.4])
    labels = list(damages(recovery).values())
    for k, (metric, name, marker) in enumerate(
        (("recovery_steps", "steps to recover", "o"), ("recovery_auc", "area under the error curve", "s"))
    ):
        labelled = False
        for i, protocol in enumerate(damages(recovery)):
            r, lo, hi = _ratio(comparison, protocol, metric)
            if np.isnan(r):
                continue
            y = i + (k - 0.5) * 0.25
            ax_r.errorbar(r, y, xerr=[[r - lo], [hi - r]], fmt=marker, color=f"C{k + 2}", ms=4, capsize=2,
                          label=None if labelled else name)  # fmt: skip
            labelled = True
    ax_r.axvline(1.0, color="0.3", lw=0.8)
    ax_r.set_yticks(range(len(labels)), labels)
    ax_r.invert_yaxis()
    ax_r.set_xscale("log")
    ax_r.set_xlabel("async-trained / sync-trained (ratio of means, 95% interval)")
    ax_r.set_title("(e) < 1: the async-trained model recovers faster / with less error")
    ax_r.legend(fontsize=6)

    rows, cells = [], []
    for protocol, title in damages(recovery).items():
        rec = [_stat(summary, exp, p, "recovered") for exp in MODELS for p in (protocol, protocol + OTHER)]
        steps = [_stat(summary, exp, protocol, "recovery_steps") for exp in MODELS]
        ratio = _ratio(comparison, protocol, "recovery_steps")
        auc = _ratio(comparison, protocol, "recovery_auc")
        cells.append(
            [
                title,
                *[("n/a" if np.isnan(s[0]) else f"{s[0]:.0%}") for s in rec],
                *[_fmt(s) for s in steps],
                _fmt(ratio, "{:.2f}"),
                _fmt(auc, "{:.2f}"),
            ]  # fmt: skip
        )
        rows.append(cells[-1])
    header = ["damage", "recovered\nsync (own)", "sync\n(async inf.)", "async (own)", "async\n(sync inf.)",
              "steps sync", "steps async", "steps\nasync/sync", "AUC\nasync/sync"]  # fmt: skip
    ax_t.axis("off")
    table = ax_t.table(cellText=cells, colLabels=header, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(5.5)
    table.scale(1.0, 1.6)
    ax_t.set_title(f"recovered: error back under {threshold:g} within the run; steps: mean [95% CI]")

    numbers = _numbers(header, rows, models, threshold)
    gifs = {exp: _animation(recovery, exp) for exp in MODELS}
    return fig, numbers, gifs


def _numbers(header, rows, models: pd.DataFrame, threshold: float) -> str:
    """The caption's numbers: growth per seed, then recovery per damage."""
    lines = [f"Growth bar and recovery threshold: mean squared RGBA error {threshold:g}.", ""]
    growth = models[models.metric.isin(["growth_loss_final", "growth_loss_final_max", "params_total"])]
    wide = growth.pivot_table(index=["experiment", "seed"], columns="metric", values="value")
    lines += ["Growth after the evaluation's steps (mean and worst trial):", ""]
    for (exp, seed), r in wide.iterrows():
        if exp not in MODELS:
            continue
        mark = "below" if r["growth_loss_final_max"] <= threshold else "ABOVE"
        lines.append(
            f"- {MODELS[exp]} seed {seed}: {r['growth_loss_final']:.2g} (worst {r['growth_loss_final_max']:.2g}, "
            f"{mark} the bar); {int(r['params_total']):,} params"
        )
    lines += ["", ".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines.append("   * - " + "\n     - ".join(str(c).replace("\n", " ") for c in row))
    return "\n".join(lines) + "\n"


def _animation(recovery: dict, model: str, upscale: int = 4, gap: int = 2) -> np.ndarray:
    """(T, H, W, 3) uint8: every damage side by side (first seed, trial 0), own update mode."""
    panels = []
    for protocol in damages(recovery):
        ds = _first_run(recovery, model, protocol)
        panels.append(rgb(ds["frames"].values[0]))  # (T, H, W, 3)
    n = min(len(p) for p in panels)
    h = panels[0].shape[1]
    white = np.ones((n, h, gap, 3), np.float32)
    strip = np.concatenate([x for p in panels for x in (p[:n], white)][:-1], axis=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = (strip * 255).round().astype(np.uint8)
    return out.repeat(upscale, axis=1).repeat(upscale, axis=2)
