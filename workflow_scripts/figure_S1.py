"""Rule `figure_S1`: training methods and the discretization gap (supplement;
src/morphogen/figures/s1_training_methods.py draws it)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from morphogen import plots  # noqa: E402
from morphogen.figures import s1_training_methods  # noqa: E402

sm = snakemake  # noqa: F821
fig, numbers = s1_training_methods.build(
    pd.read_csv(sm.input.runs), s1_training_methods.read_summary(sm.input.summary), sm.input.histories
)
plots.save(fig, sm.output.png, sm.output.pdf)
with open(sm.output.numbers, "w") as f:
    f.write(numbers)
