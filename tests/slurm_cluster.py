"""Running the workflow through the single-node SLURM cluster that `.ci/slurm.sh start` sets up
(CI does this before the suite): is one up, the profile a site would write for it, and a run of
the test preset through it with a time limit."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

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


def why_no_cluster() -> str | None:
    """None where a SLURM cluster answers here, else why not."""
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


def ci_profile(workdir: Path) -> Path:
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


def cluster_job_ids() -> set[str]:
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True, timeout=30
    )
    return set(out.stdout.split())


def run_through_slurm(workdir: Path, env: dict, local_seconds: float, targets) -> None:
    """`snakemake --profile <ci profile> <targets>` for the test preset in ``workdir`` (a clean
    copy of the workflow); fails the test if it fails or runs past the limit."""
    profile = ci_profile(workdir)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        str(profile),
        *targets,
        "--config",
        "preset=test",
    ]
    limit = cluster_timeout(local_seconds)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
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
