"""Rule `figure_F2`: self-healing of sync-trained and async-trained DiffLogic circuits.

(a, b) frames of one self-healing trial per model: the pattern, the damaged square (red), the
recovery; (c) error after the self-healing damage, (d) error under continual random damage with
async inference for both models: mean and 95% band over seeds x trials. GIFs of trial 0 sit
beside the figure.
"""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from morphogen import plots, store, tables  # noqa: E402

sm = snakemake  # noqa: F821
plots.theme()
MODELS = {"checkerboard_sync": "sync-trained", "checkerboard_async": "async-trained"}
HEAL, ROBUST = "self_healing", "robustness"
summary = pd.read_csv(sm.input.summary)
comparison = pd.read_csv(sm.input.comparison)

stores = {}
for path in sm.input.recoveries:
    exp, seed = tables.run_id(path)
    stores.setdefault(exp, []).append((seed, path))
for exp in stores:
    stores[exp].sort()


def curves(exp, protocol, window=1):
    """(step, mean, lo, hi) of the error fraction over seed x trial units; optional window mean."""
    parts = []
    for _seed, path in stores[exp]:
        ds = store.read(path, group=protocol)
        parts.append(ds["error"].values / (ds.sizes["y"] * ds.sizes["x"]))
    err = np.concatenate(parts)  # (units, steps)
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
    row = summary[(summary.experiment == exp) & (summary.protocol == protocol) & (summary.metric == metric)]
    if row.empty or np.isnan(row["mean"].iloc[0]):
        return "n/a"
    r = row.iloc[0]
    return f"{fmt.format(r['mean'])} [{fmt.format(r['ci_low'])}, {fmt.format(r['ci_high'])}]"


fig = plt.figure(figsize=(7.2, 6.6), layout="constrained")
top, bottom = fig.subfigures(2, 1, height_ratios=[2, 1.5])
frame_axes = top.subplots(2, 6)
for row, exp in enumerate(MODELS):
    seed, path = stores[exp][0]
    ds = store.read(path, group=HEAL)
    end = ds.attrs["damage_end"]
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
    plots.save_gif(frames, sm.output.gif_sync if row == 0 else sm.output.gif_async, damage=masks)

ax_heal, ax_rob = bottom.subplots(1, 2)
for exp, label in MODELS.items():
    x, mean, lo, hi = curves(exp, HEAL)
    plots.band(ax_heal, x, mean, lo, hi, label)
    x, mean, lo, hi = curves(exp, ROBUST, window=10)
    plots.band(ax_rob, x, mean, lo, hi, label)
end = store.read(stores["checkerboard_sync"][0][1], group=HEAL).attrs["damage_end"]
ax_heal.axvspan(0, end, color="0.85", lw=0, label="damage applied")
ax_heal.set_xlabel("step after the pattern formed")
ax_heal.set_ylabel("fraction of cells wrong (channel 0)")
ax_heal.set_title("(c) self-healing: centre square zeroed, then released")
ax_heal.legend(loc="upper right")
ax_rob.set_xscale("symlog", linthresh=10)
ax_rob.set_xlabel("step (random 10x10 block zeroed after each)")
ax_rob.set_title("(d) robustness, async inference for both")
ax_rob.legend(loc="upper right")
units = int(summary[(summary.protocol == HEAL) & (summary.metric == "recovered")]["n"].iloc[0])

ratio = comparison[(comparison.protocol == HEAL) & (comparison.metric == "recovery_steps")]
ratio_text = (
    f"{ratio.ratio.iloc[0]:.2f} [{ratio.ci_low.iloc[0]:.2f}, {ratio.ci_high.iloc[0]:.2f}]"
    if len(ratio) and not np.isnan(ratio.ratio.iloc[0])
    else "n/a"
)
fig.suptitle(
    "Self-healing differentiable logic CA: sync-trained vs async-trained (mean [95% CI] over seeds x trials)\n"
    f"back to 0 errors after release: sync {stat('checkerboard_sync', 'recovered', fmt='{:.0%}')}, "
    f"async {stat('checkerboard_async', 'recovered', fmt='{:.0%}')} of {units} trials; "
    f"steps to recover: sync {stat('checkerboard_sync', 'recovery_steps')}, "
    f"async {stat('checkerboard_async', 'recovery_steps')}; ratio async/sync {ratio_text}",
    fontsize=7,
)
plots.save(fig, sm.output.png, sm.output.pdf)
