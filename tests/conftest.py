"""Shared fixtures: tiny configs, and the end-to-end `test` preset run (once per session)."""

from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from morphogen.store import is_group

ROOT = Path(__file__).resolve().parents[1]

TINY_MODEL = {
    "channels": 4,
    "perception_kernels": 2,
    "perception_layers": [8, 4, 2],
    "update_layers": [16, 8, 4],
    "periodic": False,
}

PAPER_SYNC = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["experiments"]["checkerboard_sync"]


@pytest.fixture
def tiny_experiment():
    """A small sync checkerboard experiment that trains in seconds."""
    return {
        "family": "difflogic",
        "task": {"name": "checkerboard", "size": 8, "square": 2},
        "model": copy.deepcopy(TINY_MODEL),
        "update": {"mode": "sync"},
        "training": {
            "steps": 20,
            "batch": 2,
            "rollout_steps": 6,
            "optimizer": {"lr": 0.05, "b1": 0.9, "b2": 0.99, "weight_decay": 0.01, "clip": 100.0},
            "checkpoint_every": 5,
            "log_every": 5,
        },
        "evaluation": {"trials": 2, "scales": [1, 2]},
    }


WORKFLOW_FILES = ("Snakefile", "rules", "workflow_scripts", "config", "profiles", "envs", "report", "src")


def copy_workflow(dest: Path) -> Path:
    """A copy of this checkout's workflow (no results, no venv): a clean place to run it."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake(
    workdir: Path, *args: str, timeout: int = 900, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` (a copy made by :func:`copy_workflow`)."""
    cmd = [sys.executable, "-m", "snakemake", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=workdir)


def compile_cache_env(folder: Path) -> dict:
    """Environment for jobs that use ``folder`` as their compilation cache, small programs too."""
    return {"JAX_COMPILATION_CACHE_DIR": str(folder), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


# The targets of the `test` preset's end-to-end runs (local and through SLURM).
TEST_TARGETS = ("figures", "study")
_TEST_STUDY = yaml.safe_load((ROOT / "config" / "presets" / "test.yaml").read_text())["study"]
# The (experiment, method) pairs of the `test` preset's study, one run per seed each.
TEST_STUDY_PAIRS = {(exp, m) for exp, methods in _TEST_STUDY["experiments"].items() for m in methods}
TEST_STUDY_RUNS = len(TEST_STUDY_PAIRS) * len(_TEST_STUDY["seeds"])
LOCAL_SECONDS = "local_run_seconds.txt"  # how long the local run took, beside its results


def run_test_preset(workdir: Path, env: dict | None = None) -> Path:
    copy_workflow(workdir)
    t0 = time.monotonic()
    proc = snakemake(workdir, "--cores", "2", *TEST_TARGETS, "--config", "preset=test", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    (workdir / LOCAL_SECONDS).write_text(f"{time.monotonic() - t0:.1f}\n")
    return workdir


@pytest.fixture(scope="session")
def session_compile_cache(tmp_path_factory) -> Path:
    """A compilation cache that starts empty with the first run of the test preset."""
    return tmp_path_factory.mktemp("jax_cache")


@pytest.fixture(scope="session")
def test_preset_run(tmp_path_factory, session_compile_cache):
    """The whole `figures` and `study` DAG of the `test` preset, run once in a clean copy, with a cold
    compilation cache (the byte-identity test reruns it with the cache warm)."""
    return run_test_preset(tmp_path_factory.mktemp("e2e_a"), compile_cache_env(session_compile_cache))


class SecondRun(NamedTuple):
    workdir: Path
    via_slurm: bool


@pytest.fixture(scope="session")
def second_run(test_preset_run, tmp_path_factory, session_compile_cache) -> SecondRun:
    """The test preset's DAG again, in another clean copy, loading every program from the
    compilation cache the first run filled: through SLURM (`--executor slurm`, one SLURM job per
    job) where a cluster is up, else locally. One run serves both the byte-identity test and the
    cluster test, so the suite runs the whole DAG twice, not three times."""
    import slurm_cluster

    workdir = tmp_path_factory.mktemp("e2e_b")
    env = compile_cache_env(session_compile_cache)
    if slurm_cluster.why_no_cluster() is not None:
        return SecondRun(run_test_preset(workdir, env), False)
    local_seconds = float((test_preset_run / LOCAL_SECONDS).read_text())
    slurm_cluster.run_through_slurm(copy_workflow(workdir), env, local_seconds, TEST_TARGETS)
    return SecondRun(workdir, True)


# Files that record wall-clock time, by design not reproducible.
VOLATILE = re.compile(
    r"(^|/)(logs|benchmarks)/|tables/(training_methods_)?timings?\.csv$|\.snakemake_timestamp$|report\.html$"
)


def _digests(root: Path, skip: re.Pattern, *, groups: bool = True) -> dict[str, str]:
    """sha256 of every file beneath ``root`` whose relative path ``skip`` does not match (and,
    with ``groups=False``, that is not a zarr group's own zarr.json)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if (
            not p.is_file()
            or skip.search(rel)
            or (not groups and p.name == "zarr.json" and is_group(p.parent))
        ):
            continue
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def result_digests(root):
    """sha256 of every results file that must be reproducible, by path relative to ``root``."""
    return _digests(Path(root), VOLATILE)


# What the cross-machine manifests compare: the science of a results tree, not its records of
# where and when (provenance, which names the commit and the machine; timings; logs; code hashes).
NOT_SCIENCE = re.compile(
    r"(^|/)(logs|benchmarks|sources)/|(^|/)provenance\.json$|(^|/)metadata\.json$|\.snakemake_timestamp$"
    r"|report\.html$|tables/(training_methods_)?timings?\.csv$|\.(png|pdf|gif)$"
)
DIGESTS = ROOT / "tests" / "digests"


def science_digests(root: Path) -> dict[str, str]:
    """sha256 of every file of a results tree that holds results: tables, training histories,
    checkpoint arrays, the numbers beside the figures, and the arrays and array metadata of
    every store (a store group's own zarr.json holds its provenance: left out)."""
    return _digests(Path(root), NOT_SCIENCE, groups=False)


def pytest_addoption(parser):
    parser.addoption(
        "--record-digests",
        action="store_true",
        help="write this CPU kind's manifest of the test preset's result digests (tests/digests/)",
    )


def train_quietly(cfg: dict, progress: Path, seed: int = 0):
    """One training run of an experiment config in ``progress``, without its log lines."""
    from morphogen import training

    return training.train(
        cfg, seed, experiment="unit", preset="unit", progress_dir=progress, log=lambda m: None
    )


def assert_resumes_bit_identical(cfg: dict, tmp_path: Path, cut: int) -> None:
    """Train ``cfg`` uninterrupted, then again from its checkpoint at step ``cut`` (as a killed
    job would): the final training state (params, optimizer, a regime's carry) and the history
    are bit-identical."""
    import shutil

    import jax
    import numpy as np

    from morphogen import provenance

    full = train_quietly(cfg, tmp_path / "full")
    run = provenance.config_hash(cfg)
    saved = tmp_path / "full" / run / f"step_{cut:07d}"
    assert saved.is_dir()
    shutil.copytree(saved, tmp_path / "cut" / run / saved.name)
    resumed = train_quietly(cfg, tmp_path / "cut")
    assert resumed["timing"]["resumed_from"] == cut
    for a, b in zip(jax.tree.leaves(full["state"]), jax.tree.leaves(resumed["state"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for k in full["history"]:
        np.testing.assert_array_equal(full["history"][k], resumed["history"][k])
