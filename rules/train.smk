rule train:
    """Train one (experiment, seed); resumes from its newest checkpoint after an interruption."""
    input:
        run_sources("train.py"),
    output:
        checkpoint=directory(run_path("checkpoint")),
        history=run_path("train.csv"),
        timing=str(RESULTS / "benchmarks" / "train_timing" / "{experiment}" / "seed{seed}.json"),
    params:
        experiment=experiment_config,
        preset=PRESET,
        progress=run_path("progress"),
    log:
        str(RESULTS / "logs" / "train" / "{experiment}" / "seed{seed}.log"),
    benchmark:
        str(RESULTS / "benchmarks" / "train" / "{experiment}" / "seed{seed}.tsv")
    threads: config["compute"]["train_threads"]
    priority: train_priority
    resources:
        gpu=train_gpus(),
    conda:
        software_env()
    script:
        "../workflow_scripts/train.py"
