rule models_table:
    """T1: one row per (experiment, seed, metric); wall times in a table of their own."""
    input:
        library("tables"),
        histories=runs("train.csv"),
        checkpoints=runs("checkpoint"),
        rollouts=runs("rollout.zarr"),
        recoveries=runs("recovery.zarr", damage_experiments()),
        timings=expand(
            str(RESULTS / "benchmarks" / "train_timing" / "{experiment}" / "seed{seed}.json"),
            experiment=figure_experiments(),
            seed=SEEDS,
        ),
    output:
        models=str(RESULTS / "tables" / "models.csv"),
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
        library("tables"),
        recoveries=runs("recovery.zarr", damage_experiments()),
    output:
        errors=str(RESULTS / "tables" / "recovery_errors.csv"),
        summary=str(RESULTS / "tables" / "recovery_summary.csv"),
        comparison=str(RESULTS / "tables" / "recovery_comparison.csv"),
    params:
        # the ratio reported: numerator / denominator
        numerator="checkerboard_async",
        denominator="checkerboard_sync",
    log:
        str(RESULTS / "logs" / "compare_recovery.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/compare_recovery.py"
