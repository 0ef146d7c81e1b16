"""F4: an attention NCA trained online, on one long noisy trajectory, for a uniform-colour target
and an image target.

Per experiment (columns): (a) the loss along the training trajectory (log scale), mean and 95%
band over seeds, with each seed's noise spikes marked below the curve; (b) snapshots of the
first seed's training trajectory (a step's output, before any spike) and the target; (c) evaluation rollouts from fresh N(0, 1)
starts: the loss per step with the model's noise and without it, and of the untrained model,
mean and 95% band over seeds (each seed the mean over its trials), with the loss of a uniform
state of the target's mean colour for scale; (d) the final evaluation state of every seed next
to the target.

:func:`build` takes loaded tables and stores and returns the figure, its numbers (an RST table)
and the frames of an animation of the training trajectories around their first noise spikes; it
trains nothing.
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from morphogen import plots, tables

EXPERIMENTS = {"attention_uniform": "uniform red target", "attention_online": "organism image target"}
EVALUATIONS = {"scale1": "trained, noise", "noiseless": "trained, no noise", "initial": "untrained"}


def rgb(state) -> np.ndarray:
    """The colour channels of a state (..., C) as an image in [0, 1]."""
    return np.clip(np.asarray(state)[..., :3], 0.0, 1.0)


def mean_colour_loss(target) -> float:
    """The loss of a uniform state of the target's mean colour: what a model that cannot tell
    one cell from another reaches at best."""
    t = np.asarray(target, np.float64)
    return float(np.mean(np.square(t - t.mean(axis=(0, 1)))))


def _image_row(subfig, images, titles) -> None:
    """A row of states drawn as images, without ticks, each with its title."""
    for ax, image, title in zip(np.atleast_1d(subfig.subplots(1, len(images))), images, titles):
        ax.imshow(rgb(image), interpolation="nearest")
        ax.set_title(title, fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)


def _spike_steps(hist: pd.DataFrame) -> np.ndarray:
    spikes = hist["spikes"].to_numpy()
    return hist["step"].to_numpy()[np.diff(spikes, prepend=0) > 0]


def _eval_curves(runs: dict, group: str) -> pd.DataFrame:
    """Per seed, the loss at each step averaged over trials (long format)."""
    rows = []
    for seed, groups in sorted(runs.items()):
        ds = groups.get(group)
        if ds is None:
            continue
        loss = ds["loss"].mean("trial").values
        rows.append(pd.DataFrame({"step": ds["step"].values, "loss": loss, "seed": seed}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _log_band(ax, df: pd.DataFrame, x: str, label: str, color, **kw) -> None:
    """Mean and 95% band over seeds of log10(loss), drawn on a log axis (at steps where a run
    has stopped, over the runs still going)."""
    df = df.assign(log_loss=np.log10(np.maximum(df["loss"].to_numpy(), 1e-12)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample of only stopped runs
        xs, mean, lo, hi = plots.mean_ci(df, x, "log_loss")
    line = ax.plot(xs, 10**mean, label=label, color=color, lw=1.1, **kw)[0]
    ax.fill_between(xs, 10**lo, 10**hi, color=line.get_color(), alpha=0.2, lw=0)


def build(histories: dict, rollouts: dict, models: pd.DataFrame, epsilon: dict):
    """``histories[experiment]``: train.csv frames with a ``seed`` column; ``rollouts[experiment]``:
    {seed: {group: Dataset}} with groups scale1, noiseless, initial and training (snapshots);
    ``epsilon[experiment]``: the task's arrival threshold. Returns (figure, numbers RST, GIF
    frames (T, H, W, 3) uint8)."""
    plots.theme()
    colors = plt.get_cmap("tab10").colors
    exps = [e for e in EXPERIMENTS if e in histories]
    fig = plt.figure(figsize=(7.2, 7.6), layout="constrained")
    rows = fig.subfigures(4, 1, height_ratios=[1.0, 0.42, 1.0, 0.62])
    loss_axes = np.atleast_1d(rows[0].subplots(1, len(exps)))
    snap_figs = np.atleast_1d(rows[1].subfigures(1, len(exps)))
    eval_axes = np.atleast_1d(rows[2].subplots(1, len(exps)))
    final_figs = np.atleast_1d(rows[3].subfigures(1, len(exps)))
    number_rows = []
    for col, exp in enumerate(exps):
        label = EXPERIMENTS[exp]
        hist = histories[exp]
        runs = rollouts[exp]
        seeds = sorted(runs)
        target = runs[seeds[0]]["scale1"]["target"].values
        baseline = mean_colour_loss(target)

        # (a) the training trajectory
        ax = loss_axes[col]
        _log_band(ax, hist[["step", "loss", "seed"]], "step", "loss (mean, 95% band over seeds)", colors[0])
        ticks = ax.get_xaxis_transform()  # x in data, y in axes fractions
        for i, seed in enumerate(sorted(hist.seed.unique())):
            steps = _spike_steps(hist[hist.seed == seed])
            y = 0.03 + 0.04 * i
            ax.scatter(
                steps,
                np.full(len(steps), y),
                marker="|",
                s=10,
                lw=0.5,
                color=colors[1 + i % 8],
                transform=ticks,
            )
        ax.axhline(epsilon[exp], color="0.3", ls=":", lw=0.8, label=f"epsilon {epsilon[exp]:g}")
        if baseline > 0:
            ax.axhline(baseline, color="0.5", ls="--", lw=0.8, label="uniform mean colour")
        ax.set_yscale("log")
        ax.set_xlabel("training step (= trajectory step)")
        ax.set_ylabel("one-step loss (MSE)")
        ax.set_title(f"(a) {label}: training (ticks: spikes)", fontsize=8)
        ax.legend(loc="upper right", fontsize=6)

        # (b) snapshots of the first seed's training trajectory
        snaps = runs[seeds[0]].get("training")
        if snaps is not None:
            n = min(6, snaps.sizes["snapshot"])
            pick = np.unique(np.linspace(0, snaps.sizes["snapshot"] - 1, n).round().astype(int))
            images = [snaps["state"].isel(snapshot=int(k)).values for k in pick] + [target]
            titles = [f"step {int(snaps['snapshot_step'][k])}" for k in pick] + ["target"]
            _image_row(snap_figs[col], images, titles)
            snap_figs[col].suptitle(f"(b) training trajectory, seed {seeds[0]}", fontsize=8)

        # (c) evaluation rollouts from fresh starts
        ax = eval_axes[col]
        styles = {"scale1": "-", "noiseless": "--", "initial": ":"}
        for (group, glabel), color in zip(EVALUATIONS.items(), colors[2:]):
            df = _eval_curves(runs, group)
            if len(df):
                _log_band(ax, df, "step", glabel, color, ls=styles[group])
        if baseline > 0:
            ax.axhline(baseline, color="0.5", ls="--", lw=0.8, label=f"uniform mean colour ({baseline:.3g})")
        ax.axhline(epsilon[exp], color="0.3", ls=":", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("evaluation step")
        ax.set_ylabel("MSE against the target")
        ax.set_title(f"(c) {label}: from fresh N(0, 1) starts", fontsize=8)
        ax.legend(loc="upper right", fontsize=6)

        # (d) final states of every seed next to the target
        finals = [runs[seed]["scale1"] for seed in seeds]
        images = [ds["state"].isel({"trial": 0, ds["state"].dims[1]: -1}).values for ds in finals] + [target]
        titles = [
            f"seed {seed}: {float(ds['loss'].isel(trial=0, step=-1)):.2g}" for seed, ds in zip(seeds, finals)
        ] + ["target"]
        _image_row(final_figs[col], images, titles)
        final_figs[col].suptitle("(d) final evaluation state (trial 0) and its MSE", fontsize=8)

        m = models[models.experiment == exp]
        for seed in seeds:
            ms = m[m.seed == seed].set_index("metric")["value"]
            h = hist[hist.seed == seed]
            first = _spike_steps(h)
            number_rows.append(
                [
                    label,
                    seed,
                    int(ms.get("spikes", 0)),
                    int(first[0]) if len(first) else "none",
                    f"{float(ms.get('final_loss', np.nan)):.3g}",
                    f"{float(ms.get('eval_loss_initial', np.nan)):.3g}",
                    f"{float(ms.get('eval_loss_final', np.nan)):.3g}",
                    f"{float(ms.get('eval_loss_final_noiseless', np.nan)):.3g}",
                    f"{float(ms.get('eval_loss_ratio', np.nan)):.3g}",
                    f"{baseline / float(ms.get('eval_loss_initial', np.nan)):.3g}" if baseline > 0 else "0",
                    f"{float(ms.get('reached_epsilon_fraction', np.nan)):.0%}",
                    f"{float(ms.get('eval_loss_final_initial', np.nan)):.3g}",
                ]
            )
    table = pd.DataFrame(
        number_rows,
        columns=[
            "target",
            "seed",
            "spikes",
            "first spike (step)",
            "final training loss",
            "eval loss at start",
            "eval loss at end",
            "same, no noise",
            "end / start",
            "mean colour / start",
            "trials within epsilon",
            "untrained: loss at end",
        ],
    )
    n_trials = rollouts[exps[0]][min(rollouts[exps[0]])]["scale1"].sizes["trial"]
    numbers = (
        ".. The numbers behind F4 (rule figure_F4, from tables/models.csv).\n\n"
        ".. csv-table:: Per target and seed: noise spikes during training (simulated trajectories "
        f"completed) and the first one; the last training step's loss; {n_trials} evaluation "
        "rollouts from fresh N(0, 1) start states: the loss at the start and at the end (mean "
        "over trials), with the model's noise and without it, the ratio end / start, the same "
        "ratio for a uniform state of the target's mean colour (what a model that cannot tell "
        "cells apart reaches at best), the share of trials that came within epsilon, and the "
        "untrained model's final loss.\n"
        "   :header-rows: 1\n\n"
        + "".join(f"   {line}\n" for line in table.to_csv(index=False, lineterminator="\n").splitlines())
    )
    return fig, numbers, spike_frames(histories, rollouts)


def spike_frames(histories: dict, rollouts: dict, n_frames: int = 48) -> np.ndarray:
    """Frames of the first seed's training trajectory of each experiment, side by side at the
    same training steps (each experiment's latest snapshot at or before the step), over a window
    of the finest snapshots that starts a little before the first noise spike of any of them (from
    the start if none spiked), as RGB arrays for a GIF."""
    plots.theme()
    exps = [e for e in EXPERIMENTS if e in rollouts and "training" in rollouts[e][min(rollouts[e])]]
    if not exps:
        return np.zeros((1, 8, 8, 3), np.uint8)
    snaps = {e: rollouts[e][min(rollouts[e])]["training"] for e in exps}
    runs = {e: histories[e][histories[e].seed == histories[e].seed.min()] for e in exps}
    finest = min(exps, key=lambda e: int(snaps[e].attrs["snapshot_every"]))
    steps = snaps[finest]["snapshot_step"].values
    firsts = [int(s[0]) for s in (_spike_steps(runs[e]) for e in exps) if len(s)]
    begin = max(0, int(np.searchsorted(steps, min(firsts))) - n_frames // 6) if firsts else 0
    frames = []
    for step in steps[begin : begin + n_frames]:
        fig, axes = plt.subplots(1, len(exps), figsize=(1.9 * len(exps), 2.2), dpi=100, layout="constrained")
        for ax, e in zip(np.atleast_1d(axes), exps):
            k = max(0, int(np.searchsorted(snaps[e]["snapshot_step"].values, step, side="right")) - 1)
            shown = int(snaps[e]["snapshot_step"][k])
            done = runs[e][runs[e].step <= shown]
            spikes = int(done["spikes"].iloc[-1]) if len(done) else 0
            spiked = len(done) > 1 and int(done["spikes"].iloc[-1]) > int(done["spikes"].iloc[-2])
            ax.imshow(rgb(snaps[e]["state"].isel(snapshot=k).values))
            mark = " (spike)" if spiked else ""
            ax.set_title(
                f"{EXPERIMENTS[e].split()[0]}: step {shown}{mark}\n{spikes} spikes so far", fontsize=7
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        frames.append(plots.rendered(fig))
    return np.stack(frames)


def load(history_paths, rollout_paths, read_store, read_groups):
    """(histories, rollouts) of :func:`build` from train.csv and rollout.zarr paths."""
    histories, rollouts = tables.histories_by_experiment(history_paths), {}
    for p in rollout_paths:
        exp, seed = tables.run_id(p)
        rollouts.setdefault(exp, {})[seed] = {g: read_store(p, group=g) for g in read_groups(p)}
    return histories, rollouts
