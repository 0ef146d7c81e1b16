"""Glue for the workflow scripts: logging and XLA flags.

Call :func:`start` first thing in a script, before anything imports JAX: XLA reads its flags
when JAX initialises.
"""

from __future__ import annotations

import os
import socket
import sys

DETERMINISTIC_XLA_FLAGS = "--xla_gpu_deterministic_ops=true"


def configure_jax() -> None:
    """Deterministic GPU kernels (a no-op on CPU), set before JAX initialises."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    if DETERMINISTIC_XLA_FLAGS not in flags:
        flags.append(DETERMINISTIC_XLA_FLAGS)
    os.environ["XLA_FLAGS"] = " ".join(flags)


def start(snakemake) -> None:
    """Send stdout/stderr to the rule's log and set up JAX for the job."""
    if snakemake.log:
        log = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115 - lives as long as the job
        sys.stderr = sys.stdout = log
    configure_jax()
    print(job_header(getattr(snakemake, "rule", "?")), flush=True)


def job_header(rule: str) -> str:
    """One log line naming where the job ran: host, and the SLURM job when there is one."""
    where = f"host {socket.gethostname()}"
    if os.environ.get("SLURM_JOB_ID"):
        where += f", slurm job {os.environ['SLURM_JOB_ID']}"
        if os.environ.get("SLURM_JOB_PARTITION"):
            where += f" on partition {os.environ['SLURM_JOB_PARTITION']}"
    return f"morphogen: rule {rule}, {where}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"


def trained_run(snakemake):
    """(experiment, params, provenance) of the job's trained (experiment, seed) checkpoint."""
    from morphogen import provenance, training

    exp_cfg = snakemake.params.experiment
    seed = int(snakemake.wildcards.seed)
    exp = training.build(exp_cfg)
    params = training.load_checked_params(exp, snakemake.input.checkpoint, seed, exp_cfg)
    prov = provenance.record(snakemake.wildcards.experiment, seed, snakemake.params.preset, exp_cfg)
    return exp, params, prov
