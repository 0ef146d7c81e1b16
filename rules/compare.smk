rule models_table:
    """T1: one row per (experiment, seed, metric); wall times in a table of their own."""
    input:
        library("tables"),
        histories=runs("train.csv"),
        checkpoints=runs("checkpoint"),
        rollouts=runs("rollout.zarr"),
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
