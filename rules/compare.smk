rule models_table:
    """T1: one row per (experiment, seed, metric); wall times in a table of their own."""
    input:
        sources("models_table.py"),
        histories=runs("train.csv"),
        checkpoints=runs("checkpoint"),
        rollouts=runs("rollout.zarr"),
        recoveries=runs("recovery.zarr", damage_experiments()),
        timings=train_timings(),
        circuits=runs("circuit.json", logic_experiments()),
    output:
        models=report(
            str(RESULTS / "tables" / "models.csv"),
            caption="../report/models.rst",
            category="Tables",
            labels={"table": "T1 models", "rows": "one per experiment, seed, metric"},
        ),
        timings=str(RESULTS / "tables" / "timings.csv"),
    log:
        str(RESULTS / "logs" / "models_table.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/models_table.py"


rule compare_recovery:
    """Recovery after damage: every error curve (tidy), a summary per model, async vs sync."""
    input:
        sources("compare_recovery.py"),
        recoveries=runs("recovery.zarr", damage_experiments()),
        # which runs learned their pattern (the means leave out those that did not)
        histories=runs("train.csv", damage_experiments()),
    output:
        errors=str(RESULTS / "tables" / "recovery_errors.csv"),
        summary=report(
            str(RESULTS / "tables" / "recovery_summary.csv"),
            caption="../report/recovery_summary.rst",
            category="Tables",
            labels={"table": "recovery summary", "rows": "one per experiment, damage protocol, metric"},
        ),
        comparison=report(
            str(RESULTS / "tables" / "recovery_comparison.csv"),
            caption="../report/recovery_comparison.rst",
            category="Tables",
            labels={"table": "recovery comparison", "rows": "one per damage protocol, metric"},
        ),
    params:
        # the ratios reported: numerator / denominator, per pair whose runs are there
        pairs=comparison_pairs,
        learned_only=config["comparison"]["learned_only"],
    log:
        str(RESULTS / "logs" / "compare_recovery.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/compare_recovery.py"
