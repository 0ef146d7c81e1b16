"""Rule `figure_F5`: advection NCA, formation transitions with mass conserved by construction
(src/morphogen/figures/f5_advection.py draws it)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from morphogen import plots, store  # noqa: E402
from morphogen.figures import f5_advection  # noqa: E402

sm = snakemake  # noqa: F821
histories, rollouts = f5_advection.load(sm.input.histories, sm.input.rollouts, store.read)
fig, numbers, frames = f5_advection.build(
    histories, rollouts, pd.read_csv(sm.input.rows), pd.read_csv(sm.input.summary)
)
plots.save(fig, sm.output.png, sm.output.pdf)
plots.save_frames_gif(frames, sm.output.gif, fps=8)
with open(sm.output.numbers, "w") as f:
    f.write(numbers)
print(numbers)
