"""F2: self-healing of sync-trained and async-trained DiffLogic circuits.

(a, b) frames of one self-healing trial per model: the pattern, the damaged square (red), the
recovery; (c) error after the self-healing damage, (d) error under continual random damage with
async inference for both models: mean and 95% band over seeds x trials (of the runs that learned
the pattern; the others are drawn thin and dashed, and named).

:func:`build` takes the recovery tables, the models table and the recovery stores and returns
the figure, its numbers (RST tables for the report captions) and the frames of the animated
trial of each model; it trains nothing.
"""

from __future__ import annotations

import functools
import io
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from morphogen import plots, store, tables


def build(summary: pd.DataFrame, comparison: pd.DataFrame, models: pd.DataFrame, recoveries: list):
    """``summary``, ``comparison``: tables/recovery_summary.csv and recovery_comparison.csv;
    ``models``: tables/models.csv; ``recoveries``: the recovery.zarr paths of both models.
    Returns (figure, numbers RST, [(frames, damage masks) of the sync trial, of the async one])."""
    plots.theme()
    MODELS = {"checkerboard_sync": "sync-trained", "checkerboard_async": "async-trained"}
    HEAL, ROBUST = "self_healing", "robustness"

    stores = {}
    for path in recoveries:
        exp, seed = tables.run_id(path)
        stores.setdefault(exp, []).append((seed, path))
    for exp in stores:
        stores[exp].sort()

    # Per model, the seeds that did not learn the pattern (compare_recovery left them out of means).
    left_out = {
        exp: sorted(
            {
                int(s)
                for text in summary.loc[summary.experiment == exp, "left_out_seeds"].dropna()
                for s in text.split()
            }
        )
        for exp in MODELS
    }

    def final_wrong(exp, seed):
        """Cells wrong in the last training step's hard rollout."""
        rows = models[
            (models.experiment == exp) & (models.seed == seed) & (models.metric == "final_hard_loss")
        ]
        return int(rows["value"].iloc[0]) if len(rows) else None

    # The runs the bands and frames show; every run if none learned (then the summary says n = 0).
    learned = {
        exp: [(s, p) for s, p in runs if s not in left_out[exp]] or runs for exp, runs in stores.items()
    }

    @functools.cache
    def group(path, protocol):
        """A recovery store's protocol group, read once however often the figure needs it."""
        return store.read(path, group=protocol)

    def fractions(exp, protocol, runs=None):
        """Per seed (of the runs that learned, by default): the (trials, steps) fraction wrong."""
        out = []
        for _seed, path in runs or learned[exp]:
            ds = group(path, protocol)
            out.append(ds["error"].values / (ds.sizes["y"] * ds.sizes["x"]))
        return out

    # The protocols' settings, as the sync model's first store recorded them.
    heal_ds = group(stores["checkerboard_sync"][0][1], HEAL)
    heal_cfg = heal_ds.attrs["protocol_config"]
    end = int(heal_ds.attrs["damage_end"])
    rob_cfg = group(stores["checkerboard_sync"][0][1], ROBUST).attrs["protocol_config"]

    def curves(exp, protocol, window=1):
        """(step, mean, lo, hi) of the error fraction over seed x trial units; optional window mean."""
        err = np.concatenate(fractions(exp, protocol))  # (units, steps)
        steps = np.arange(err.shape[1], dtype=float)
        if window > 1:
            n = err.shape[1] // window * window
            err = err[:, :n].reshape(len(err), -1, window).mean(axis=2)
            steps = steps[:n].reshape(-1, window).mean(axis=1)
        units, n_steps = err.shape
        df = pd.DataFrame(
            {"step": np.tile(steps, units), "unit": np.repeat(np.arange(units), n_steps), "err": err.ravel()}
        )
        return plots.mean_ci(df, "step", "err", group="unit", n_boot=300)

    def stat(exp, metric, protocol=HEAL, fmt="{:.1f}"):
        row = summary[
            (summary.experiment == exp) & (summary.protocol == protocol) & (summary.metric == metric)
        ]
        if row.empty or np.isnan(row["mean"].iloc[0]):
            return "n/a"
        r = row.iloc[0]
        return f"{fmt.format(r['mean'])} [{fmt.format(r['ci_low'])}, {fmt.format(r['ci_high'])}]"

    fig = plt.figure(figsize=(7.2, 6.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[2, 1.5])
    frame_axes = top.subplots(2, 6)
    shown = []  # (model, seed, error curve) of the trial drawn in (a, b) and the GIFs
    gifs = []  # (frames, damage masks) of those trials
    for row, exp in enumerate(MODELS):
        seed, path = learned[exp][0]
        ds = group(path, HEAL)
        shown.append((exp, seed, ds["error"].isel(trial=0).values))
        last = int(ds["frame_step"].values[-1])
        want = [0, 1, max(1, end // 2), end, min(last, end + 10), last]
        for col, t in enumerate(want):
            t = int(ds["frame_step"].sel(frame_step=t, method="nearest"))
            ax = frame_axes[row, col]
            img = ds["frames"].sel(frame_trial=0, frame_step=t).values.astype(float)
            hit = ds["damage"].sel(frame_trial=0, frame_step=t).values > 0
            rgb = np.repeat(img[..., None], 3, axis=-1)
            rgb[hit] = 0.6 * rgb[hit] + 0.4 * np.array([0.84, 0.37, 0.0])
            ax.imshow(rgb, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            label = "damaged" if 0 < t <= end else ("healed?" if t > end else "formed")
            ax.set_title(f"t={t} ({label})", fontsize=7)
            if col == 0:
                ax.set_ylabel(f"({'ab'[row]}) {MODELS[exp]}\nseed {seed}", fontsize=7)
        frames = ds["frames"].sel(frame_trial=0).values
        masks = ds["damage"].sel(frame_trial=0).values
        gifs.append((frames, masks))

    ax_heal, ax_rob = bottom.subplots(1, 2)
    for i, (exp, label) in enumerate(MODELS.items()):
        x, mean, lo, hi = curves(exp, HEAL)
        plots.band(ax_heal, x, mean, lo, hi, label, color=f"C{i}")
        for (seed, _), frac in zip(stores[exp], fractions(exp, HEAL, stores[exp])):
            # each seed's mean over its trials, thin; dashed: a run that did not learn the pattern
            style = "--" if seed in left_out[exp] else "-"
            ax_heal.plot(np.arange(frac.shape[1]), frac.mean(axis=0), style, lw=0.5, alpha=0.6, color=f"C{i}")
        x, mean, lo, hi = curves(exp, ROBUST, window=10)
        plots.band(ax_rob, x, mean, lo, hi, label, color=f"C{i}")
    ax_heal.axvspan(0, end, color="0.85", lw=0, label="damage applied")
    ax_heal.set_xlabel("step after the pattern formed")
    ax_heal.set_ylabel("fraction of cells wrong (channel 0)")
    ax_heal.set_title("(c) self-healing: centre square zeroed, then released\n(thin: each seed's mean)")
    dropped = [
        f"{MODELS[exp]} seed {s} ({final_wrong(exp, s)} cells wrong at the end of training)"
        for exp in MODELS
        for s in left_out[exp]
    ]
    left_out_text = (
        "Left out of the means and bands (did not learn the pattern): "
        + "; ".join(dropped)
        + (
            " (no run of a model learned: its bands show every run)"
            if any(learned[e] is stores[e] for e in MODELS)
            else ""
        )
        + "."
        if dropped
        else "Every run learned the pattern; none is left out."
    )
    ax_heal.legend(loc="upper right")
    ax_rob.set_xscale("symlog", linthresh=10)
    ax_rob.set_xlabel(f"step (random {rob_cfg['size']}x{rob_cfg['size']} block zeroed after each)")
    ax_rob.set_title("(d) robustness, async inference for both")
    ax_rob.legend(loc="upper right")
    _n = summary[(summary.protocol == HEAL) & (summary.metric == "recovered")].set_index("experiment")["n"]
    units = f"{int(_n['checkerboard_sync'])} (sync) and {int(_n['checkerboard_async'])} (async)"

    ratio = comparison[(comparison.protocol == HEAL) & (comparison.metric == "recovery_steps")]
    ratio_text = (
        f"{ratio.ratio.iloc[0]:.2f} [{ratio.ci_low.iloc[0]:.2f}, {ratio.ci_high.iloc[0]:.2f}]"
        if len(ratio) and not np.isnan(ratio.ratio.iloc[0])
        else "n/a"
    )
    fig.suptitle(
        "Self-healing differentiable logic CA: sync-trained vs async-trained (mean [95% CI] over seeds x trials)\n"
        f"back to 0 errors after release: sync {stat('checkerboard_sync', 'recovered', fmt='{:.0%}')}, "
        f"async {stat('checkerboard_async', 'recovered', fmt='{:.0%}')} of {units} trials\n"
        f"steps to recover: sync {stat('checkerboard_sync', 'recovery_steps')}, "
        f"async {stat('checkerboard_async', 'recovery_steps')}; ratio async/sync {ratio_text}"
        + ("\n" + textwrap.fill(left_out_text, 140) if dropped else ""),
        fontsize=7,
    )

    def _row(label, metric, protocol=HEAL, fmt="{:.1f}", ratio=True):
        """A table row: mean [95% CI] per model, then async / sync (ratio of means [95% CI])."""
        cells = [label, *(stat(exp, metric, protocol, fmt) for exp in MODELS)]
        r = comparison[(comparison.protocol == protocol) & (comparison.metric == metric)]
        if not ratio:
            cells.append("")
        elif len(r) and not np.isnan(r.ratio.iloc[0]):
            cells.append(f"{r.ratio.iloc[0]:.2f} [{r.ci_low.iloc[0]:.2f}, {r.ci_high.iloc[0]:.2f}]")
        else:
            cells.append("n/a")
        return cells

    def _csv_table(title, header, rows):
        """An RST csv-table directive (the report renders captions from RST)."""
        lines = pd.DataFrame(rows, columns=header).to_csv(index=False, lineterminator="\n").splitlines()
        return (
            f".. csv-table:: {title}\n   :header-rows: 1\n\n" + "".join(f"   {ln}\n" for ln in lines) + "\n"
        )

    def _units(protocol):
        """How many seed x trial units each model's means are over."""
        rows = summary[(summary.protocol == protocol) & (summary.metric == "final_error")]
        return ", ".join(
            f"{label} {int(rows[rows.experiment == exp]['n'].iloc[0])}" for exp, label in MODELS.items()
        )

    def _grids(protocol):
        """The grid of each model's runs of a protocol (they differ when the training grids do)."""
        sizes = {}
        for exp, label in MODELS.items():
            ds = group(stores[exp][0][1], protocol)
            sizes[label] = f"{ds.sizes['y']}x{ds.sizes['x']}"
        if len(set(sizes.values())) == 1:
            return f"{next(iter(sizes.values()))} grid"
        return "grid " + ", ".join(f"{g} ({label})" for label, g in sizes.items())

    header = ["", *MODELS.values(), "ratio async / sync"]
    trial_rows = []
    for exp, seed, err in shown:
        back = np.flatnonzero(err[end:] == 0)
        steps = int(back[0]) if len(back) else "never"
        trial_rows.append([MODELS[exp], seed, int(err[0]), int(err[end]), int(err[-1]), steps])
    last = len(shown[0][2]) - 1

    numbers = io.StringIO()
    numbers.write(
        ".. The numbers behind F2 (rule figure_F2, from tables/recovery_*.csv and recovery.zarr).\n\n"
    )
    numbers.write(f"{left_out_text}\n\n")
    numbers.write(
        _csv_table(
            f"Self-healing ({_grids(HEAL)}, a {heal_cfg['size']}x"
            f"{heal_cfg['size']} centre square zeroed for {end} steps, then released): mean [95% CI] over "
            f"seeds x trials ({_units(HEAL)})",
            header,
            [
                _row("back to 0 errors after release (share)", "recovered", fmt="{:.0%}", ratio=False),
                _row("steps to recover (trials that did)", "recovery_steps"),
                _row("area under the error curve (cells x steps)", "recovery_auc"),
                _row("cells wrong at the last step", "final_error"),
                _row("mean fraction of cells wrong", "mean_error_fraction", fmt="{:.3f}"),
            ],
        )
    )
    numbers.write(
        _csv_table(
            f"Robustness (a random {rob_cfg['size']}x{rob_cfg['size']} block zeroed after every step, async "
            f"inference for both): mean [95% CI] over seeds x trials ({_units(ROBUST)})",
            header,
            [
                _row("mean fraction of cells wrong", "mean_error_fraction", ROBUST, fmt="{:.3f}"),
                _row("cells wrong at the last step", "final_error", ROBUST),
            ],
        )
    )
    numbers.write(
        _csv_table(
            "The trial drawn in (a, b) and animated: trial 0 of the first seed that learned the pattern",
            [
                "",
                "seed",
                "cells wrong at step 0",
                f"at step {end} (damage ends)",
                f"at step {last}",
                "steps to recover",
            ],
            trial_rows,
        )
    )
    return fig, numbers.getvalue(), gifs
