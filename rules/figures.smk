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


rule figure_F2:
    """F2: self-healing: damage and recovery of sync- and async-trained circuits."""
    input:
        library("figures"),
        recoveries=runs("recovery.zarr", ["checkerboard_sync", "checkerboard_async"]),
        summary=str(RESULTS / "tables" / "recovery_summary.csv"),
        comparison=str(RESULTS / "tables" / "recovery_comparison.csv"),
        models=str(RESULTS / "tables" / "models.csv"),
    output:
        png=str(RESULTS / "figures" / "F2_self_healing.png"),
        pdf=str(RESULTS / "figures" / "F2_self_healing.pdf"),
        gif_sync=str(RESULTS / "figures" / "F2_self_healing_sync.gif"),
        gif_async=str(RESULTS / "figures" / "F2_self_healing_async.gif"),
    log:
        str(RESULTS / "logs" / "figures" / "F2_self_healing.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/figure_F2.py"
