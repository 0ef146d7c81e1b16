"""F8: DiffLogic circuits grow a lizard and a coloured G from a fixed start.

(a) the first seed's lizard circuit growing its silhouette on the training grid, from one seed
cell to the training's last step, beside the target; (b) the same for the G, in colour, from an
empty grid; (c) the hard circuit's loss (the deployed circuit's sum of squared errors) over
training, mean and 95% band over seeds, per experiment; (d) the lizard circuit run on a grid
twice as wide as its training grid, for as many steps, cells unlike the target in orange.

:func:`build` takes the two experiments' train.csv files, the models table and their rollout
stores and returns the figure, its numbers (an RST table for the report caption) and one GIF's
frames per experiment.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from morphogen import plots, store, tables

LIZARD, G = "logic_lizard", "logic_colored_g"
EXPERIMENTS = (LIZARD, G)
# the article's counts for its trained circuits (gates other than A or B)
ARTICLE_ACTIVE_GATES = {LIZARD: 577, G: 927}
TITLES = {LIZARD: "lizard", G: "coloured G"}
# cells unlike the target at the last step: orange on the lizard, grey (no colour of the G's)
WRONG = {1: (0.84, 0.37, 0.0), 3: (0.5, 0.5, 0.5)}
LIZARD_ON = (0.16, 0.45, 0.22)


def image(ds, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(the state's image channels at step ``t`` of trial 0 (H, W, k) in {0, 1}, the target
    (H, W, k)) of a bitmap evaluation."""
    target = ds["target"].values
    target = target[..., None] if target.ndim == 2 else target
    state = ds["state"].isel(trial=0, step=t).values[..., : target.shape[-1]].astype(np.float32)
    return state, target


def rgb(state: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """An RGB image (H, W, 3) of a bitmap state (H, W, k): the lizard's channel as green on white,
    the G's three channels as they are; with ``target``, cells unlike it in orange (lizard) or
    grey (G)."""
    lizard = state.shape[-1] == 1
    out = np.where(state > 0.5, np.asarray(LIZARD_ON), 1.0) if lizard else state[..., :3].copy()
    if target is not None:
        out[(state != target).any(axis=-1)] = WRONG[state.shape[-1]]
    return out


def growth_frames(ds, n: int = 5) -> list[tuple[int, np.ndarray]]:
    """``n`` evenly spaced (step, RGB image) of a bitmap evaluation, the last one (the training's
    last step) with its wrong cells marked."""
    last = ds.sizes["step"] - 1
    steps = sorted({int(round(i * last / (n - 1))) for i in range(n)})
    out = []
    for t in steps:
        state, target = image(ds, t)
        out.append((t, rgb(state, target if t == last else None)))
    return out


def gif_frames(ds, side_px: int = 320, hold: int = 6) -> np.ndarray:
    """(T, side_px, side_px, 3) uint8: every step of a bitmap evaluation, each cell a block of
    pixels, the last step (wrong cells marked) held for ``hold`` more frames."""
    last = ds.sizes["step"] - 1
    frames = []
    for t in range(last + 1):
        state, target = image(ds, t)
        frames.append(rgb(state, target if t == last else None))
    frames += [frames[-1]] * hold
    grid = np.stack(frames)
    k = max(1, side_px // grid.shape[1])
    return (grid * 255).round().astype(np.uint8).repeat(k, axis=1).repeat(k, axis=2)


def _show(ax, picture, title):
    ax.imshow(picture, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    ax.set_title(title, fontsize=7)


def build(histories: list, models: pd.DataFrame, rollouts: list):
    """``histories``: the experiments' train.csv paths; ``models``: tables/models.csv;
    ``rollouts``: their rollout.zarr paths. Returns (figure, numbers RST, {experiment: GIF frames
    (T, H, W, 3) uint8})."""
    plots.theme()
    hist = tables.histories_by_experiment(histories)
    missing = [e for e in EXPERIMENTS if e not in hist]
    if missing:
        raise ValueError(f"F8 needs the train.csv of experiments {', '.join(missing)}")
    runs = {
        e: sorted((p for p in rollouts if tables.run_id(p)[0] == e), key=lambda p: tables.run_id(p)[1])
        for e in EXPERIMENTS
    }
    first = {e: store.read(runs[e][0], group="scale1") for e in EXPERIMENTS}
    wide_groups = [g for g in store.groups(runs[LIZARD][0]) if g.startswith("scale") and g != "scale1"]
    if not wide_groups:
        raise ValueError(
            f"{runs[LIZARD][0]} has no evaluation on a larger grid (evaluation.scales lists only 1)"
        )
    wide = store.read(runs[LIZARD][0], group=wide_groups[0])

    fig = plt.figure(figsize=(7.2, 6.6), layout="constrained")
    rows = fig.subfigures(3, 1, height_ratios=[1, 1, 1.5])
    for sub, exp, label in ((rows[0], LIZARD, "(a)"), (rows[1], G, "(b)")):
        frames = growth_frames(first[exp])
        axes = sub.subplots(1, len(frames) + 1)
        for ax, (t, picture) in zip(axes, frames):
            _show(ax, picture, f"step {t}")
        state, target = image(first[exp], 0)
        _show(axes[-1], rgb(target), "target")
        seed0 = tables.run_id(runs[exp][0])[1]
        axes[0].set_ylabel(f"{label} {TITLES[exp]}\nseed {seed0}", fontsize=7)

    ax_loss, ax_wide = rows[2].subplots(1, 2, width_ratios=[1.5, 1])
    for exp in EXPERIMENTS:
        h = hist[exp]
        held = plots.held_histories(h, ["hard_loss"])
        x, mean, lo, hi = plots.mean_ci(held, "step", "hard_loss")
        n_seeds = h.seed.nunique()
        plots.band(ax_loss, x, mean, lo, hi, f"{TITLES[exp]} ({n_seeds} seed{'s' * (n_seeds > 1)})")
    ax_loss.set_yscale("symlog", linthresh=1.0)
    ax_loss.set_ylim(bottom=0)
    ax_loss.set_xlabel("training step")
    ax_loss.set_ylabel("hard loss (sum of squared errors)")
    ax_loss.set_title("(c) the deployed circuit's loss over training", fontsize=8)
    ax_loss.legend(loc="upper right", fontsize=7)

    last = wide.sizes["step"] - 1
    state, target = image(wide, last)
    wrong_wide = int((state != target).any(axis=-1).sum())
    _show(
        ax_wide,
        rgb(state, target),
        f"(d) lizard on {wide.sizes['y']}x{wide.sizes['x']}, step {last}: {wrong_wide} cells wrong",
    )

    def value(exp, seed, metric):
        hit = models[(models.experiment == exp) & (models.seed == seed) & (models.metric == metric)].value
        return float(hit.iloc[0]) if len(hit) else float("nan")

    lines, titles = [], []
    for exp in EXPERIMENTS:
        seeds = [tables.run_id(p)[1] for p in runs[exp]]
        for seed in seeds:

            def cell(metric, exp=exp, seed=seed):
                v = value(exp, seed, metric)
                return "n/a" if v != v else f"{v:.0f}"

            lines.append(
                {
                    "experiment": TITLES[exp],
                    "seed": seed,
                    "training steps run": cell("train_steps"),
                    "first exact step": cell("first_perfect_step"),
                    "final hard loss": cell("final_hard_loss"),
                    "cells wrong, training grid": cell("cells_wrong_train"),
                    "cells wrong, 2x grid": cell("cells_wrong_2x"),
                    "gates": cell("gates_total"),
                    "active gates once pruned": cell("gates_active"),
                    "gates other than a wire, unpruned": cell("gates_nonwire"),
                    "the article's active gates": str(ARTICLE_ACTIVE_GATES[exp]),
                    "netlist JSON bytes": cell("netlist_json_bytes"),
                }
            )
        exact = sum(value(exp, s, "final_hard_loss") == 0 for s in seeds)
        titles.append(f"{TITLES[exp]} exact on {exact} of {len(seeds)} seed{'s' * (len(seeds) > 1)}")
    fig.suptitle(
        "Differentiable logic CA, growing from a fixed start\n"
        + "; ".join(titles)
        + f"; the lizard on the 2x grid: {wrong_wide} cells wrong",
        fontsize=8,
    )
    numbers = (
        ".. The numbers behind F8 (rule figure_F8, from tables/models.csv and train.csv).\n\n"
        + plots.csv_table(
            "Per experiment and seed. First exact step: the first training step whose hard rollout was "
            "exact (-1: never); cells wrong: at the evaluation's last step (as many steps as training "
            "ran, on either grid); n/a: not evaluated.",
            pd.DataFrame(lines),
        )
    )
    lizard = gif_frames(first[LIZARD])
    gap = np.full((lizard.shape[0], lizard.shape[1], 16, 3), 255, np.uint8)
    gifs = {LIZARD: np.concatenate([lizard, gap, gif_frames(wide)], axis=2), G: gif_frames(first[G])}
    return fig, numbers, gifs
