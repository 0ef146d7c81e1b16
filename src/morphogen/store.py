"""Trajectory stores: xarray Datasets in zarr v3, compressed, with provenance attributes.

Every store is written with ``consolidated=False`` and opened the same way. Attributes hold
``provenance`` (deterministic: what the data was made from) as JSON; nothing volatile (no wall
times, no host names) is stored, so the same run writes the same bytes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import xarray as xr
from zarr.codecs import BloscCodec

COMPRESSOR = BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")


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
    return path


def read(path: str | Path, *, group: str | None = None) -> xr.Dataset:
    """Open a store (or one group of it), loaded into memory."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"store {path} does not exist")
    try:
        ds = xr.open_zarr(path, group=group, consolidated=False, zarr_format=3).load()
    except Exception as e:  # zarr raises many types for broken stores
        raise StoreError(f"store {path}{'/' + group if group else ''} is unreadable: {e}") from e
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
