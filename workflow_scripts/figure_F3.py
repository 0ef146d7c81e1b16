"""Rule `figure_F3`: growing NCA, sync- vs async-trained, growth, damage and regrowth
(src/morphogen/figures/f3_growing.py draws it)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from morphogen import plots, store  # noqa: E402
from morphogen.figures import f3_growing  # noqa: E402

sm = snakemake  # noqa: F821
histories, growth, recovery = f3_growing.load(
    sm.input.histories, sm.input.rollouts, sm.input.recoveries, store.read, store.groups
)
fig, numbers, gifs = f3_growing.build(
    histories,
    growth,
    recovery,
    pd.read_csv(sm.input.summary),
    pd.read_csv(sm.input.comparison),
    pd.read_csv(sm.input.models),
    sm.params.threshold,
)
plots.save(fig, sm.output.png, sm.output.pdf)
plots.save_frames_gif(gifs["growing_sync"], sm.output.gif_sync, fps=12)
plots.save_frames_gif(gifs["growing_async"], sm.output.gif_async, fps=12)
with open(sm.output.numbers, "w") as f:
    f.write(numbers)
print(numbers)
