"""F7: a DiffLogic circuit learns Conway's Game of Life.

(a) accuracy on all 512 3x3 configurations over training, of the soft circuit (the softmax
mixture) and the hard one (each gate its most likely operation), mean and 95% band over seeds;
(b) the trained circuits on a 128x128 periodic grid holding a glider gun, gliders, a spaceship and
oscillators: cells that differ from an exact Game of Life at every step, per seed, beside the
number of live cells; (c) frames of the first seed's circuit on that grid, any differing cell in
colour.

:func:`build` takes the train.csv files, the models table and the rollout stores and returns the
figure, its numbers (an RST table for the report caption) and the frames of the GIF.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from morphogen import plots, store, tables, tasks

EXPERIMENT = "logic_game_of_life"
ARTICLE_ACTIVE_GATES = 336  # the article's count for its trained circuit (gates other than A or B)


def scene_frames(ds) -> tuple[np.ndarray, np.ndarray]:
    """(circuit states (T, H, W), exact Game of Life states (T, H, W)) of a scene evaluation."""
    states = ds["state"].isel(trial=0, channel=0).values.astype(np.float32)
    exact = tasks.life_run(states[0], states.shape[0] - 1)
    return states, exact


def coloured(state: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """An RGB image (H, W, 3) of a state: live cells black on white, cells that differ from the
    exact state orange."""
    rgb = np.repeat((1.0 - state)[..., None], 3, axis=-1)
    rgb[state != exact] = (0.84, 0.37, 0.0)
    return rgb


def build(histories: list, models: pd.DataFrame, rollouts: list):
    """``histories``: the experiment's train.csv paths; ``models``: tables/models.csv; ``rollouts``:
    its rollout.zarr paths. Returns (figure, numbers RST, GIF frames (T, H, W, 3) uint8)."""
    plots.theme()
    hist = pd.concat([pd.read_csv(p).assign(seed=tables.run_id(p)[1]) for p in histories], ignore_index=True)
    models = models[models.experiment == EXPERIMENT]
    seeds = sorted(hist.seed.unique())
    rollouts = sorted(rollouts, key=lambda p: tables.run_id(p)[1])
    grids = [g for g in store.groups(rollouts[0]) if g.startswith("grid")]
    if not grids:
        raise ValueError(f"{rollouts[0]} has no scene evaluation (evaluation.grids is empty)")
    group = grids[0]
    scenes = {tables.run_id(p)[1]: scene_frames(store.read(p, group=group)) for p in rollouts}
    seed0 = seeds[0]
    states0, exact0 = scenes[seed0]
    side, n_steps = states0.shape[1], states0.shape[0] - 1

    fig = plt.figure(figsize=(7.2, 5.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.05])
    ax_acc, ax_scene = top.subplots(1, 2, width_ratios=[1.4, 1])
    frame_axes = bottom.subplots(1, 4)

    held = plots.held_histories(hist, ["soft_accuracy_all", "hard_accuracy_all"])
    for metric, label in (("soft_accuracy_all", "soft circuit"), ("hard_accuracy_all", "hard circuit")):
        x, mean, lo, hi = plots.mean_ci(held, "step", metric)
        color = ax_acc.plot(x, mean, lw=1.2, label=label)[0].get_color()
        ax_acc.fill_between(x, lo, hi, color=color, alpha=0.25, lw=0)
        for _, run in hist.groupby("seed"):
            ax_acc.plot(run.step, run[metric], color=color, lw=0.5, alpha=0.5)
    ax_acc.set_ylim(0.4, 1.01)
    ax_acc.set_xlabel("training step")
    ax_acc.set_ylabel("fraction of configurations right")
    ax_acc.set_title("(a) accuracy on all 512 configurations")
    ax_acc.legend(loc="lower right")

    live = exact0.reshape(n_steps + 1, -1).sum(axis=1)
    ax_live = ax_scene.twinx()
    ax_live.plot(np.arange(n_steps + 1), live, color="0.7", lw=0.6, ls="--", label="live cells (exact)")
    ax_live.set_ylabel("live cells", color="0.4")
    ax_live.grid(False)
    worst = 0
    for seed in seeds:
        states, exact = scenes[seed]
        wrong = (states != exact).reshape(n_steps + 1, -1).sum(axis=1)
        worst = max(worst, int(wrong.max()))
        ax_scene.plot(np.arange(n_steps + 1), wrong, lw=1.2, label=f"seed {seed}")
    ax_scene.set_ylim(-0.5, max(5, 1.1 * worst))
    ax_scene.set_xlabel("step")
    ax_scene.set_ylabel("cells unlike exact Game of Life")
    ax_scene.set_title(f"(b) the scene on {side}x{side}")
    lines = ax_scene.get_legend_handles_labels()
    extra = ax_live.get_legend_handles_labels()
    ax_live.legend(lines[0] + extra[0], lines[1] + extra[1], loc="center right", fontsize=6, framealpha=0.9)

    shown = sorted({0, n_steps // 3, 2 * n_steps // 3, n_steps})
    for ax, t in zip(frame_axes, shown):
        ax.imshow(coloured(states0[t], exact0[t]), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        ax.set_title(f"step {t}", fontsize=7)
    frame_axes[0].set_ylabel(f"(c) seed {seed0}", fontsize=7)

    def per_seed(metric):
        v = models[models.metric == metric].set_index("seed").value
        return [float(v.get(s, float("nan"))) for s in seeds]

    n_gates = int(per_seed("gates_total")[0])
    active = per_seed("gates_active")
    exact_seeds = sum(v >= 1.0 for v in per_seed("hard_accuracy_all_configs"))
    scene = (
        f"every cell as in exact Game of Life on {side}x{side} for {n_steps} steps"
        if worst == 0
        else f"on {side}x{side} over {n_steps} steps at most {worst} cells unlike exact Game of Life"
    )
    fig.suptitle(
        f"Differentiable logic CA, Game of Life: {n_gates} gates, {int(min(active))}-{int(max(active))} active "
        f"once pruned\n{exact_seeds} of {len(seeds)} seeds exact on all 512 configurations; {scene}",
        fontsize=7.5,
    )

    first_all = []
    for s in seeds:
        run = hist[hist.seed == s]
        hit = run.step[run.hard_accuracy_all >= 1.0]
        first_all.append(float(hit.min()) if len(hit) else float("nan"))

    def row(label, values, fmt, mean_fmt=None):
        known = [v for v in values if v == v]  # v != v only for NaN
        cells = [fmt.format(v) if v == v else "n/a" for v in values]
        mean = (fmt if mean_fmt is None else mean_fmt).format(sum(known) / len(known)) if known else ""
        return [label, *cells, mean]

    rows = [
        row("training steps run", per_seed("train_steps"), "{:.0f}", "{:.1f}"),
        row("first step exact on all 512 configurations", first_all, "{:.0f}", mean_fmt=""),
        row("final soft loss (batch of 20)", per_seed("final_soft_loss"), "{:.2g}"),
        row("hard accuracy, all 512 configurations", per_seed("hard_accuracy_all_configs"), "{:.2%}"),
        row("configurations wrong", per_seed("configs_wrong_all_configs"), "{:.0f}", "{:.1f}"),
        row(
            f"cells differing on {side}x{side}, worst step of {n_steps}",
            per_seed(f"gol_cells_wrong_{side}"),
            "{:.0f}",
            "{:.1f}",
        ),
        row(f"active gates once pruned (of {n_gates})", active, "{:.0f}", "{:.1f}"),
        row(
            f"gates other than a wire, unpruned (the article: {ARTICLE_ACTIVE_GATES})",
            per_seed("gates_nonwire"),
            "{:.0f}",
            "{:.1f}",
        ),
        row("netlist JSON bytes", per_seed("netlist_json_bytes"), "{:.0f}", "{:.0f}"),
    ]
    table = pd.DataFrame(rows, columns=["", *(f"seed {s}" for s in seeds), "mean"])
    numbers = (
        ".. The numbers behind F7 (rule figure_F7, from tables/models.csv and train.csv).\n\n"
        + plots.csv_table("Per seed; n/a: never.", table)
    )

    gif = np.stack([coloured(states0[t], exact0[t]) for t in range(0, n_steps + 1, 2)])
    gif = (gif * 255).round().astype(np.uint8).repeat(2, axis=1).repeat(2, axis=2)
    return fig, numbers, gif
