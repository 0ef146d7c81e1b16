"""Rule `figure_F2`: self-healing of sync-trained and async-trained DiffLogic circuits
(src/morphogen/figures/f2_self_healing.py draws it). GIFs of trial 0 sit beside the figure; the
numbers behind it go to RST tables that the report captions (report/F2_self_healing*.rst) show.
"""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from morphogen import plots  # noqa: E402
from morphogen.figures import f2_self_healing  # noqa: E402

sm = snakemake  # noqa: F821
fig, numbers, gifs = f2_self_healing.build(
    pd.read_csv(sm.input.summary, dtype={"left_out_seeds": str}),
    pd.read_csv(sm.input.comparison),
    pd.read_csv(sm.input.models),
    sm.input.recoveries,
)
plots.save(fig, sm.output.png, sm.output.pdf)
for (frames, masks), path in zip(gifs, (sm.output.gif_sync, sm.output.gif_async)):
    plots.save_gif(frames, path, damage=masks)
with open(sm.output.numbers, "w") as f:
    f.write(numbers)
