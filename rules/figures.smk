rule figure_F1:
    """F1: sync DiffLogic checkerboard: loss curves, rollout frames, the 4x grid."""
    input:
        sources("figure_F1.py"),
        histories=runs("train.csv", ["checkerboard_sync"]),
        rollouts=runs("rollout.zarr", ["checkerboard_sync"]),
        models=str(RESULTS / "tables" / "models.csv"),
    output:
        png=report(
            str(RESULTS / "figures" / "F1_checkerboard_sync.png"),
            caption="../report/F1_checkerboard_sync.rst",
            category="F1 checkerboard (sync)",
            labels={"figure": "F1", "kind": "static", "model": "sync-trained"},
        ),
        pdf=str(RESULTS / "figures" / "F1_checkerboard_sync.pdf"),
        numbers=str(RESULTS / "figures" / "F1_checkerboard_sync.numbers.rst"),
    params:
        # read by the report caption when the report is built (see report_numbers)
        numbers=report_numbers,
    log:
        str(RESULTS / "logs" / "figures" / "F1_checkerboard_sync.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/figure_F1.py"


rule figure_F7:
    """F7: a DiffLogic circuit learns the Game of Life: accuracy on all 512 configurations, the
    trained circuit against an exact Game of Life on a large grid."""
    input:
        sources("figure_F7.py"),
        histories=runs("train.csv", FIGURE_EXPERIMENTS["F7_logic_game_of_life"]),
        rollouts=runs("rollout.zarr", FIGURE_EXPERIMENTS["F7_logic_game_of_life"]),
        models=str(RESULTS / "tables" / "models.csv"),
    output:
        png=report(
            str(RESULTS / "figures" / "F7_logic_game_of_life.png"),
            caption="../report/F7_logic_game_of_life.rst",
            category="F7 Game of Life",
            labels={"figure": "F7", "kind": "static", "model": "logic circuit"},
        ),
        pdf=str(RESULTS / "figures" / "F7_logic_game_of_life.pdf"),
        gif=report(
            str(RESULTS / "figures" / "F7_logic_game_of_life.gif"),
            caption="../report/F7_logic_game_of_life.rst",
            category="F7 Game of Life",
            labels={"figure": "F7", "kind": "animation", "model": "logic circuit"},
        ),
        numbers=str(RESULTS / "figures" / "F7_logic_game_of_life.numbers.rst"),
    params:
        # read by the report caption when the report is built (see report_numbers)
        numbers=report_numbers,
    log:
        str(RESULTS / "logs" / "figures" / "F7_logic_game_of_life.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/figure_F7.py"


rule figure_F8:
    """F8: DiffLogic circuits grow a lizard and a coloured G: growth frames, the hard loss over
    training, the lizard on a grid twice as wide."""
    input:
        sources("figure_F8.py"),
        histories=runs("train.csv", FIGURE_EXPERIMENTS["F8_logic_growing"]),
        rollouts=runs("rollout.zarr", FIGURE_EXPERIMENTS["F8_logic_growing"]),
        models=str(RESULTS / "tables" / "models.csv"),
    output:
        png=report(
            str(RESULTS / "figures" / "F8_logic_growing.png"),
            caption="../report/F8_logic_growing.rst",
            category="F8 growing logic",
            labels={"figure": "F8", "kind": "static", "model": "logic circuits"},
        ),
        pdf=str(RESULTS / "figures" / "F8_logic_growing.pdf"),
        gif_lizard=report(
            str(RESULTS / "figures" / "F8_logic_growing_lizard.gif"),
            caption="../report/F8_logic_growing.rst",
            category="F8 growing logic",
            labels={"figure": "F8", "kind": "animation", "model": "lizard circuit"},
        ),
        gif_g=report(
            str(RESULTS / "figures" / "F8_logic_growing_g.gif"),
            caption="../report/F8_logic_growing.rst",
            category="F8 growing logic",
            labels={"figure": "F8", "kind": "animation", "model": "G circuit"},
        ),
        numbers=str(RESULTS / "figures" / "F8_logic_growing.numbers.rst"),
    params:
        numbers=report_numbers,
    log:
        str(RESULTS / "logs" / "figures" / "F8_logic_growing.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/figure_F8.py"


rule figure_F2:
    """F2: self-healing: damage and recovery of sync- and async-trained circuits."""
    input:
        sources("figure_F2.py"),
        recoveries=runs("recovery.zarr", ["checkerboard_sync", "checkerboard_async"]),
        summary=str(RESULTS / "tables" / "recovery_summary.csv"),
        comparison=str(RESULTS / "tables" / "recovery_comparison.csv"),
        models=str(RESULTS / "tables" / "models.csv"),
    output:
        png=report(
            str(RESULTS / "figures" / "F2_self_healing.png"),
            caption="../report/F2_self_healing.rst",
            category="F2 self-healing",
            labels={"figure": "F2", "kind": "static", "model": "sync- vs async-trained"},
        ),
        pdf=str(RESULTS / "figures" / "F2_self_healing.pdf"),
        gif_sync=report(
            str(RESULTS / "figures" / "F2_self_healing_sync.gif"),
            caption="../report/F2_self_healing_animation.rst",
            category="F2 self-healing",
            labels={"figure": "F2", "kind": "animation", "model": "sync-trained"},
        ),
        gif_async=report(
            str(RESULTS / "figures" / "F2_self_healing_async.gif"),
            caption="../report/F2_self_healing_animation.rst",
            category="F2 self-healing",
            labels={"figure": "F2", "kind": "animation", "model": "async-trained"},
        ),
        numbers=str(RESULTS / "figures" / "F2_self_healing.numbers.rst"),
    params:
        # read by the report captions when the report is built (see report_numbers)
        numbers=report_numbers,
    log:
        str(RESULTS / "logs" / "figures" / "F2_self_healing.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/figure_F2.py"


rule provenance:
    """What the results were made from (config hashes, code revision, packages), for the report."""
    input:
        checkpoints=runs("checkpoint"),
    output:
        report(
            PROVENANCE,
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"file": "provenance.json", "content": "config hashes, git commit, packages"},
        ),
    params:
        preset=PRESET,
    log:
        str(RESULTS / "logs" / "provenance.log"),
    localrule: True
    run:
        write_provenance(input.checkpoints, output[0], params.preset, log[0])


rule figure_F6:
    """F6: patterning trained by backpropagation and by an evolution strategy, equal budgets."""
    input:
        sources("figure_F6.py"),
        histories=runs("train.csv", FIGURE_EXPERIMENTS["F6_patterning_bp_vs_es"]),
        rollouts=runs("rollout.zarr", FIGURE_EXPERIMENTS["F6_patterning_bp_vs_es"]),
        models=str(RESULTS / "tables" / "models.csv"),
    output:
        png=report(
            str(RESULTS / "figures" / "F6_patterning_bp_vs_es.png"),
            caption="../report/F6_patterning_bp_vs_es.rst",
            category="F6 patterning",
            labels={"figure": "F6", "kind": "static", "model": "backprop vs evolution strategy"},
        ),
        pdf=str(RESULTS / "figures" / "F6_patterning_bp_vs_es.pdf"),
        gif=report(
            str(RESULTS / "figures" / "F6_patterning_regulation.gif"),
            caption="../report/F6_patterning_bp_vs_es.rst",
            category="F6 patterning",
            labels={"figure": "F6", "kind": "animation", "model": "f over training"},
        ),
        numbers=str(RESULTS / "figures" / "F6_patterning_bp_vs_es.numbers.rst"),
    params:
        # read by the report caption when the report is built (see report_numbers)
        numbers=report_numbers,
    log:
        str(RESULTS / "logs" / "figures" / "F6_patterning_bp_vs_es.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/figure_F6.py"


rule figure_F4:
    """F4: an attention NCA trained online on one long noisy trajectory (uniform and image targets)."""
    input:
        sources("figure_F4.py"),
        histories=runs("train.csv", FIGURE_EXPERIMENTS["F4_attention_online"]),
        rollouts=runs("rollout.zarr", FIGURE_EXPERIMENTS["F4_attention_online"]),
        models=str(RESULTS / "tables" / "models.csv"),
    output:
        png=report(
            str(RESULTS / "figures" / "F4_attention_online.png"),
            caption="../report/F4_attention_online.rst",
            category="F4 attention NCA",
            labels={"figure": "F4", "kind": "static", "model": "attention NCA, online"},
        ),
        pdf=str(RESULTS / "figures" / "F4_attention_online.pdf"),
        gif=report(
            str(RESULTS / "figures" / "F4_attention_trajectory.gif"),
            caption="../report/F4_attention_online.rst",
            category="F4 attention NCA",
            labels={"figure": "F4", "kind": "animation", "model": "training trajectory"},
        ),
        numbers=str(RESULTS / "figures" / "F4_attention_online.numbers.rst"),
    params:
        # read by the report caption when the report is built (see report_numbers)
        numbers=report_numbers,
    log:
        str(RESULTS / "logs" / "figures" / "F4_attention_online.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/figure_F4.py"


rule figure_F3:
    """F3: growing NCA, sync- vs async-trained: growth, damage and regrowth."""
    input:
        sources("figure_F3.py"),
        histories=runs("train.csv", FIGURE_EXPERIMENTS["F3_growing_regeneration"]),
        rollouts=runs("rollout.zarr", FIGURE_EXPERIMENTS["F3_growing_regeneration"]),
        recoveries=runs("recovery.zarr", FIGURE_EXPERIMENTS["F3_growing_regeneration"]),
        summary=str(RESULTS / "tables" / "recovery_summary.csv"),
        comparison=str(RESULTS / "tables" / "recovery_comparison.csv"),
        models=str(RESULTS / "tables" / "models.csv"),
    output:
        png=report(
            str(RESULTS / "figures" / "F3_growing_regeneration.png"),
            caption="../report/F3_growing_regeneration.rst",
            category="F3 growing NCA",
            labels={"figure": "F3", "kind": "static", "model": "sync- vs async-trained"},
        ),
        pdf=str(RESULTS / "figures" / "F3_growing_regeneration.pdf"),
        gif_sync=report(
            str(RESULTS / "figures" / "F3_growing_sync.gif"),
            caption="../report/F3_growing_regeneration.rst",
            category="F3 growing NCA",
            labels={"figure": "F3", "kind": "animation", "model": "sync-trained"},
        ),
        gif_async=report(
            str(RESULTS / "figures" / "F3_growing_async.gif"),
            caption="../report/F3_growing_regeneration.rst",
            category="F3 growing NCA",
            labels={"figure": "F3", "kind": "animation", "model": "async-trained"},
        ),
        numbers=str(RESULTS / "figures" / "F3_growing_regeneration.numbers.rst"),
    params:
        # the growth bar and recovery threshold: the self-healing protocols' (one value)
        threshold=growth_threshold,
        # read by the report caption when the report is built (see report_numbers)
        numbers=report_numbers,
    log:
        str(RESULTS / "logs" / "figures" / "F3_growing_regeneration.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/figure_F3.py"


rule advection_table:
    """The advection NCA's transitions: one row per (seed, model, pair, trial), and per pair."""
    input:
        sources("advection_table.py"),
        rollouts=runs("rollout.zarr", FIGURE_EXPERIMENTS["F5_advection_transitions"]),
    output:
        rows=report(
            str(RESULTS / "tables" / "advection_transitions.csv"),
            caption="../report/advection_transitions.rst",
            category="Tables",
            labels={"table": "advection transitions", "rows": "one per seed, model, pair, trial"},
        ),
        summary=report(
            str(RESULTS / "tables" / "advection_summary.csv"),
            caption="../report/advection_transitions.rst",
            category="Tables",
            labels={"table": "advection transitions per pair", "rows": "one per source -> target pair"},
        ),
    log:
        str(RESULTS / "logs" / "advection_table.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/advection_table.py"


rule figure_F5:
    """F5: advection NCA, formation transitions with mass conserved by construction."""
    input:
        sources("figure_F5.py"),
        histories=runs("train.csv", FIGURE_EXPERIMENTS["F5_advection_transitions"]),
        rollouts=runs("rollout.zarr", FIGURE_EXPERIMENTS["F5_advection_transitions"]),
        rows=str(RESULTS / "tables" / "advection_transitions.csv"),
        summary=str(RESULTS / "tables" / "advection_summary.csv"),
    output:
        png=report(
            str(RESULTS / "figures" / "F5_advection_transitions.png"),
            caption="../report/F5_advection_transitions.rst",
            category="F5 advection NCA",
            labels={"figure": "F5", "kind": "static", "model": "advection NCA"},
        ),
        pdf=str(RESULTS / "figures" / "F5_advection_transitions.pdf"),
        gif=report(
            str(RESULTS / "figures" / "F5_advection_transitions.gif"),
            caption="../report/F5_advection_transitions.rst",
            category="F5 advection NCA",
            labels={"figure": "F5", "kind": "animation", "model": "four transitions"},
        ),
        numbers=str(RESULTS / "figures" / "F5_advection_transitions.numbers.rst"),
    params:
        # read by the report caption when the report is built (see report_numbers)
        numbers=report_numbers,
    log:
        str(RESULTS / "logs" / "figures" / "F5_advection_transitions.log"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../workflow_scripts/figure_F5.py"
