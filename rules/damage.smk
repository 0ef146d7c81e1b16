rule damage:
    """Damage-recovery trials of one trained (experiment, seed), every protocol it lists."""
    input:
        run_sources("damage.py"),
        checkpoint=run_path("checkpoint"),
    output:
        store=directory(run_path("recovery.zarr")),
    params:
        experiment=experiment_config,
        protocols=damage_protocols_for,
        preset=PRESET,
    log:
        str(RESULTS / "logs" / "damage" / "{experiment}" / "seed{seed}.log"),
    benchmark:
        str(RESULTS / "benchmarks" / "damage" / "{experiment}" / "seed{seed}.tsv")
    threads: config["compute"]["train_threads"]
    resources:
        gpu=train_gpus(),
    conda:
        software_env()
    script:
        "../workflow_scripts/damage.py"
