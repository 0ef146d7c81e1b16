# morphogen: every figure and table of the study, rebuilt from seeds.
#
#   snakemake --cores 8 figures                           default preset (quick, CPU)
#   snakemake --cores 8 figures --config preset=paper     the reference hyperparameters (GPU)
#   snakemake --cores 8 study                             the training-method study (table, S1)
#   snakemake --report results/quick/report.html          every figure and table on one page

from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


configfile: Path(workflow.basedir) / "config" / "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/train.smk"
include: "rules/rollout.smk"
include: "rules/damage.smk"
include: "rules/compare.smk"
include: "rules/figures.smk"
include: "rules/study.smk"


rule figures:
    default_target: True
    input:
        figure_targets(),
        table_targets(),
        PROVENANCE,


rule all:
    input:
        rules.figures.input,
        all_run_targets(),
