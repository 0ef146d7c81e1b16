"""Rule `advection_table`: the advection NCA's transitions, per trial and per pair."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821

from morphogen import tables  # noqa: E402

sm = snakemake  # noqa: F821
rows = tables.advection_transitions(sm.input.rollouts)
summary = tables.advection_summary(rows)
tables.write_csv(rows, sm.output.rows)
tables.write_csv(summary, sm.output.summary)
print(summary.to_string())
