"""F1: the synchronous DiffLogic checkerboard.

(a) soft and hard loss per training step, mean and 95% band over seeds; (b) hard accuracy;
(c) hard rollout frames from a random start state to the pattern on the training grid;
(d) the last frame of the same circuit on the 4x grid after 4x the steps.

:func:`build` takes the loaded train.csv files, models table and rollout stores and returns the
figure and its numbers (an RST table for the report caption); it trains nothing.
"""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import pandas as pd

from morphogen import plots, store, tables


def build(histories: list, models: pd.DataFrame, rollouts: list):
    """``histories``: the train.csv paths of the experiment's seeds; ``models``: tables/models.csv;
    ``rollouts``: the rollout.zarr paths. Returns (figure, numbers RST)."""
    plots.theme()
    hist = pd.concat([pd.read_csv(p).assign(seed=tables.run_id(p)[1]) for p in histories], ignore_index=True)
    models = models[models.experiment == "checkerboard_sync"]
    first = sorted(rollouts, key=lambda p: tables.run_id(p)[1])[0]
    seed0 = tables.run_id(first)[1]
    scales = [int(g.removeprefix("scale")) for g in store.groups(first)]
    train_ds = store.read(first, group=f"scale{min(scales)}")
    big_ds = store.read(first, group=f"scale{max(scales)}")

    final = hist.sort_values("step").groupby("seed").last()  # the last training step, before smoothing
    SMOOTH = 10  # training steps per running mean: the hard metrics come from 1-2 rollouts a step
    for col in ("soft_loss", "hard_loss", "hard_accuracy"):
        hist[col] = hist.groupby("seed")[col].transform(lambda v: v.rolling(SMOOTH, min_periods=1).mean())

    fig = plt.figure(figsize=(7.2, 4.8), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.3, 1])
    ax_loss, ax_acc, ax_big = top.subplots(1, 3, width_ratios=[3, 2, 1.2])
    frame_axes = bottom.subplots(1, 6)

    # Runs stop early once exact, so they differ in length: each seed is drawn as a thin line, the
    # mean and its 95% interval only over the steps that every seed ran.
    common = hist.groupby("seed")["step"].max().min()
    for metric, label in (("soft_loss", "soft loss"), ("hard_loss", "hard loss")):
        x, mean, lo, hi = plots.mean_ci(hist[hist.step <= common], "step", metric)
        color = ax_loss.plot(x, mean, lw=1.2, label=label)[0].get_color()
        ax_loss.fill_between(x, lo, hi, color=color, alpha=0.25, lw=0)
        for _, run in hist.groupby("seed"):
            ax_loss.plot(run.step, run[metric], color=color, lw=0.5, alpha=0.5)
    ax_loss.set_yscale("symlog", linthresh=1.0)  # a hard loss of 1 is one wrong cell; 0 must show
    ax_loss.set_ylim(bottom=0)
    ax_loss.set_xlabel("training step")
    ax_loss.set_ylabel("sum of squared errors, channel 0")
    ax_loss.set_title("(a) loss: seeds (thin), mean and 95% interval")
    ax_loss.legend(loc="upper right")

    x, mean, lo, hi = plots.mean_ci(hist[hist.step <= common], "step", "hard_accuracy")
    plots.band(ax_acc, x, mean, lo, hi, "mean over seeds")
    for _, run in hist.groupby("seed"):
        ax_acc.plot(run.step, run["hard_accuracy"], color="0.4", lw=0.5, alpha=0.6)
    ax_acc.set_ylim(0.4, 1.02)
    ax_acc.set_xlabel("training step")
    ax_acc.set_ylabel("fraction of cells correct")
    ax_acc.set_title(f"(b) hard accuracy (mean of {SMOOTH} steps)")

    t_big = big_ds.sizes["step"] - 1
    plots.show_state(
        ax_big,
        big_ds["state"].isel(trial=0, step=-1, channel=0).values,
        f"(d) {big_ds.sizes['y']}x{big_ds.sizes['x']}, step {t_big}",
    )

    t_train = train_ds.sizes["step"] - 1
    frames = sorted({0, 1, 2, t_train // 4, t_train // 2, t_train} & set(range(t_train + 1)))
    for t in range(t_train + 1):  # short rollouts: fill up to six distinct frames
        if len(frames) >= 6:
            break
        frames = sorted(set(frames) | {t})
    for i, t in enumerate(frames):
        ax = frame_axes[i]
        plots.show_state(ax, train_ds["state"].isel(trial=0, step=t, channel=0).values, f"step {t}")
        if i == 0:
            ax.set_ylabel(f"(c) seed {seed0}, trial 0", fontsize=7)

    def _acc(metric):
        v = models[models.metric == metric].value
        return f"{v.mean():.2%}" if len(v) else "n/a"

    gates = models[models.metric == "gates_active"].value
    n_gates = int(models[models.metric == "gates_total"].value.iloc[0])
    big = f"{max(scales)}x"
    fig.suptitle(
        f"Differentiable logic CA, checkerboard, synchronous: {n_gates} gates, {int(gates.min())}-{int(gates.max())} "
        f"active once pruned, {hist.seed.nunique()} seeds\n"
        f"hard accuracy at the last step (mean over seeds and trials): training grid {_acc('hard_accuracy_train')}, "
        f"{big} grid {_acc(f'hard_accuracy_{big}')}\n"
        f"rollouts with every cell right: {_acc('perfect_trials_train')} (training grid), "
        f"{_acc(f'perfect_trials_{big}')} ({big} grid)",
        fontsize=7.5,
    )

    def _per_seed(metric):
        return [float(models[(models.metric == metric) & (models.seed == s)].value.iloc[0]) for s in seeds]

    def _row(label, values, fmt, mean_fmt=None):
        """A table row: the label, one cell per seed (NaN: n/a), the mean over seeds formatted with
        ``mean_fmt`` (default ``fmt``; "" leaves the mean out)."""
        known = [v for v in values if v == v]  # v != v only for NaN
        cells = [fmt.format(v) if v == v else "n/a" for v in values]
        mean = (fmt if mean_fmt is None else mean_fmt).format(sum(known) / len(known)) if known else ""
        return [label, *cells, mean]

    seeds = sorted(hist.seed.unique())
    small = f"{train_ds.sizes['y']}x{train_ds.sizes['x']}"
    large = f"{big_ds.sizes['y']}x{big_ds.sizes['x']}"
    never = [v if v >= 0 else float("nan") for v in _per_seed("first_perfect_step")]
    rows = [
        _row("training steps run", _per_seed("train_steps"), "{:.0f}", "{:.1f}"),
        _row("final soft loss", _per_seed("final_soft_loss"), "{:.2f}"),
        _row("final hard loss (cells wrong)", _per_seed("final_hard_loss"), "{:.0f}", "{:.1f}"),
        _row("hard accuracy, last training step", list(final.loc[seeds, "hard_accuracy"]), "{:.1%}"),
        _row("first training step with every cell right", never, "{:.0f}", mean_fmt=""),
        _row(f"hard accuracy, training grid ({small})", _per_seed("hard_accuracy_train"), "{:.1%}"),
        _row(f"hard accuracy, {big} grid ({large})", _per_seed(f"hard_accuracy_{big}"), "{:.1%}"),
        _row(f"rollouts with every cell right, {small}", _per_seed("perfect_trials_train"), "{:.0%}"),
        _row(f"rollouts with every cell right, {large}", _per_seed(f"perfect_trials_{big}"), "{:.0%}"),
        _row(f"active gates (of {n_gates})", _per_seed("gates_active"), "{:.0f}", "{:.1f}"),
    ]
    table = pd.DataFrame(rows, columns=["", *(f"seed {s}" for s in seeds), "mean"])
    numbers = io.StringIO()
    numbers.write(
        ".. The numbers behind F1 (rule figure_F1, from tables/models.csv and train.csv).\n\n"
        f".. csv-table:: Per seed; accuracies on the grids are means over {train_ds.sizes['trial']} "
        "rollouts from random start states, at their last step; n/a: never.\n"
        "   :header-rows: 1\n\n"
    )
    for line in table.to_csv(index=False, lineterminator="\n").splitlines():
        numbers.write(f"   {line}\n")
    return fig, numbers.getvalue()
