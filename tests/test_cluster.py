"""The `test` preset through a real SLURM cluster (`--executor slurm`): every job of a training,
rollout or damage rule runs as a SLURM job, and the results equal a local run's byte for byte.

Needs a running cluster: `.ci/slurm.sh start` installs Debian's SLURM and starts a single-node
cluster (CI does this before the suite). The profile used is profiles/slurm with the edits a site
makes (partition, no account) plus `squeue` polling, since this cluster keeps no accounting.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import LOCAL_SECONDS, ROOT, TEST_STUDY_RUNS, TEST_TARGETS, copy_workflow, result_digests

from morphogen import workflow

# The whole run, cluster overhead included, must stay inside a limit: the executor plugin can
# wait forever when its status command fails, so the run is killed after it. The limit is this
# many times the local run of the same preset in the same session (so a busy machine, which
# slows both, does not fail the test), at least MIN_TIMEOUT s; MORPHOGEN_CLUSTER_TIMEOUT (s)
# overrides it.
TIMEOUT_FACTOR = 6
MIN_TIMEOUT = 420


def cluster_timeout(local_seconds: float) -> float:
    override = os.environ.get("MORPHOGEN_CLUSTER_TIMEOUT")
    if override:
        return float(override)
    return max(MIN_TIMEOUT, TIMEOUT_FACTOR * local_seconds)


def _why_no_cluster() -> str | None:
    if not shutil.which("sinfo") or not shutil.which("sbatch"):
        return "SLURM is not installed here; `.ci/slurm.sh start` installs and starts a local cluster"
    try:
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s: the SLURM controller is not responding"
    if state.returncode != 0 or not re.search(r"idle|mix|alloc", state.stdout):
        return f"no SLURM cluster is up (sinfo: {(state.stdout + state.stderr).strip()!r}); run .ci/slurm.sh start"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed"
    return None


def _ci_profile(workdir):
    """profiles/slurm as a site would edit it for this one-node cluster."""
    prof = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    defaults = prof["default-resources"]
    defaults.pop("slurm_account", None)  # this cluster has no accounts
    defaults.update(slurm_partition="debug", runtime=10, mem_mb=1000)
    for rule in prof["set-resources"].values():
        rule.update(slurm_partition="debug", runtime=10, mem_mb=1000)
    prof.update(
        {
            "jobs": 4,
            "retries": 0,
            "latency-wait": 5,
            # No slurmdbd here: sacct cannot answer, so poll with squeue (MinJobAge=7200).
            "slurm-status-command": "squeue",
            "slurm-init-seconds-before-status-checks": 1,
        }
    )
    d = workdir / "profiles" / "slurm-ci"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return d


def _cluster_job_ids() -> set[str]:
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True, timeout=30
    )
    return set(out.stdout.split())


def test_job_logs_name_the_slurm_job_they_ran_in(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert "slurm" not in workflow.job_header("train")
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    monkeypatch.setenv("SLURM_JOB_PARTITION", "gpu")
    assert "rule train" in workflow.job_header("train")
    assert "slurm job 4711 on partition gpu" in workflow.job_header("train")


@pytest.mark.cluster
@pytest.mark.e2e
def test_test_preset_through_slurm_matches_a_local_run(test_preset_run, tmp_path):
    why = _why_no_cluster()
    if why:
        pytest.skip(why)
    workdir = copy_workflow(tmp_path / "slurm")
    profile = _ci_profile(workdir)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        str(profile),
        *TEST_TARGETS,
        "--config",
        "preset=test",
    ]
    local_seconds = float((test_preset_run / LOCAL_SECONDS).read_text())
    limit = cluster_timeout(local_seconds)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        subprocess.run(["scancel", "--user", os.environ.get("USER", "root")], timeout=30)
        pytest.fail(
            f"the SLURM run did not finish within {limit:.0f} s ({TIMEOUT_FACTOR} x the local run's "
            f"{local_seconds:.0f} s, at least {MIN_TIMEOUT} s; MORPHOGEN_CLUSTER_TIMEOUT overrides):\n{out[-4000:]}"
        )
    elapsed = time.monotonic() - t0
    print(
        f"SLURM run of the test preset: {elapsed:.0f} s (local: {local_seconds:.0f} s, limit {limit:.0f} s)"
    )
    assert proc.returncode == 0, out[-6000:]

    # Every heavy job ran inside SLURM: its log names its SLURM job, and SLURM knows that job.
    known = _cluster_job_ids()
    logs = workdir / "results" / "test" / "logs"
    heavy = sorted(p for rule in ("train", "rollout", "damage") for p in (logs / rule).rglob("*.log"))
    # checkerboard and growing: 2 experiments x 2 seeds x 3 rules each; patterning and attention:
    # 2 x 2 x 2 each (no damage); advection and the Game of Life: 1 x 2 x 2 each; the lizard and
    # the G: 2 x 1 seed x 2; the study's training runs
    assert len(heavy) == 12 + 12 + 8 + 8 + 4 + 4 + 4 + TEST_STUDY_RUNS, heavy
    ids = {}
    for log in heavy:
        m = re.search(r"slurm job (\d+)", log.read_text())
        assert m, f"{log} does not name a SLURM job: it did not run through SLURM"
        ids[log] = m.group(1)
    assert set(ids.values()) <= known, (set(ids.values()) - known, known)
    assert len(set(ids.values())) == len(heavy)  # one SLURM job per (rule, experiment, seed)

    # ... and produced exactly the files a local run produces.
    local = result_digests(test_preset_run / "results")
    remote = result_digests(workdir / "results")
    assert remote.keys() == local.keys()
    differ = [k for k in local if local[k] != remote[k]]
    assert not differ, differ
