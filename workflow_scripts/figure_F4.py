"""Rule `figure_F4`: an attention NCA trained online on one long noisy trajectory
(src/morphogen/figures/f4_attention.py draws it)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from morphogen import plots, store  # noqa: E402
from morphogen.figures import f4_attention  # noqa: E402

sm = snakemake  # noqa: F821
histories, rollouts = f4_attention.load(sm.input.histories, sm.input.rollouts, store.read, store.groups)
epsilon = {e: float(sm.config["experiments"][e]["task"]["epsilon"]) for e in histories}
fig, numbers, frames = f4_attention.build(histories, rollouts, pd.read_csv(sm.input.models), epsilon)
plots.save(fig, sm.output.png, sm.output.pdf)
plots.save_frames_gif(frames, sm.output.gif, fps=8)
with open(sm.output.numbers, "w") as f:
    f.write(numbers)
print(numbers)
