"""Rule `figure_F8`: DiffLogic circuits grow a lizard and a coloured G (src/morphogen/figures/
f8_growing.py draws it), a GIF of each growing, and the numbers behind it as an RST table that
the report caption (report/F8_logic_growing.rst) shows."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from morphogen import plots  # noqa: E402
from morphogen.figures import f8_growing  # noqa: E402

sm = snakemake  # noqa: F821
fig, numbers, gifs = f8_growing.build(sm.input.histories, pd.read_csv(sm.input.models), sm.input.rollouts)
plots.save(fig, sm.output.png, sm.output.pdf)
plots.save_frames_gif(gifs[f8_growing.LIZARD], sm.output.gif_lizard, fps=4)
plots.save_frames_gif(gifs[f8_growing.G], sm.output.gif_g, fps=4)
with open(sm.output.numbers, "w") as f:
    f.write(numbers)
