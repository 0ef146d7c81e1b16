"""Rule `figure_F6`: patterning trained by backpropagation and by an evolution strategy
(src/morphogen/figures/f6_patterning.py draws it)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from morphogen import plots, store, training  # noqa: E402
from morphogen.figures import f6_patterning  # noqa: E402

sm = snakemake  # noqa: F821
histories, rollouts = f6_patterning.load(sm.input.histories, sm.input.rollouts, store.read, store.groups)
budgets = {e: training.simulated_trajectories(sm.config["experiments"][e]["training"]) for e in histories}
fig, numbers, frames = f6_patterning.build(histories, rollouts, pd.read_csv(sm.input.models), budgets)
plots.save(fig, sm.output.png, sm.output.pdf)
plots.save_frames_gif(frames, sm.output.gif, fps=8)
with open(sm.output.numbers, "w") as f:
    f.write(numbers)
print(numbers)
