"""What a result was made from: config hash, seed, code revision, package versions, device.

Everything here is deterministic for a given checkout, environment and machine kind, so it may
go into results files that must be byte-identical on rerun. Wall-clock facts never go here.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("jax", "jaxlib", "optax", "numpy", "xarray", "zarr", "pandas", "matplotlib", "seaborn")


def config_hash(cfg) -> str:
    """sha256 (16 hex digits) of the canonical JSON of a config subtree."""
    blob = json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def git_commit(root: str | Path | None = None) -> str:
    """The checkout's commit (with ``-dirty`` if tracked files changed), or "unknown"."""
    root = Path(root) if root else Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


# CPU features that decide which instructions XLA's CPU code uses (vector width, FMA).
SIMD_FEATURES = (
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "asimd", "sve", "sve2",
)  # fmt: skip


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    out: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                if out:
                    break
                continue
            key, _, value = line.partition(":")
            out.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return out


def host_info() -> dict[str, str]:
    """The CPU: model, vendor, the SIMD features XLA can target, cores (strings, so that every
    provenance field compares as text)."""
    import platform

    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return {
        "cpu_model": info.get("model name")
        or info.get("Model")
        or platform.processor()
        or platform.machine(),
        "cpu_vendor": info.get("vendor_id") or info.get("CPU implementer") or "unknown",
        "cpu_simd": " ".join(f for f in SIMD_FEATURES if f in flags) or "unknown",
        "cpu_count": str(os.cpu_count() or 0),
    }


def host_fingerprint() -> str:
    """A short hash of this machine's architecture and CPU feature flags: the kind of CPU.

    Compiled CPU programs use the host's instruction set, so a compilation cache shared by
    cluster nodes keeps one folder per kind of CPU.
    """
    import platform

    info = _cpuinfo()
    fields = "".join(f"{k}\t: {info[k]}\n" for k in ("model name", "flags", "Features") if k in info)
    return hashlib.sha256(f"{platform.machine()}\n{fields}".encode()).hexdigest()[:12]


def device_info() -> dict[str, str]:
    import jax

    dev = jax.devices()[0]
    out = {
        "platform": dev.platform,
        "device_kind": dev.device_kind,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "x64": str(jax.config.jax_enable_x64),
        **host_info(),
    }
    if dev.platform != "cpu":  # the accelerator's software stack (e.g. the CUDA driver)
        out["device_version"] = str(getattr(dev.client, "platform_version", "unknown"))
    return out


def record(experiment: str, seed: int, preset: str, cfg) -> dict:
    """The provenance block written into checkpoints, stores and tables."""
    from morphogen import __version__

    return {
        "experiment": experiment,
        "seed": int(seed),
        "preset": preset,
        "config_hash": config_hash(cfg),
        "git_commit": git_commit(),
        "morphogen_version": __version__,
        "packages": package_versions(),
        **device_info(),
    }
