# The training-method study: every (experiment, method) of config key `study` over its seeds.
# Not part of `figures`; `snakemake --cores 8 study` builds it.


rule study_table:
    """The study's tables: one row per run, and per (experiment, method) the share of seeds
    that reached an exact hard rollout, steps to it, the soft/hard gap, gates, time per step."""
    input:
        sources("study_table.py", families_of(STUDY)),
        histories=runs("train.csv", list(STUDY)),
        checkpoints=runs("checkpoint", list(STUDY)),
        timings=train_timings(list(STUDY)),
    output:
        summary=report(
            str(RESULTS / "tables" / "training_methods.csv"),
            caption="../report/training_methods.rst",
            category="Training methods (supplement)",
            labels={"table": "training methods", "rows": "one per experiment and method"},
        ),
        runs=str(RESULTS / "tables" / "training_methods_runs.csv"),
        # wall times vary from run to run: a table of their own
        timing=str(RESULTS / "tables" / "training_methods_timing.csv"),
    params:
        experiments={name: {k: v for k, v in exp.items() if k != "seeds"} for name, exp in STUDY.items()},
        preset=PRESET,
    log:
        str(RESULTS / "logs" / "study_table.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/study_table.py"


rule figure_S1:
    """S1: the discretization gap: how often each training method gets an exact hard circuit,
    how fast, and the soft/hard gap over training."""
    input:
        sources("figure_S1.py"),
        histories=runs("train.csv", list(STUDY)),
        runs=rules.study_table.output.runs,
        summary=rules.study_table.output.summary,
    output:
        png=report(
            str(RESULTS / "figures" / "S1_discretization_gap.png"),
            caption="../report/S1_discretization_gap.rst",
            category="Training methods (supplement)",
            labels={"figure": "S1", "kind": "static", "model": "every training method"},
        ),
        pdf=str(RESULTS / "figures" / "S1_discretization_gap.pdf"),
        numbers=str(RESULTS / "figures" / "S1_discretization_gap.numbers.rst"),
    params:
        numbers=report_numbers,
    log:
        str(RESULTS / "logs" / "figures" / "S1_discretization_gap.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/figure_S1.py"


rule study:
    """The training-method study (table and figure S1)."""
    input:
        rules.study_table.output,
        rules.figure_S1.output.png,
        rules.figure_S1.output.pdf,
