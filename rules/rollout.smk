rule rollout:
    """Hard-mode rollouts from random start states on the training grid and larger ones."""
    input:
        run_sources("rollout.py"),
        checkpoint=run_path("checkpoint"),
    output:
        store=directory(run_path("rollout.zarr")),
    params:
        experiment=experiment_config,
        preset=PRESET,
    log:
        str(RESULTS / "logs" / "rollout" / "{experiment}" / "seed{seed}.log"),
    benchmark:
        str(RESULTS / "benchmarks" / "rollout" / "{experiment}" / "seed{seed}.tsv")
    threads: config["compute"]["train_threads"]
    resources:
        gpu=train_gpus(),
    conda:
        software_env()
    script:
        "../workflow_scripts/rollout.py"


rule export:
    """A trained logic circuit, pruned, as a JAX-free netlist (circuit.json, run with
    `python -m morphogen.netlist`) and as Verilog (circuit.v); the NumPy evaluator is checked
    against the JAX hard path on random states."""
    input:
        run_sources("export.py"),
        checkpoint=run_path("checkpoint"),
    output:
        json=run_path("circuit.json"),
        verilog=run_path("circuit.v"),
    params:
        experiment=experiment_config,
        preset=PRESET,
    log:
        str(RESULTS / "logs" / "export" / "{experiment}" / "seed{seed}.log"),
    conda:
        software_env()
    script:
        "../workflow_scripts/export.py"
