"""Rule `compare_recovery`: tidy error curves, per-model summary, async-trained vs sync-trained."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821

from morphogen import tables  # noqa: E402

sm = snakemake  # noqa: F821
errors, facts = tables.recovery_errors(sm.input.recoveries)
tables.write_csv(errors, sm.output.errors)
per_trial = tables.recovery_per_trial(errors, facts)
summary = tables.recovery_summary(per_trial)
tables.write_csv(summary, sm.output.summary)
comparison = tables.recovery_comparison(per_trial, sm.params.numerator, sm.params.denominator)
tables.write_csv(comparison, sm.output.comparison)
print(summary.to_string())
print(comparison.to_string())
