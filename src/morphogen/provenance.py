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


def device_info() -> dict[str, str]:
    import jax

    dev = jax.devices()[0]
    return {
        "platform": dev.platform,
        "device_kind": dev.device_kind,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "x64": str(jax.config.jax_enable_x64),
    }


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
