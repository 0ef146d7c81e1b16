"""F5: can cells move mass from one formation to another when mass is conserved by construction?

(a) Training loss components (mass MSE and velocity alignment, log scale), mean and 95% band
over seeds; (b) final MSE per source -> target pair, mean and 95% bootstrap interval over seeds
x held-out trials, against the same mass spread uniformly over the grid and against the
untrained model (velocity 0: the source stays where it is); (c) the largest relative mass error
of any trial at any step, per pair, against the 1e-5 bar; (d) a strip of frames per pair (the
first seed's first trial): mass over time, the velocity as arrows where mass is, the target last.

:func:`build` takes loaded tables and stores and returns the figure, its numbers (an RST table)
and an animation of four transitions; it trains nothing.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from morphogen import plots, tables

EXPERIMENT = "advection_formations"
MASS_BAR = 1e-5
ANIMATED = ("BLOB->LINE", "LINE->SQUARE", "SQUARE->WEDGE", "WEDGE->LINE")
MASS_CMAP = "magma"
TARGET_CHANNEL = 3  # the state's target density (models/advection.py)


def load(histories, rollouts, read) -> tuple[pd.DataFrame, list]:
    """The training histories (a ``seed`` column) and the trained model's rollout stores
    ``[(seed, Dataset)]``, sorted by seed."""
    hist = tables.histories_by_experiment(histories)[EXPERIMENT]
    stores = sorted((tables.run_id(p)[1], read(p, group="scale1")) for p in rollouts)
    return hist, stores


def _pair(source: str, target: str) -> str:
    return f"{source}->{target}"


def _pair_labels(summary: pd.DataFrame) -> list[str]:
    return [f"{s.lower()}->{t.lower()}" for s, t in zip(summary["source"], summary["target"])]


def _losses(ax, hist: pd.DataFrame) -> None:
    for column, label in (("mass_mse", "mass MSE"), ("alignment", "velocity alignment")):
        x, mean, lo, hi = plots.mean_ci(hist, "step", column)
        plots.band(ax, x, mean, lo, hi, label)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss term")
    ax.set_title("(a) training (mean, 95% band over seeds)")
    ax.legend(loc="upper right")


def _mse_bars(ax, summary: pd.DataFrame) -> None:
    x = np.arange(len(summary))
    mean = summary["mse_mean"].to_numpy()
    err = np.stack([mean - summary["mse_lo"].to_numpy(), summary["mse_hi"].to_numpy() - mean])
    ax.bar(x, mean, yerr=err, color="C0", capsize=2, label="trained (95% CI)")
    ax.scatter(
        x, summary["uniform_mse"], marker="_", s=120, color="black", zorder=3, label="mass spread uniformly"
    )
    ax.scatter(x, summary["untrained_mse"], marker="x", s=18, color="C3", zorder=3, label="untrained model")
    ax.set_yscale("log")
    ax.set_xticks(x, _pair_labels(summary), fontsize=6, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_ylabel("MSE after the rollout")
    ax.set_title("(b) final MSE per pair (seeds x trials)")
    low = float(np.nanmin(summary["mse_lo"]))
    ax.set_ylim(low / 2 if low > 0 else None, 1.0)  # room above the baselines for the legend
    ax.legend(loc="upper left", fontsize=6, ncol=3)


def _mass_bars(ax, summary: pd.DataFrame) -> None:
    x = np.arange(len(summary))
    error = np.maximum(summary["mass_error_max"].to_numpy(), 1e-9)  # an exact 0 on a log axis
    ax.bar(x, error, color="C2")
    ax.axhline(MASS_BAR, color="black", lw=0.8, ls="--", label="bar 1e-5")
    ax.set_yscale("log")
    ax.set_ylim(1e-9, 1e-3)
    ax.set_xticks(x, _pair_labels(summary), fontsize=6, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_ylabel("max |mass / initial mass - 1|")
    ax.set_title("(c) mass conservation (any trial, any step)")
    ax.legend(loc="upper left", fontsize=6)


def _strips(subfig, ds, vmax: float) -> None:
    """A row of frames per pair, in two blocks of columns: mass with velocity arrows, target."""
    pairs = [str(p) for p in ds["pair"].values]
    frames = ds["frame_step"].values
    half = -(-len(pairs) // 2)
    cols = len(frames) + 1
    axes = subfig.subplots(half, 2 * cols + 1, gridspec_kw={"wspace": 0.05, "hspace": 0.08})
    n = ds.sizes["x"]
    every = max(2, n // 10)
    yy, xx = np.mgrid[every // 2 : n : every, every // 2 : n : every]
    for ax in axes.ravel():
        ax.set_axis_off()
    for i, pair in enumerate(pairs):
        row, first = i % half, (i // half) * (cols + 1)
        state = ds["state"].sel(pair=pair).isel(trial=0).values  # (frame, y, x, [mass, vy, vx, target])
        for j, step in enumerate(frames):
            ax = axes[row, first + j]
            ax.imshow(state[j, ..., 0], cmap=MASS_CMAP, vmin=0, vmax=vmax, interpolation="nearest")
            mass = state[j, yy, xx, 0]
            shown = mass > 0.05 * vmax
            if shown.any():
                ax.quiver(xx[shown], yy[shown], state[j, yy, xx, 2][shown], -state[j, yy, xx, 1][shown],
                          color="#56B4E9", scale=every * 4.0, width=0.012, headwidth=3)  # fmt: skip
            if row == 0:
                ax.set_title(f"t={int(step)}", fontsize=6)
            if j == 0:
                ax.text(-0.08, 0.5, pair.replace("->", "\n->"), transform=ax.transAxes, fontsize=5.5,
                        ha="right", va="center")  # fmt: skip
        ax = axes[row, first + len(frames)]
        ax.imshow(_target(ds).sel(pair=pair).isel(trial=0).values, cmap=MASS_CMAP, vmin=0, vmax=vmax)
        if row == 0:
            ax.set_title("target", fontsize=6)
    subfig.suptitle("(d) transitions, first seed, first held-out trial (arrows: velocity)", fontsize=9)


def _target(ds):
    """The target density of every (pair, trial): the stored start state's goal channel."""
    return ds["state"].isel(frame_step=0).sel(channel=TARGET_CHANNEL)


def build(hist: pd.DataFrame, stores: list, rows: pd.DataFrame, summary: pd.DataFrame):
    """The figure, its numbers and the animation's frames (T, H, W, 3)."""
    plots.theme()
    fig = plt.figure(figsize=(12, 9.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.5])
    axes = top.subplots(1, 3, width_ratios=[1, 1.4, 1.4])
    _losses(axes[0], hist)
    _mse_bars(axes[1], summary)
    _mass_bars(axes[2], summary)
    ds = stores[0][1]
    vmax = float(1.5 * _target(ds).max())
    _strips(bottom, ds, vmax)
    return fig, numbers(rows, summary), _animation(ds, vmax)


def numbers(rows: pd.DataFrame, summary: pd.DataFrame) -> str:
    """The caption's numbers: the overall factors and mass error, then a table per pair."""
    trained = rows[rows["model"] == "trained"]
    seeds = sorted(trained["seed"].unique())
    factor = float(summary["uniform_mse"].mean() / summary["mse_mean"].mean())
    lines = [
        f"Seeds {', '.join(str(s) for s in seeds)}; {trained.groupby('seed').size().iloc[0]} held-out "
        f"transitions per seed ({len(summary)} pairs).",
        f"Mean final MSE over pairs {summary['mse_mean'].mean():.4g}, against {summary['uniform_mse'].mean():.4g} "
        f"for the mass spread uniformly ({factor:.1f}x lower) and {summary['untrained_mse'].mean():.4g} for the "
        "untrained model.",
        f"Largest relative mass error of any trial at any step: {trained['mass_error_max'].max():.2g}.",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
    ]
    header = ["pair", "MSE [95% CI]", "uniform", "untrained", "x lower than uniform", "max mass error"]
    body = [
        [
            _pair(r.source, r.target),
            f"{r.mse_mean:.4f} [{r.mse_lo:.4f}, {r.mse_hi:.4f}]",
            f"{r.uniform_mse:.4f}",
            f"{r.untrained_mse:.4f}",
            f"{r.factor_vs_uniform:.1f}",
            f"{r.mass_error_max:.1e}",
        ]
        for r in summary.itertuples()
    ]
    for row in [header, *body]:
        lines.append("   * - " + "\n     - ".join(row))
    return "\n".join(lines) + "\n"


def _animation(ds, vmax: float, upscale: int = 4, gap: int = 2) -> np.ndarray:
    """(T, H, W, 3) uint8: four transitions side by side over every step (first trial), the
    targets in a row beneath."""
    cmap = plt.get_cmap(MASS_CMAP)
    shown = [p for p in ANIMATED if p in list(ds["pair"].values)]
    mass = np.stack([ds["mass"].sel(pair=p).isel(trial=0).values for p in shown])  # (P, T, H, W)
    target = np.stack([_target(ds).sel(pair=p).isel(trial=0).values for p in shown])  # (P, H, W)
    p, t, h, w = mass.shape
    top = np.concatenate(
        [np.pad(m, ((0, 0), (0, 0), (0, gap)), constant_values=np.nan) for m in mass], axis=2
    )
    below = np.concatenate([np.pad(m, ((0, 0), (0, gap)), constant_values=np.nan) for m in target], axis=1)
    canvas = np.concatenate(
        [top, np.full((t, gap, top.shape[2]), np.nan), np.broadcast_to(below, (t, *below.shape))], axis=1
    )
    rgb = cmap(np.clip(np.nan_to_num(canvas / vmax, nan=0.0), 0, 1))[..., :3]
    rgb[np.isnan(canvas)] = 1.0
    out = (rgb * 255).round().astype(np.uint8)
    return out.repeat(upscale, axis=1).repeat(upscale, axis=2)
