rule figure_F1:
    """F1: sync DiffLogic checkerboard: loss curves, rollout frames, the 4x grid."""
    input:
        library("figures"),
        histories=runs("train.csv", ["checkerboard_sync"]),
        rollouts=runs("rollout.zarr", ["checkerboard_sync"]),
        models=str(RESULTS / "tables" / "models.csv"),
    output:
        png=str(RESULTS / "figures" / "F1_checkerboard_sync.png"),
        pdf=str(RESULTS / "figures" / "F1_checkerboard_sync.pdf"),
    log:
        str(RESULTS / "logs" / "figures" / "F1_checkerboard_sync.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/figure_F1.py"
