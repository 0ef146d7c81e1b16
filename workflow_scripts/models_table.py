"""Rule `models_table`: T1 (experiment, seed, metric, value) and the wall-time table."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821

from morphogen import tables  # noqa: E402

sm = snakemake  # noqa: F821
models = tables.models_table(
    sm.input.histories, sm.input.rollouts, sm.input.recoveries, sm.input.timings, sm.input.circuits
)
tables.write_csv(models, sm.output.models)
tables.write_csv(tables.timings_table(sm.input.timings), sm.output.timings)
print(models.to_string())
