"""One seaborn theme and the plotting helpers every figure shares.

Figures are saved with fixed metadata (no dates, no software stamps that vary), so a PNG's or
PDF's bytes depend only on the data drawn.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

PALETTE = "colorblind"
STATE_CMAP = "Greys_r"


def theme() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette=PALETTE, font_scale=1.0)
    plt.rcParams.update(
        {
            "figure.dpi": 120,
            "savefig.dpi": 150,
            "axes.titlesize": 9,
            "axes.labelsize": 8,
            "legend.fontsize": 7,
            "xtick.labelsize": 7,
            "ytick.labelsize": 7,
            "svg.hashsalt": "morphogen",
            "pdf.compression": 6,
        }
    )


def save(fig, png: str | Path, pdf: str | Path | None = None) -> None:
    """Save deterministically: no creation dates or varying software fields."""
    fig.savefig(png, metadata={"Software": None})
    if pdf is not None:
        fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None})
    plt.close(fig)


def mean_ci(df: pd.DataFrame, x: str, y: str, group: str = "seed", n_boot: int = 1000, seed: int = 0):
    """Mean of ``y`` over groups at each ``x``, with a bootstrap 95% interval over groups."""
    wide = df.pivot_table(index=x, columns=group, values=y)
    values = wide.to_numpy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.shape[1], size=(n_boot, values.shape[1]))
    boots = np.nanmean(values[:, idx], axis=2)
    lo, hi = np.nanpercentile(boots, [2.5, 97.5], axis=1)
    return wide.index.to_numpy(), np.nanmean(values, axis=1), lo, hi


def held_histories(hist: pd.DataFrame, columns) -> pd.DataFrame:
    """Every seed's train.csv rows (``hist``, with a ``seed`` column) on the steps of the longest
    run: a run that stopped early (once exact) keeps its last values, as its model does."""
    steps = np.arange(1, int(hist.step.max()) + 1)
    out = []
    for seed, run in hist.groupby("seed"):
        run = run.set_index("step")[list(columns)].reindex(steps).ffill()
        out.append(run.assign(seed=seed).reset_index())
    return pd.concat(out, ignore_index=True)


def csv_table(title: str, table: pd.DataFrame) -> str:
    """An RST csv-table directive of ``table`` (a report caption shows it), with a header row."""
    lines = table.to_csv(index=False, lineterminator="\n").splitlines()
    return f".. csv-table:: {title}\n   :header-rows: 1\n\n" + "".join(f"   {ln}\n" for ln in lines)


def band(ax, x, mean, lo, hi, label: str, color=None) -> None:
    line = ax.plot(x, mean, label=label, color=color, lw=1.2)[0]
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.25, lw=0)


def show_state(ax, image, title: str | None = None) -> None:
    """One cell-state image (H, W) with values in [0, 1], without ticks."""
    ax.imshow(image, cmap=STATE_CMAP, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    if title:
        ax.set_title(title, fontsize=7)


def save_gif(frames, path: str | Path, *, fps: int = 12, upscale: int = 4, damage=None) -> None:
    """Animate (T, H, W) cell states in [0, 1]; damaged cells (mask (T, H, W)) shown in red."""
    import imageio.v3 as iio

    frames = np.asarray(frames, np.float32)
    grey = (np.clip(frames, 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if damage is not None:
        hit = np.asarray(damage) > 0
        rgb[hit] = (0.6 * rgb[hit] + 0.4 * np.array([213, 94, 0])).astype(np.uint8)
    rgb = rgb.repeat(upscale, axis=1).repeat(upscale, axis=2)
    iio.imwrite(path, rgb, extension=".gif", duration=1000 / fps, loop=0)


def rendered(fig) -> np.ndarray:
    """A figure drawn to an RGB array (H, W, 3) uint8, closed afterwards: a frame of a GIF."""
    fig.canvas.draw()
    frame = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return frame


def save_frames_gif(frames, path: str | Path, *, fps: int = 8) -> None:
    """Animate rendered RGB frames (T, H, W, 3) uint8 (e.g. a curve drawn per training step)."""
    import imageio.v3 as iio

    iio.imwrite(path, np.asarray(frames, np.uint8), extension=".gif", duration=1000 / fps, loop=0)
