"""The Snakemake workflow: config validation, the DAG of each preset, and the `test` preset end
to end (figures, tables, stores; byte-identical on rerun; reruns when the model changes)."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import (
    DIGESTS,
    ROOT,
    TEST_STUDY_PAIRS,
    TEST_STUDY_RUNS,
    TEST_TARGETS,
    copy_workflow,
    result_digests,
    science_digests,
    snakemake,
)

from morphogen import store


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("wf"))


def _dry(workdir, *args):
    return snakemake(workdir, "-n", "figures", *args, timeout=120)


def test_a_study_can_leave_an_experiment_out_but_not_all(workflow_copy):
    only_sync = "study={experiments: {checkerboard_sync: [softmax, rounded], checkerboard_async: []}}"
    proc = snakemake(workflow_copy, "-n", "study", "--config", "preset=test", only_sync, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert re.search(r"^train\s+2$", proc.stdout, re.M), proc.stdout[-2000:]
    none = "study={experiments: {checkerboard_sync: [], checkerboard_async: []}}"
    proc = snakemake(workflow_copy, "-n", "study", "--config", "preset=test", none, timeout=120)
    assert proc.returncode != 0
    assert "config key study.experiments lists no training method" in proc.stdout + proc.stderr


def test_bad_preset_is_named_with_the_allowed_values(workflow_copy):
    proc = _dry(workflow_copy, "--config", "preset=huge")
    assert proc.returncode != 0
    assert "config key 'preset' must be one of test, quick, paper; got 'huge'" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "experiments:\n  checkerboard_sync:\n    training:\n      stepz: 3\n",
            "config key experiments.checkerboard_sync.training: Additional properties are not allowed ('stepz'",
        ),
        (
            "experiments:\n  checkerboard_sync:\n    training:\n      optimizer: {lr: -1}\n",
            "config key experiments.checkerboard_sync.training.optimizer.lr: -1 is less than or equal to the minimum of 0",
        ),
        (
            "experiments:\n  checkerboard_sync:\n    update: {mode: sometimes}\n",
            "config key experiments.checkerboard_sync.update.mode: 'sometimes' is not one of ['sync', 'async']",
        ),
        ("seeds: []\n", "config key seeds: [] should be non-empty"),
        (
            "experiments:\n  checkerboard_sync:\n    training:\n      optimizer: {lr: .nan}\n",
            "config key experiments.checkerboard_sync.training.optimizer.lr: nan is not a finite number",
        ),
        (
            "experiments:\n  checkerboard_async:\n    training:\n      optimizer: {lr: .inf}\n",
            "config key experiments.checkerboard_async.training.optimizer.lr: inf is not a finite number",
        ),
        (
            "damage_protocols:\n  self_healing: {size: 70}\n",
            "config key damage_protocols.self_healing.size=70 is larger than its 64x64 grid on experiments.checkerboard_sync",
        ),
        (
            "experiments:\n  checkerboard_sync:\n    training: {loss_steps: 41}\n",
            "config key experiments.checkerboard_sync.training.loss_steps=41 is larger than rollout_steps=40",
        ),
        (
            "damage_protocols:\n  self_healing: {frame_steps: [0, 500]}\n",
            "config key damage_protocols.self_healing.frame_steps: [500] past run_steps=400",
        ),
        (
            "experiments:\n  checkerboard_sync:\n    evaluation: {scales: [1, 2]}\n",
            "config key experiments.checkerboard_sync.evaluation.scales lacks [4], which figure F1_checkerboard_sync needs",
        ),
        (
            "experiments:\n  checkerboard_sync:\n    model: {relaxation: gumble}\n",
            "config key experiments.checkerboard_sync.model.relaxation: 'gumble' is not one of",
        ),
        (
            "study:\n  experiments:\n    checkerboard_sync: [adam]\n",
            "config key study.experiments.checkerboard_sync names training method 'adam', which is not in training_methods",
        ),
        (
            "experiments:\n  checkerboard_sync:\n    training_method: adam\n",
            "config key experiments.checkerboard_sync.training_method names training method 'adam', which is not in training_methods",
        ),
        (
            "training_methods:\n  gumbel_st: {model: {temperature: 0}}\n",
            "config key training_methods.gumbel_st makes experiments.checkerboard_sync.model.temperature invalid",
        ),
        (
            "experiments:\n  attention_online:\n    task: {epsilon: 0}\n",
            "config key experiments.attention_online.task.epsilon: 0 is less than or equal to the minimum of 0",
        ),
        (
            "experiments:\n  attention_uniform:\n    training: {restart_after: 100}\n",
            "config key experiments.attention_uniform.training.restart_after: restarts are not available",
        ),
        (  # a list of restart goals: the bad item and key are named
            "experiments:\n  logic_lizard:\n    training:\n"
            "      restart_goal: [{metric: hard_accuracy, at_least: 0.97}, {metric: hard_accuracy, at_least: 1, after: 0}]\n",
            "config key experiments.logic_lizard.training.restart_goal.1.after: 0 is less than the minimum of 1",
        ),
        (
            "experiments:\n  logic_lizard:\n    training:\n      restart_goal: {metric: hard_accuracy}\n",
            "config key experiments.logic_lizard.training.restart_goal: 'at_least' is a required property",
        ),
        (
            "compute:\n  train_priority: {logic_lizzard: 2}\n",
            "config key compute.train_priority.logic_lizzard names no experiment",
        ),
        (
            "experiments:\n  attention_online:\n    training: {spike_noise: -0.1}\n",
            "config key experiments.attention_online.training.spike_noise: -0.1 is less than the minimum of 0",
        ),
        (
            "experiments:\n  growing_async:\n    training: {damage_n: 8, batch: 8}\n",
            "config key experiments.growing_async.training.damage_n: damage_n=8 must be smaller than batch=8",
        ),
        (
            "damage_protocols:\n  grow_top: {side: middle}\n",
            "config key damage_protocols.grow_top.side: 'middle' is not one of",
        ),
        (
            "damage_protocols:\n  grow_top: {recovery_threshold: 0.01}\n",
            "figure F3_growing_regeneration draws one recovery threshold",
        ),
        (
            "experiments:\n  checkerboard_sync:\n    model:\n      update_layers: [256, 8]\n",
            "config key experiments.checkerboard_sync.model.update_layers[1]=8 is too narrow for 256 inputs",
        ),
        (  # 2 kernels of one channel: 3 inputs, 3 distinct pairs for 128 gates
            "experiments:\n  logic_game_of_life:\n    model:\n      perception_kernels: 2\n",
            "config key experiments.logic_game_of_life.model.update_layers[0]=128 is too wide for 3 inputs",
        ),
        (  # the lizard is drawn at 20x20
            "experiments:\n  logic_lizard:\n    task: {size: 24}\n",
            "config key experiments.logic_lizard.task.size must be 20 for task.image 'lizard'",
        ),
        (  # the G's colours need three channels
            "experiments:\n  logic_colored_g:\n    model: {channels: 2, update_layers: [16, 8, 4, 2]}\n",
            "config key experiments.logic_colored_g.model.channels must be at least 3",
        ),
        (
            "experiments:\n  logic_lizard:\n    task: {image: newt}\n",
            "config key experiments.logic_lizard.task.image: 'newt' is not one of",
        ),
        (  # the experiment's own key is wrong, not the method it names
            "experiments:\n  checkerboard_sync:\n    training_method: mixed_st_guarded\n"
            "    model:\n      update_layers: [256, 8]\n",
            "config key experiments.checkerboard_sync.model.update_layers[1]=8 is too narrow for 256 inputs",
        ),
    ],
)
def test_bad_config_stops_before_any_job_naming_the_key(workflow_copy, tmp_path, override, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(override)
    proc = _dry(workflow_copy, "--configfile", str(bad))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in out, out[-2000:]
    assert "Job stats" not in out


def test_seeds_given_on_the_command_line_are_integers(workflow_copy):
    """Snakemake hands `--config seeds=[100,101,102]` over as strings; they are taken as the
    integers they spell."""
    proc = _dry(workflow_copy, "--config", "seeds=[100,101,102]", "--printshellcmds")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for seed in (100, 101, 102):
        assert f"checkerboard_sync/seed{seed}/train.csv" in proc.stdout
    proc = _dry(workflow_copy, "--config", "seeds=[100,x1]")
    assert "config key seeds.1: 'x1' is not of type 'integer'" in proc.stdout + proc.stderr


def test_the_longest_training_jobs_of_quick_are_scheduled_first(workflow_copy):
    """compute.train_priority: in `quick`, the lizard's training job outranks every other job,
    and the G's every job but the lizard's; the other training jobs keep priority 0."""
    proc = _dry(workflow_copy)
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = {}
    for block in proc.stdout.split("\nrule ")[1:]:
        wild = re.search(r"wildcards: experiment=(\w+), seed=(\d+)", block)
        if block.startswith("train:") and wild:
            prio = re.search(r"priority: (\d+)", block)
            jobs[wild.group(1)] = int(prio.group(1)) if prio else 0
    assert jobs["logic_lizard"] == 2 and jobs["logic_colored_g"] == 1, jobs
    assert {p for e, p in jobs.items() if e not in ("logic_lizard", "logic_colored_g")} == {0}, jobs


def test_paper_preset_dag_builds_with_gpu_training_jobs(workflow_copy):
    proc = snakemake(
        workflow_copy, "-n", "figures", "--config", "preset=paper", "--printshellcmds", timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # 5 seeds x (checkerboard sync, async, patterning backprop, ES, attention uniform, image,
    # growing sync, async, advection), and 3 each of the Game of Life, the lizard and the G
    assert re.search(r"^train\s+54$", proc.stdout, re.M), proc.stdout[-2000:]
    assert "gpu=1" in proc.stdout


PIN_SCRIPT = """
import sys
from morphogen import workflow
print(workflow.pin_to_free_cores(1), flush=True)
sys.stdin.read()  # hold the slot until the test closes stdin
"""


def pinned_jobs(tmp_path, n, slurm=False):
    """``n`` processes that each pin themselves for one thread and hold their slot until their
    stdin closes; with ``slurm``, as inside a SLURM job."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TMPDIR": str(tmp_path)}
    env.pop("SLURM_JOB_ID", None)
    if slurm:
        env["SLURM_JOB_ID"] = "4711"
    return [
        subprocess.Popen(
            [sys.executable, "-c", PIN_SCRIPT],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to share out")
def test_one_thread_jobs_each_get_a_core_of_their_own(tmp_path):
    """Jobs that asked for one thread are pinned to distinct cores while they run; when every
    core is taken a further job still runs on one core (sharing it: XLA's thread count, and
    with it some results' last bit, must not depend on how busy the machine is), and a
    finished job frees its core."""
    n = len(os.sched_getaffinity(0))
    jobs = pinned_jobs(tmp_path, n + 1)
    try:
        pinned = [j.stdout.readline().strip() for j in jobs]
        assert all(re.fullmatch(r"\[\d+\]", p) for p in pinned), pinned
        assert sorted(set(pinned)) == sorted(f"[{c}]" for c in os.sched_getaffinity(0)), pinned
    finally:
        for j in jobs:
            j.communicate("", timeout=60)
    (again,) = pinned_jobs(tmp_path, 1)
    assert again.communicate("", timeout=60)[0].strip() == f"[{min(os.sched_getaffinity(0))}]"


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to narrow")
def test_a_one_thread_slurm_job_on_a_larger_allocation_runs_on_one_core(tmp_path):
    (job,) = pinned_jobs(tmp_path, 1, slurm=True)
    assert re.fullmatch(r"\[\d+\]", job.communicate("", timeout=60)[0].strip())


def test_lint_is_clean():
    proc = snakemake(ROOT, "--lint", timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Congratulations" in out and "Lints for" not in out, out


@pytest.mark.e2e
def test_test_preset_builds_every_figure_and_table(test_preset_run):
    res = test_preset_run / "results" / "test"
    for ext in ("png", "pdf"):
        f = res / "figures" / f"F1_checkerboard_sync.{ext}"
        assert f.stat().st_size > 10_000, f
    models = pd.read_csv(res / "tables" / "models.csv")
    assert list(models.columns) == ["experiment", "seed", "metric", "value"]
    want = {
        "gates_total",
        "gates_active",
        "train_steps",
        "final_soft_loss",
        "final_hard_loss",
        "hard_accuracy_train",
        "hard_accuracy_4x",
        "phase_accuracy_4x",
        "grid_4x",
    }
    for seed in (0, 1):
        assert want <= set(models[models.seed == seed].metric)
    # every trained circuit is exported, and its NumPy netlist runs exactly as the circuit does
    differing = models[models.metric == "netlist_cells_differing"]
    logic = (
        "checkerboard_sync",
        "checkerboard_async",
        "logic_game_of_life",
        "logic_lizard",
        "logic_colored_g",
    )
    assert len(differing) == 8 and (differing.value == 0).all()  # the lizard and the G: one seed each
    one_seed = {"logic_lizard", "logic_colored_g"}
    assert all(
        (res / e / f"seed{s}" / "circuit.v").is_file()
        for e in logic
        for s in ((0,) if e in one_seed else (0, 1))
    )
    # the Game of Life: scored on all 512 configurations and on its scene
    gol = models[models.experiment == "logic_game_of_life"]
    assert {"hard_accuracy_all_configs", "configs_wrong_all_configs", "gol_cells_wrong_64"} <= set(gol.metric)
    history = pd.read_csv(res / "logic_game_of_life" / "seed0" / "train.csv")
    assert {"soft_accuracy_all", "hard_accuracy_all"} <= set(history.columns)
    assert (res / "figures" / "F7_logic_game_of_life.gif").stat().st_size > 1000
    # the growing lizard and G: wrong cells on their grids (the lizard's also twice as wide, for
    # as many steps), F8 and a GIF of each
    lizard = models[models.experiment == "logic_lizard"]
    assert {"cells_wrong_train", "cells_wrong_2x", "first_exact_step_2x", "final_hard_loss"} <= set(
        lizard.metric
    )
    assert "cells_wrong_train" in set(models[models.experiment == "logic_colored_g"].metric)
    wide = store.read(res / "logic_lizard" / "seed0" / "rollout.zarr", group="scale2")
    assert wide.sizes["y"] == 40 and wide.sizes["step"] == 12 + 1 and wide.sizes["channel"] == 1
    for gif in ("F8_logic_growing_lizard.gif", "F8_logic_growing_g.gif"):
        assert (res / "figures" / gif).stat().st_size > 1000
    timings = pd.read_csv(res / "tables" / "timings.csv")
    assert (timings[timings.metric == "train_seconds"].value > 0).all()
    history = pd.read_csv(res / "checkerboard_sync" / "seed0" / "train.csv")
    assert list(history.columns) == [
        "step",
        "soft_loss",
        "hard_loss",
        "hard_accuracy",
        "gap",
        "grad_norm",
        "skipped_update",
    ]
    assert len(history) == 12
    ds = store.read(res / "checkerboard_sync" / "seed0" / "rollout.zarr", group="scale4")
    assert ds["state"].dims == ("trial", "step", "y", "x", "channel")
    assert ds.sizes["y"] == 32 and ds.sizes["step"] == 4 * 6 + 1
    assert ds.attrs["provenance"]["experiment"] == "checkerboard_sync"
    # the kind of CPU, in the store, the checkpoint and provenance.json
    from morphogen import provenance

    host = provenance.host_info()
    assert {k: ds.attrs["provenance"][k] for k in host} == host
    meta = json.loads((res / "checkerboard_sync" / "seed0" / "checkpoint" / "metadata.json").read_text())
    assert meta["cpu_simd"] == host["cpu_simd"]
    assert json.loads((res / "provenance.json").read_text())["cpu_model"] == host["cpu_model"]
    assert set(np.unique(ds["state"].values)) <= {0, 1}
    # every rule left a log, the heavy ones a benchmark
    assert (res / "logs" / "train" / "checkerboard_sync" / "seed0.log").stat().st_size > 0
    assert (res / "benchmarks" / "rollout" / "checkerboard_sync" / "seed1.tsv").exists()
    assert not (res / "checkerboard_sync" / "seed0" / "progress").exists()


@pytest.mark.e2e
def test_test_preset_builds_the_advection_transitions_and_f5_says_their_numbers(test_preset_run):
    res = test_preset_run / "results" / "test"
    rows = pd.read_csv(res / "tables" / "advection_transitions.csv")
    assert list(rows.columns) == [
        "experiment", "seed", "model", "source", "target", "trial", "mse", "mass_ratio", "mass_error_max",
        "uniform_mse",
    ]  # fmt: skip
    assert len(rows) == 2 * 2 * 12 * 2  # seeds x (trained, untrained) x pairs x trials
    assert (rows["mass_error_max"] <= 1e-5).all()
    summary = pd.read_csv(res / "tables" / "advection_summary.csv")
    numbers = (res / "figures" / "F5_advection_transitions.numbers.rst").read_text()
    for r in summary.itertuples():
        assert (
            f"   * - {r.source}->{r.target}\n     - {r.mse_mean:.4f} [{r.mse_lo:.4f}, {r.mse_hi:.4f}]"
            in numbers
        )
        assert f"{r.uniform_mse:.4f}" in numbers and f"{r.untrained_mse:.4f}" in numbers
    factor = summary["uniform_mse"].mean() / summary["mse_mean"].mean()
    assert f"({factor:.1f}x lower)" in numbers
    assert f"{rows[rows.model == 'trained']['mass_error_max'].max():.2g}." in numbers
    models = pd.read_csv(res / "tables" / "models.csv")
    got = set(models[models.experiment == "advection_formations"].metric)
    assert {"transition_mse_mean", "mass_error_max", "uniform_baseline_mse", "transition_mse_mean_initial",
            "params_total", "final_loss"} <= got  # fmt: skip
    for ext in ("png", "pdf", "gif"):
        assert (res / "figures" / f"F5_advection_transitions.{ext}").stat().st_size > 10_000


@pytest.mark.e2e
def test_test_preset_builds_the_training_method_study(test_preset_run):
    res = test_preset_run / "results" / "test"
    for ext in ("png", "pdf"):
        assert (res / "figures" / f"S1_discretization_gap.{ext}").stat().st_size > 10_000
    summary = pd.read_csv(res / "tables" / "training_methods.csv")
    pairs = set(zip(summary.experiment, summary.method))
    assert pairs == TEST_STUDY_PAIRS and {"softmax", "rounded", "gumbel_st", "hard_st"} <= set(summary.method)
    assert (summary.seeds == 1).all() and (summary.budget == 12).all()
    runs = pd.read_csv(res / "tables" / "training_methods_runs.csv")
    assert len(runs) == TEST_STUDY_RUNS and (runs.gates_total == 84).all()
    # the hard forward pass of hard_st is the deployed circuit: no gap
    assert (runs[runs.method == "hard_st"].mean_abs_gap < 1e-3).all()
    assert (runs[runs.method == "softmax"].mean_abs_gap > 0.1).all()
    # the polished method repaired its best circuit one switch at a time (nothing is exact after
    # 12 steps: it switched at least one gate), and the table says why the others failed
    polished = runs[runs.method == "mixed_st_gated_polished"].iloc[0]
    assert 1 <= polished.polish_changes <= 20
    assert set(runs.failure.fillna("")) <= {"", "gap", "unlearnt"} and "exact_after_polish" in summary
    timing = pd.read_csv(res / "tables" / "training_methods_timing.csv")
    assert (timing.seconds_per_step_median > 0).all()
    # the study's runs are trained like any other (one attempt each) and only the study reads them
    meta = (res / "checkerboard_sync.gumbel_st" / "seed0" / "checkpoint" / "metadata.json").read_text()
    assert '"relaxation": "gumbel_st"' in meta and '"restart_after": 0' in meta
    assert not (res / "checkerboard_sync.gumbel_st" / "seed0" / "rollout.zarr").exists()


@pytest.mark.e2e
def test_test_preset_builds_the_self_healing_comparison(test_preset_run):
    res = test_preset_run / "results" / "test"
    for name in (
        "F2_self_healing.png",
        "F2_self_healing.pdf",
        "F2_self_healing_sync.gif",
        "F2_self_healing_async.gif",
    ):
        assert (res / "figures" / name).stat().st_size > 500, name
    errors = pd.read_csv(res / "tables" / "recovery_errors.csv")
    assert list(errors.columns) == ["experiment", "seed", "protocol", "trial", "step", "error"]
    protocols = {
        "self_healing",
        "robustness",
        "square_once",
        "dead_cells",
        "grow_bottom",
        "grow_circle_other",
    }
    assert set(errors.protocol) == protocols
    assert set(errors.experiment) == {
        "checkerboard_sync",
        "checkerboard_async",
        "growing_sync",
        "growing_async",
    }
    comparison = pd.read_csv(res / "tables" / "recovery_comparison.csv")
    assert set(comparison.numerator) == {"checkerboard_async", "growing_async"}
    models = pd.read_csv(res / "tables" / "models.csv")
    # the growing NCA's regeneration: RGBA frames, the other update mode, a threshold
    grown = store.read(res / "growing_sync" / "seed0" / "recovery.zarr", group="grow_circle_other")
    assert grown.attrs["inference"] == "async" and grown.attrs["recovery_threshold"] == 0.002
    assert grown["frames"].dims[-1] == "colour" and grown.sizes["colour"] == 4
    assert {"growth_loss_final", "params_total", "recovered_fraction_grow_bottom"} <= set(
        models[models.experiment == "growing_async"].metric
    )
    models = pd.read_csv(res / "tables" / "models.csv")
    assert "recovery_auc_mean_self_healing" in set(models[models.experiment == "checkerboard_async"].metric)
    ds = store.read(res / "checkerboard_async" / "seed1" / "recovery.zarr", group="robustness")
    assert ds.attrs["inference"] == "async" and ds.sizes["step"] == 31
    # robustness damage: a block is zeroed after every step
    assert (ds["damage"].sum(("y", "x")).values[:, 1:] > 0).all()


def _planned(workdir):
    proc = snakemake(workdir, "-n", *TEST_TARGETS, "--config", "preset=test", timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    if "Nothing to be done" in out:
        return {}
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)
        if m.group(1) != "total"
    }


@pytest.mark.e2e
def test_results_copied_into_a_fresh_checkout_are_up_to_date_and_code_edits_rerun(test_preset_run, tmp_path):
    """A colleague's finished results in a fresh checkout of the same commit: nothing to redo,
    whatever the files' times; an edit of a model family reruns the training of its experiments
    and of no others; an edit of a caption reruns nothing."""
    assert _planned(test_preset_run) == {}
    fresh = copy_workflow(tmp_path / "fresh")  # no .snakemake: no record of earlier runs
    shutil.copytree(test_preset_run / "results", fresh / "results")  # keeps modification times
    assert _planned(fresh) == {}
    now = time.time()
    for f in fresh.rglob("*"):
        if f.is_file() and "results" not in f.relative_to(fresh).parts:
            os.utime(f, (now, now))  # a fresh checkout: every source newer than every result
    assert _planned(fresh) == {}
    caption = fresh / "report" / "models.rst"
    caption.write_text(caption.read_text() + "\nAn edited caption.\n")
    assert _planned(fresh) == {}
    model = fresh / "src" / "morphogen" / "models" / "difflogic.py"
    model.write_text(model.read_text() + "\n# an edit\n")
    planned = _planned(fresh)
    # the DiffLogic runs: 3 of the figures' experiments x 2 seeds, the lizard's and the G's one,
    # the study's; not the patterning's
    assert planned.get("train") == 8 + TEST_STUDY_RUNS, planned
    assert planned.get("rollout") == 8, planned  # the patterning and attention runs' rollouts stand
    other = fresh / "src" / "morphogen" / "models" / "patterning.py"
    other.write_text(other.read_text() + "\n# an edit\n")
    more = _planned(fresh)
    # ... and an edit of the patterning family adds its 2 experiments x 2 seeds, their rollouts, F6
    assert more.get("train") == planned["train"] + 4, more
    assert more.get("rollout") == planned["rollout"] + 4 and more.get("figure_F6") == 1, more
    assert more.get("damage") == planned["damage"], more  # patterning has no damage jobs


@pytest.mark.e2e
def test_a_store_missing_a_chunk_fails_the_rule_that_reads_it(test_preset_run, tmp_path):
    """zarr reads a missing chunk as zeros; the chunk manifest turns it into an error."""
    work = copy_workflow(tmp_path / "damaged")
    shutil.copytree(test_preset_run / "results", work / "results")
    rollout = work / "results" / "test" / "checkerboard_sync" / "seed0" / "rollout.zarr"
    chunk = sorted((rollout / "scale1" / "state" / "c").rglob("*"))[-1]
    assert chunk.is_file()
    chunk.unlink()
    proc = snakemake(work, "--cores", "1", "figures", "--forcerun", "figure_F1", "--config", "preset=test")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    damaged = rollout.relative_to(work) / "scale1"
    assert f"store {damaged} is damaged: missing state/c/" in out, out[-3000:]
    assert not (work / "results" / "test" / "figures" / "F1_checkerboard_sync.png").exists()


RECORD = ".venv/bin/python -m pytest tests/test_workflow.py -k manifest_of_this_cpu_kind --record-digests"


@pytest.mark.e2e
def test_results_match_the_manifest_of_this_cpu_kind(test_preset_run, request):
    """The `test` preset's results against the digests committed for this kind of CPU (XLA
    compiles for the CPU it runs on, so each kind has its own); a kind not seen before is
    reported with how far it agrees with the others and the command that records it."""
    from morphogen import provenance

    kind, info = provenance.host_fingerprint(), provenance.host_info()
    found = science_digests(test_preset_run / "results")
    path = DIGESTS / f"test-{kind}.json"
    if request.config.getoption("--record-digests"):
        DIGESTS.mkdir(exist_ok=True)
        record = {"cpu_kind": kind, **{k: info[k] for k in ("cpu_model", "cpu_vendor", "cpu_simd")}}
        path.write_text(json.dumps({**record, "files": found}, indent=1, sort_keys=True) + "\n")
        return
    if not path.exists():
        others = []
        for other in sorted(DIGESTS.glob("test-*.json")):
            o = json.loads(other.read_text())
            same = sum(found.get(f) == d for f, d in o["files"].items())
            others.append(f"{o['cpu_model']} ({o['cpu_kind']}): {same} of {len(o['files'])} files equal")
        warnings.warn(
            f"no result digests for this kind of CPU ({info['cpu_model']}, {info['cpu_simd']}; kind {kind}); "
            f"known kinds: {'; '.join(others) or 'none'}. To record it: {RECORD}",
            stacklevel=1,
        )
        return
    recorded = json.loads(path.read_text())["files"]
    missing = sorted(set(recorded) - set(found))
    extra = sorted(set(found) - set(recorded))
    differ = sorted(f for f in set(recorded) & set(found) if recorded[f] != found[f])
    assert not (missing or extra or differ), (
        f"the test preset's results differ from {path.relative_to(ROOT)} ({info['cpu_model']}): "
        f"{len(differ)} changed {differ[:10]}, {len(missing)} missing {missing[:5]}, {len(extra)} new {extra[:5]}. "
        f"If the change is intended (this commit changes the science), record it: {RECORD}"
    )


@pytest.mark.e2e
def test_rerun_in_a_clean_directory_gives_byte_identical_results(test_preset_run, second_run):
    """The second run (through SLURM where a cluster is up, see conftest.second_run) loads every
    program from the compilation cache the first run filled (cold): the results do not depend on
    whether a program was compiled or loaded, nor on the directory they were made in."""
    again = second_run.workdir
    a = result_digests(test_preset_run / "results")
    b = result_digests(again / "results")
    print(f"{len(a)} result files compared ({'through SLURM' if second_run.via_slurm else 'locally'})")
    assert len(a) > 40
    assert a.keys() == b.keys()
    differ = [k for k in a if a[k] != b[k]]
    assert not differ, differ
    for rule in ("train", "rollout", "damage"):
        logs = sorted((again / "results" / "test" / "logs" / rule).rglob("*.log"))
        assert logs
        for log in logs:
            m = re.search(r"compile cache: (\d+) programs loaded .*, (\d+) compiled", log.read_text())
            assert m, f"{log} does not report the compile cache"
            assert int(m.group(1)) >= 1 and int(m.group(2)) == 0, f"{log}: {m.group(0)}"


@pytest.mark.e2e
def test_the_library_builds_each_figure_as_the_workflow_did_without_snakemake(test_preset_run):
    """src/morphogen/figures/: loaded tables and stores in, a figure and its numbers out; the
    numbers equal those the figure jobs wrote."""
    import matplotlib.pyplot as plt

    from morphogen import training
    from morphogen.figures import (
        f1_checkerboard,
        f2_self_healing,
        f3_growing,
        f4_attention,
        f5_advection,
        f6_patterning,
        f7_game_of_life,
        f8_growing,
        s1_training_methods,
    )

    res = test_preset_run / "results" / "test"
    models = pd.read_csv(res / "tables" / "models.csv")

    def runs(exp, name):
        return [str(p) for p in sorted((res / exp).glob(f"seed*/{name}"))]

    def written(figure):
        return (res / "figures" / f"{figure}.numbers.rst").read_text()

    fig, numbers = f1_checkerboard.build(
        runs("checkerboard_sync", "train.csv"), models, runs("checkerboard_sync", "rollout.zarr")
    )
    assert numbers == written("F1_checkerboard_sync")
    assert len(fig.axes) == 9  # loss, accuracy, the large grid, six frames
    plt.close(fig)

    fig, numbers, gifs = f2_self_healing.build(
        pd.read_csv(res / "tables" / "recovery_summary.csv", dtype={"left_out_seeds": str}),
        pd.read_csv(res / "tables" / "recovery_comparison.csv"),
        models,
        runs("checkerboard_sync", "recovery.zarr") + runs("checkerboard_async", "recovery.zarr"),
    )
    assert numbers == written("F2_self_healing")
    assert len(gifs) == 2 and all(frames.shape[0] == masks.shape[0] for frames, masks in gifs)
    plt.close(fig)

    exps = ("growing_sync", "growing_async")
    histories, growth, recovery = f3_growing.load(
        [p for e in exps for p in runs(e, "train.csv")],
        [p for e in exps for p in runs(e, "rollout.zarr")],
        [p for e in exps for p in runs(e, "recovery.zarr")],
        store.read,
        store.groups,
    )
    fig, numbers, gifs = f3_growing.build(
        histories,
        growth,
        recovery,
        pd.read_csv(res / "tables" / "recovery_summary.csv", dtype={"left_out_seeds": str}),
        pd.read_csv(res / "tables" / "recovery_comparison.csv"),
        models,
        0.002,
    )
    assert numbers == written("F3_growing_regeneration")
    assert set(gifs) == set(exps) and all(g.ndim == 4 and g.shape[-1] == 3 for g in gifs.values())
    plt.close(fig)

    exps = ("patterning_backprop", "patterning_es")
    histories, rollouts = f6_patterning.load(
        [p for e in exps for p in runs(e, "train.csv")],
        [p for e in exps for p in runs(e, "rollout.zarr")],
        store.read,
        store.groups,
    )
    budgets = {
        e: training.simulated_trajectories(
            json.loads((res / e / "seed0" / "checkpoint" / "metadata.json").read_text())["config"]["training"]
        )
        for e in exps
    }
    fig, numbers, frames = f6_patterning.build(histories, rollouts, models, budgets)
    assert numbers == written("F6_patterning_bp_vs_es")
    assert frames.ndim == 4 and frames.shape[-1] == 3
    plt.close(fig)

    hist, stores = f5_advection.load(
        runs("advection_formations", "train.csv"), runs("advection_formations", "rollout.zarr"), store.read
    )
    fig, numbers, frames = f5_advection.build(
        hist,
        stores,
        pd.read_csv(res / "tables" / "advection_transitions.csv"),
        pd.read_csv(res / "tables" / "advection_summary.csv"),
    )
    assert numbers == written("F5_advection_transitions")
    assert frames.ndim == 4 and frames.shape[-1] == 3
    plt.close(fig)

    exps = ("attention_uniform", "attention_online")
    histories, rollouts = f4_attention.load(
        [p for e in exps for p in runs(e, "train.csv")],
        [p for e in exps for p in runs(e, "rollout.zarr")],
        store.read,
        store.groups,
    )
    assert set(rollouts["attention_online"][0]) == {"scale1", "noiseless", "initial", "training"}
    fig, numbers, frames = f4_attention.build(histories, rollouts, models, {e: 1e-3 for e in exps})
    assert numbers == written("F4_attention_online")
    assert frames.ndim == 4 and frames.shape[-1] == 3
    plt.close(fig)

    fig, numbers, frames = f7_game_of_life.build(
        runs("logic_game_of_life", "train.csv"), models, runs("logic_game_of_life", "rollout.zarr")
    )
    assert numbers == written("F7_logic_game_of_life")
    assert frames.ndim == 4 and frames.shape[-1] == 3
    plt.close(fig)

    growing = ("logic_lizard", "logic_colored_g")
    fig, numbers, gifs = f8_growing.build(
        [p for e in growing for p in runs(e, "train.csv")],
        models,
        [p for e in growing for p in runs(e, "rollout.zarr")],
    )
    assert numbers == written("F8_logic_growing")
    assert all(g.ndim == 4 and g.shape[-1] == 3 for g in gifs.values())
    plt.close(fig)

    fig, numbers = s1_training_methods.build(
        pd.read_csv(res / "tables" / "training_methods_runs.csv"),
        s1_training_methods.read_summary(res / "tables" / "training_methods.csv"),
        [str(p) for p in sorted(res.glob("*.*/seed*/train.csv"))],  # study runs: <experiment>.<method>
    )
    assert numbers == written("S1_discretization_gap")
    plt.close(fig)
