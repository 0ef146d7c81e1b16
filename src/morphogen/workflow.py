"""Glue for the workflow scripts: logging, XLA flags and the compilation cache.

Call :func:`start` first thing in a script, before anything imports JAX: XLA reads its flags
when JAX initialises.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import tempfile
from pathlib import Path

_HELD_LOCKS = []  # core-slot locks, held until the process exits

DETERMINISTIC_XLA_FLAGS = "--xla_gpu_deterministic_ops=true"


def configure_jax() -> None:
    """Deterministic GPU kernels (a no-op on CPU), set before JAX initialises."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    if DETERMINISTIC_XLA_FLAGS not in flags:
        flags.append(DETERMINISTIC_XLA_FLAGS)
    os.environ["XLA_FLAGS"] = " ".join(flags)


def host_fingerprint() -> str:
    """The kind of CPU (see :func:`morphogen.provenance.host_fingerprint`): the compilation
    cache's folder and the results' provenance name the CPU with the same facts."""
    from morphogen import provenance

    return provenance.host_fingerprint()


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


def report_compile_cache() -> None:
    """At exit, log how many programs came from the compilation cache and how many were built."""
    import atexit

    import jax

    counts = {"hits": 0, "misses": 0, "saved": 0.0}

    def on_event(event, **_):
        if event == "/jax/compilation_cache/cache_hits":
            counts["hits"] += 1
        elif event == "/jax/compilation_cache/cache_misses":
            counts["misses"] += 1

    def on_duration(event, seconds, **_):
        if event == "/jax/compilation_cache/compile_time_saved_sec":
            counts["saved"] += seconds

    jax.monitoring.register_event_listener(on_event)
    jax.monitoring.register_event_duration_secs_listener(on_duration)

    def summary():
        print(
            f"morphogen: compile cache: {counts['hits']} programs loaded (saving {counts['saved']:.1f} s), "
            f"{counts['misses']} compiled and stored",
            flush=True,
        )

    atexit.register(summary)


def pin_to_free_cores(threads: int) -> list[int] | None:
    """Run a job that asked for fewer cores than it may use on exactly ``threads`` of them.

    XLA's CPU runtime sizes its thread pool to the cores a process may run on and splits some
    fused operations between those threads, so the last bit of a result can depend on how many
    there are: on one core against two, the lizard's and the growing, attention and advection
    NCAs' params parted within 10 training steps (the checkerboards', the patterning NCA's, the
    Game of Life's and the G's did not). So the number is fixed by the job's ``threads``, never
    by how busy the machine is: a job takes the first free slot of ``threads`` cores (an
    exclusive lock file per slot, released when the process ends), and when every slot is taken
    (more jobs than cores, as with `--cores 8` on a 2-core laptop) it shares one with another
    job: slower, the same bits.
    Pinned, two one-thread jobs on a 2-core machine also stop running two threads each in each
    other's way (together 25% faster). Under SLURM too: an allocation of just ``threads`` cores
    is left as it is, a larger one (a node without CPU confinement) is narrowed the same way.
    Returns the cores, or None where nothing was narrowed (the job may use ``threads`` cores or
    fewer, or the OS cannot bind a process).
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if threads >= len(allowed):
        return None
    slots = [allowed[i * threads : (i + 1) * threads] for i in range(len(allowed) // threads)]
    lock_dir = Path(tempfile.gettempdir()) / f"morphogen-cores-{os.getuid()}"
    try:
        lock_dir.mkdir(exist_ok=True)
    except OSError:
        lock_dir = None  # no locks: a slot chosen by process id, below
    for cores in slots if lock_dir else []:
        f = open(lock_dir / f"cores-{'-'.join(map(str, cores))}.lock", "w")  # noqa: SIM115 - held
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _HELD_LOCKS.append(f)
        os.sched_setaffinity(0, cores)
        return cores
    cores = slots[os.getpid() % len(slots)]  # every slot taken: share one
    os.sched_setaffinity(0, cores)
    return cores


def start(snakemake) -> None:
    """Send stdout/stderr to the rule's log and set up JAX for the job."""
    if snakemake.log:
        log = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115 - lives as long as the job
        sys.stderr = sys.stdout = log
    configure_jax()
    cores = pin_to_free_cores(int(getattr(snakemake, "threads", 0) or 0) or os.cpu_count() or 1)
    cache = configure_compile_cache(snakemake.config.get("compute", {}).get("compile_cache"))
    print(job_header(getattr(snakemake, "rule", "?")), flush=True)
    print(f"morphogen: compile cache {cache or 'off'}", flush=True)
    if cores is not None:
        print(f"morphogen: {snakemake.threads} thread(s), pinned to core(s) {cores}", flush=True)
    if cache:
        report_compile_cache()


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
