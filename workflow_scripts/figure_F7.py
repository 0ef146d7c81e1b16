"""Rule `figure_F7`: a DiffLogic circuit learns the Game of Life (src/morphogen/figures/
f7_game_of_life.py draws it), its scene on a large grid as a GIF, and the numbers behind it as an
RST table that the report caption (report/F7_logic_game_of_life.rst) shows."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from morphogen import plots  # noqa: E402
from morphogen.figures import f7_game_of_life  # noqa: E402

sm = snakemake  # noqa: F821
fig, numbers, gif = f7_game_of_life.build(sm.input.histories, pd.read_csv(sm.input.models), sm.input.rollouts)
plots.save(fig, sm.output.png, sm.output.pdf)
plots.save_frames_gif(gif, sm.output.gif, fps=15)
with open(sm.output.numbers, "w") as f:
    f.write(numbers)
