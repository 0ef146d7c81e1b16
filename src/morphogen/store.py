"""Trajectory stores: xarray Datasets in zarr v3, compressed, with provenance attributes.

Every store is written with ``consolidated=False`` and opened the same way. Attributes hold
``provenance`` (deterministic: what the data was made from) as JSON; nothing volatile (no wall
times, no host names) is stored, so the same run writes the same bytes.

Zarr reads a missing chunk as the fill value, so a store that lost a file would read as zeros.
Each written group therefore records the sha256 of every file beneath it (array metadata and
chunks) in its ``chunk_manifest`` attribute, and :func:`read` checks the files against it: a
missing, extra or altered file is an error that names the store and the file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import xarray as xr
from zarr.codecs import BloscCodec

COMPRESSOR = BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")
MANIFEST = "chunk_manifest"  # group attribute: file path (relative to the group) -> sha256


class StoreError(RuntimeError):
    """A store is missing or unreadable."""


def _encoding(ds: xr.Dataset, chunk_dims: dict[str, int] | None) -> dict:
    enc = {}
    for name, var in ds.data_vars.items():
        chunks = tuple(min(var.sizes[d], (chunk_dims or {}).get(d, var.sizes[d])) for d in var.dims)
        enc[name] = {"compressors": [COMPRESSOR], "chunks": chunks}
    return enc


def write(ds: xr.Dataset, path: str | Path, *, group: str | None = None, chunk_dims=None, mode="w"):
    """Write ``ds`` (or one group of a multi-group store) to ``path`` as zarr v3."""
    path = Path(path)
    if mode == "w" and group is None and path.exists():
        shutil.rmtree(path)
    ds.to_zarr(
        path,
        group=group,
        mode=mode,
        encoding=_encoding(ds, chunk_dims),
        consolidated=False,
        zarr_format=3,
    )
    _record_manifest(path, group)
    return path


def _files(root: Path) -> dict[str, str]:
    """sha256 of every file beneath a group's folder but its own zarr.json (which holds the
    manifest), by path relative to it; the folders of subgroups are theirs to record."""
    subgroups = [p.parent for p in root.glob("*/**/zarr.json") if is_group(p.parent)]
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p != root / "zarr.json" and not any(g in p.parents for g in subgroups):
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def is_group(folder: Path) -> bool:
    """Whether ``folder`` is a zarr v3 group (its zarr.json says so)."""
    try:
        return json.loads((folder / "zarr.json").read_text()).get("node_type") == "group"
    except (OSError, ValueError):
        return False


def _record_manifest(path: Path, group: str | None) -> None:
    import zarr

    root = path / group if group else path
    zarr.open_group(str(path), path=group or "", mode="r+", zarr_format=3).attrs[MANIFEST] = _files(root)


def verify(path: str | Path, group: str | None = None) -> None:
    """Raise StoreError (naming the store and the files) unless every file of the group is
    present and unchanged, as its chunk manifest records."""
    path = Path(path)
    root = path / group if group else path
    where = f"{path}{'/' + group if group else ''}"
    try:
        attrs = json.loads((root / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError) as e:
        raise StoreError(f"store {where} is unreadable: {e}") from e
    recorded = attrs.get(MANIFEST)
    if recorded is None:
        raise StoreError(f"store {where} has no {MANIFEST} (written by an older morphogen?): rebuild it")
    found = _files(root)
    missing = sorted(set(recorded) - set(found))
    extra = sorted(set(found) - set(recorded))
    changed = sorted(f for f in set(recorded) & set(found) if recorded[f] != found[f])
    if missing or extra or changed:
        parts = [
            f"{label} {', '.join(files[:5])}{' ...' if len(files) > 5 else ''}"
            for label, files in (("missing", missing), ("unexpected", extra), ("altered", changed))
            if files
        ]
        raise StoreError(f"store {where} is damaged: {'; '.join(parts)} (rebuild it)")


def read(path: str | Path, *, group: str | None = None) -> xr.Dataset:
    """Open a store (or one group of it), loaded into memory, after checking its files against
    the group's chunk manifest."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"store {path} does not exist")
    verify(path, group)
    try:
        ds = xr.open_zarr(path, group=group, consolidated=False, zarr_format=3).load()
    except Exception as e:  # zarr raises many types for broken stores
        raise StoreError(f"store {path}{'/' + group if group else ''} is unreadable: {e}") from e
    ds.attrs.pop(MANIFEST, None)
    return ds


def groups(path: str | Path) -> list[str]:
    """Names of the groups of a multi-group store (directories holding zarr.json)."""
    path = Path(path)
    return sorted(p.name for p in path.iterdir() if p.is_dir() and (p / "zarr.json").exists())


def array_digest(ds: xr.Dataset) -> dict[str, str]:
    """sha256 of each data variable's raw bytes: bitwise equality regardless of encoding."""
    import hashlib

    return {
        name: hashlib.sha256(np.asarray(var.values, order="C").tobytes()).hexdigest()
        for name, var in ds.data_vars.items()
    }
