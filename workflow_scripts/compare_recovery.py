"""Rule `compare_recovery`: tidy error curves, per-model summary, async-trained vs sync-trained."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821

from morphogen import tables  # noqa: E402

sm = snakemake  # noqa: F821
errors, facts = tables.recovery_errors(sm.input.recoveries)
tables.write_csv(errors, sm.output.errors)
per_trial = tables.recovery_per_trial(
    errors, facts, tables.learned_runs(sm.input.histories) if sm.params.learned_only else None
)
summary = tables.recovery_summary(per_trial)
tables.write_csv(summary, sm.output.summary)
comparison = tables.recovery_comparisons(per_trial, sm.params.pairs)
tables.write_csv(comparison, sm.output.comparison)
left = per_trial.loc[~per_trial["learned"], ["experiment", "seed"]].drop_duplicates()
for exp, seed in left.itertuples(index=False):
    print(f"left out of the means: {exp} seed {seed} (training did not end on an exact rollout)")
print(summary.to_string())
print(comparison.to_string())
