"""Glue for the workflow scripts: logging, XLA flags and the compilation cache.

Call :func:`start` first thing in a script, before anything imports JAX: XLA reads its flags
when JAX initialises.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import sys
from pathlib import Path

DETERMINISTIC_XLA_FLAGS = "--xla_gpu_deterministic_ops=true"


def configure_jax() -> None:
    """Deterministic GPU kernels (a no-op on CPU), set before JAX initialises."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    if DETERMINISTIC_XLA_FLAGS not in flags:
        flags.append(DETERMINISTIC_XLA_FLAGS)
    os.environ["XLA_FLAGS"] = " ".join(flags)


def host_fingerprint() -> str:
    """A short hash of this machine's architecture and CPU feature flags.

    Compiled CPU programs use the host's instruction set, so a cache shared by cluster nodes
    keeps one folder per kind of CPU.
    """
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features", "model name")):
                flags += line + "\n"
    except OSError:
        pass
    return hashlib.sha256(f"{platform.machine()}\n{flags}".encode()).hexdigest()[:12]


def configure_compile_cache(path: str | None) -> str | None:
    """Point JAX's persistent compilation cache at ``path``/<host fingerprint>; None: off.

    Every seed of an experiment compiles the same programs (params are arguments, not
    constants), so all jobs after the first of each kind load them instead of compiling. A
    cached program is the program a fresh compile would make: results do not depend on it.
    Set before JAX initialises; an existing JAX_COMPILATION_CACHE_DIR wins.
    """
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    if not path:
        return None
    where = Path(os.path.expandvars(os.path.expanduser(path))) / host_fingerprint()
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"morphogen: compile cache {where} unusable ({e}); compiling without it", flush=True)
        return None
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(where)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
    return str(where)


def start(snakemake) -> None:
    """Send stdout/stderr to the rule's log and set up JAX for the job."""
    if snakemake.log:
        log = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115 - lives as long as the job
        sys.stderr = sys.stdout = log
    configure_jax()
    cache = configure_compile_cache(snakemake.config.get("compute", {}).get("compile_cache"))
    print(job_header(getattr(snakemake, "rule", "?")), flush=True)
    print(f"morphogen: compile cache {cache or 'off'}", flush=True)


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
