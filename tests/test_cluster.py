"""The `test` preset through a real SLURM cluster (`--executor slurm`): every job of a training,
rollout or damage rule runs as a SLURM job, and the results equal a local run's byte for byte.

Needs a running cluster: `.ci/slurm.sh start` installs Debian's SLURM and starts a single-node
cluster (CI does this before the suite). The profile used is profiles/slurm with the edits a site
makes (partition, no account) plus `squeue` polling, since this cluster keeps no accounting
(tests/slurm_cluster.py).
"""

from __future__ import annotations

import re

import pytest
from conftest import TEST_STUDY_RUNS, result_digests
from slurm_cluster import cluster_job_ids, why_no_cluster

from morphogen import workflow


def test_job_logs_name_the_slurm_job_they_ran_in(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert "slurm" not in workflow.job_header("train")
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    monkeypatch.setenv("SLURM_JOB_PARTITION", "gpu")
    assert "rule train" in workflow.job_header("train")
    assert "slurm job 4711 on partition gpu" in workflow.job_header("train")


@pytest.mark.cluster
@pytest.mark.e2e
def test_test_preset_through_slurm_matches_a_local_run(test_preset_run, request):
    """The suite's second run of the test preset goes through SLURM where a cluster is up
    (conftest.second_run), with the compilation cache the local run filled."""
    why = why_no_cluster()
    if why:
        pytest.skip(why)
    second_run = request.getfixturevalue("second_run")
    assert second_run.via_slurm
    workdir = second_run.workdir

    # Every heavy job ran inside SLURM: its log names its SLURM job, and SLURM knows that job.
    known = cluster_job_ids()
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
