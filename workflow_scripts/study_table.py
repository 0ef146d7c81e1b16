"""Rule `study_table`: the training-method study's tables (per run, and per experiment and method)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821

from morphogen import checkpoint, tables, training  # noqa: E402

sm = snakemake  # noqa: F821
models = {}
for path in sm.input.checkpoints:
    name, seed = tables.run_id(path)  # .../<experiment>/seed<k>/checkpoint
    cfg = sm.params.experiments[name]
    exp = training.build(cfg)
    params = training.load_checked_params(exp, path, seed, cfg)
    models[(name, seed)] = exp.family.summary(params, exp.model_cfg)
    polished = checkpoint.read_metadata(path).get("polish")  # training.polish's report
    if polished:
        models[(name, seed)].update(
            polish_changes=polished["changes"], polished_exact=polished["objective_after"] == 0.0
        )
budgets = {name: cfg["training"]["steps"] for name, cfg in sm.params.experiments.items()}
runs = tables.training_method_runs(sm.input.histories, models, budgets)
summary = tables.training_methods_summary(runs)
timing = tables.training_methods_timing(sm.input.timings)
tables.write_csv(runs, sm.output.runs)
tables.write_csv(summary, sm.output.summary)
tables.write_csv(timing, sm.output.timing)
print(summary.to_string())
print(timing.to_string())
