"""F6: lateral-inhibition patterning trained by backpropagation and by an evolution strategy on
an equal budget of simulated trajectories.

(a) hard utility of the training replicates against training steps (epochs, generations) and
(b) against simulated trajectories, mean and 95% band over seeds per method; (c) the learned
regulatory function f of every seed against tanh(-5 (sbar - 0.5)); (d) the fates of held-out
replicates (replicate x cell) of the untrained, ES-trained and backprop-trained networks of the
first seed; (e) held-out utility per method, each seed and the mean with its 95% interval.

:func:`build` takes loaded tables and stores and returns the figure, its numbers (an RST
table) and the frames of the animation of f over training; it trains nothing.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from morphogen import plots, tables

METHODS = {"patterning_backprop": "backprop", "patterning_es": "evolution strategy"}
REFERENCE = "tanh(-5 (sbar - 0.5))"


def reference_curve(sbar):
    return np.tanh(-5.0 * (np.asarray(sbar) - 0.5))


def _probe_columns(hist: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    cols = [c for c in hist.columns if re.fullmatch(r"f@[0-9.]+", c)]
    return cols, np.array([float(c[2:]) for c in cols])


def build(histories: dict, rollouts: dict, models: pd.DataFrame, budgets: dict):
    """``histories[experiment]``: train.csv frames with a ``seed`` column; ``rollouts[experiment]``:
    {seed: {"trained": Dataset, "initial": Dataset}}; ``budgets[experiment]``: trajectories
    simulated per training step. Returns (figure, numbers RST, GIF frames (T, H, W, 3) uint8)."""
    plots.theme()
    colors = dict(zip(METHODS, plt.get_cmap("tab10").colors[:2]))
    fig = plt.figure(figsize=(7.2, 6.4), layout="constrained")
    top, middle, bottom = fig.subfigures(3, 1, height_ratios=[1, 1, 0.9])
    ax_step, ax_traj, ax_f = top.subplots(1, 3)
    heat_axes = middle.subplots(1, 3, sharey=True)
    ax_u = bottom.subplots(1, 1)

    for exp, label in METHODS.items():
        hist = histories[exp].copy()
        hist["trajectories"] = hist["step"] * budgets[exp]
        x, mean, lo, hi = plots.mean_ci(hist, "step", "utility")
        plots.band(ax_step, x, mean, lo, hi, label, color=colors[exp])
        x, mean, lo, hi = plots.mean_ci(hist, "trajectories", "utility")
        plots.band(ax_traj, x, mean, lo, hi, label, color=colors[exp])
        for seed, ds in sorted(rollouts[exp].items()):
            f = ds["trained"]["regulation"]
            ax_f.plot(
                f["sbar"],
                f,
                color=colors[exp],
                lw=0.9,
                alpha=0.8,
                label=label if seed == min(rollouts[exp]) else None,
            )
    ax_step.set_xscale("log")
    ax_step.set_xlabel("training step (epoch; generation)")
    ax_step.set_ylabel("hard utility (bits)")
    ax_step.set_title("(a) training replicates, per step")
    ax_step.legend(loc="lower right")
    ax_traj.set_xlabel("simulated trajectories")
    ax_traj.set_title("(b) per simulated trajectory")
    for ax in (ax_step, ax_traj):
        ax.set_ylim(-0.05, 1.05)
    sbar = np.linspace(0, 1, 101)
    ax_f.plot(sbar, reference_curve(sbar), color="0.3", ls="--", lw=1.0, label=REFERENCE)
    ax_f.axhline(0, color="0.6", lw=0.6)
    ax_f.set_xlabel("neighbour mean sbar")
    ax_f.set_ylabel("f(sbar)")
    ax_f.set_title("(c) learned f, every seed")
    ax_f.legend(loc="lower left", fontsize=6)

    first = {exp: min(rollouts[exp]) for exp in METHODS}
    panels = [
        ("untrained network", rollouts["patterning_backprop"][first["patterning_backprop"]]["initial"]),
        ("evolution strategy", rollouts["patterning_es"][first["patterning_es"]]["trained"]),
        ("backprop", rollouts["patterning_backprop"][first["patterning_backprop"]]["trained"]),
    ]
    n_show = 40
    for ax, (title, ds) in zip(heat_axes, panels):
        final = ds["state"].isel(trial=slice(0, n_show)).isel({ds["state"].dims[1]: -1}).values
        ax.imshow(
            (final >= 0.5).astype(float),
            cmap=plots.STATE_CMAP,
            vmin=0,
            vmax=1,
            aspect="auto",
            interpolation="nearest",
        )
        ax.set_xlabel("cell")
        ax.set_title(f"(d) {title}: U = {float(ds['utility'][-1]):.3f}", fontsize=7)
        ax.grid(False)
    heat_axes[0].set_ylabel(f"held-out replicate (first {n_show})")

    rows, held = [], {}
    for i, (exp, label) in enumerate(METHODS.items()):
        m = models[models.experiment == exp]
        u = m[m.metric == "heldout_utility"].sort_values("seed")
        held[exp] = u
        mean, lo, hi = tables.bootstrap_mean(u.value.to_numpy())
        ax_u.errorbar([mean], [i], xerr=[[mean - lo], [hi - mean]], fmt="o", color=colors[exp], capsize=3)
        ax_u.scatter(u.value, np.full(len(u), i) + 0.15, s=10, color=colors[exp], alpha=0.7)
        base = m[m.metric == "heldout_utility_initial"].value.to_numpy()
        ax_u.scatter(base, np.full(len(base), i) - 0.15, s=10, marker="x", color="0.4")

        def metric(name, m=m):
            v = m[m.metric == name].sort_values("seed").value.to_numpy()
            return v

        rows.append(
            [
                label,
                f"{mean:.3f} [{lo:.3f}, {hi:.3f}]",
                f"{u.value.min():.3f}",
                f"{np.mean(metric('heldout_distinct_patterns')):.1f}",
                f"{np.mean(metric('heldout_utility_initial')):.3f}",
                f"{int(np.mean(metric('simulated_trajectories'))):,}",
                f"{np.mean(metric('zero_gradient_fraction')):.1%}"
                if len(metric("zero_gradient_fraction"))
                else "n/a",
            ]
        )
    ax_u.set_yticks(range(len(METHODS)), list(METHODS.values()))
    ax_u.set_ylim(-0.6, len(METHODS) - 0.4)
    ax_u.set_xlabel(
        "held-out hard utility (bits): seeds (dots), mean and 95% interval; untrained networks (x)"
    )
    ax_u.set_title("(e) held-out utility")

    n_trials = panels[0][1].sizes["trial"]
    table = pd.DataFrame(
        rows,
        columns=[
            "method",
            "held-out U, mean [95% CI]",
            "worst seed",
            "distinct patterns",
            "untrained U",
            "trajectories simulated",
            "zero-gradient steps",
        ],
    )
    numbers = (
        ".. The numbers behind F6 (rule figure_F6, from tables/models.csv).\n\n"
        f".. csv-table:: Per method, over {len(held['patterning_es'])} seeds: the hard utility of "
        f"{n_trials} held-out replicates (mean over seeds and a bootstrap 95% interval; the worst "
        "seed), the distinct fate patterns among them, the same for the untrained networks, the "
        "training budget and the share of training steps whose gradient was exactly 0.\n"
        "   :header-rows: 1\n\n"
        + "".join(f"   {line}\n" for line in table.to_csv(index=False, lineterminator="\n").splitlines())
    )
    return fig, numbers, regulation_frames(histories)


def regulation_frames(histories: dict, n_frames: int = 40) -> np.ndarray:
    """Frames of f over training (first seed of each method), as RGB arrays for a GIF."""
    plots.theme()
    runs = {}
    for exp in METHODS:
        hist = histories[exp]
        hist = hist[hist.seed == hist.seed.min()]
        cols, x = _probe_columns(hist)
        runs[exp] = (hist["step"].to_numpy(), hist[cols].to_numpy(), x)
    frames = []
    for k in range(n_frames):
        fig, ax = plt.subplots(figsize=(3.6, 2.6), dpi=100, layout="constrained")
        ax.plot(
            np.linspace(0, 1, 101),
            reference_curve(np.linspace(0, 1, 101)),
            color="0.3",
            ls="--",
            lw=1,
            label=REFERENCE,
        )
        for exp, label in METHODS.items():
            steps, values, x = runs[exp]
            i = min(len(steps) - 1, round(k * (len(steps) - 1) / (n_frames - 1)))
            ax.plot(x, values[i], lw=1.4, label=f"{label}, step {steps[i]}")
        ax.set_ylim(-3, 3)
        ax.set_xlabel("neighbour mean sbar")
        ax.set_ylabel("f(sbar)")
        ax.legend(loc="upper right", fontsize=6)
        frames.append(plots.rendered(fig))
    return np.stack(frames)


def load(history_paths, rollout_paths, read_store, read_groups):
    """(histories, rollouts) of :func:`build` from train.csv and rollout.zarr paths."""
    histories, rollouts = tables.histories_by_experiment(history_paths), {}
    for p in rollout_paths:
        exp, seed = tables.run_id(p)
        groups = read_groups(p)
        trained = read_store(p, group=next(g for g in groups if g.startswith("scale")))
        initial = read_store(p, group="initial") if "initial" in groups else None
        rollouts.setdefault(exp, {})[seed] = {"trained": trained, "initial": initial}
    return histories, rollouts
