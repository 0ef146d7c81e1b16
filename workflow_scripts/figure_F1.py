"""Rule `figure_F1`: the synchronous DiffLogic checkerboard (src/morphogen/figures/f1_checkerboard.py
draws it); the numbers behind it go to an RST table that the report caption
(report/F1_checkerboard_sync.rst) shows."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from morphogen import plots  # noqa: E402
from morphogen.figures import f1_checkerboard  # noqa: E402

sm = snakemake  # noqa: F821
fig, numbers = f1_checkerboard.build(sm.input.histories, pd.read_csv(sm.input.models), sm.input.rollouts)
plots.save(fig, sm.output.png, sm.output.pdf)
with open(sm.output.numbers, "w") as f:
    f.write(numbers)
