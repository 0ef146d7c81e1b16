"""Trajectory stores: zarr v3 round trip with provenance attributes, deterministic bytes."""

import hashlib

import numpy as np
import pytest
import xarray as xr

from morphogen import store


def _ds(seed=0):
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {
            "state": (
                ("trial", "step", "y", "x", "channel"),
                rng.integers(0, 2, (2, 5, 4, 4, 3), dtype=np.uint8),
            ),
            "accuracy": (("trial", "step"), rng.random((2, 5), dtype=np.float32)),
        },
        coords={"step": np.arange(5)},
        attrs={"provenance": {"experiment": "e", "seed": 0, "config_hash": "abc"}, "scale": 2},
    )


def test_round_trip_keeps_values_dims_and_provenance(tmp_path):
    ds = _ds()
    store.write(ds, tmp_path / "r.zarr", group="scale2", chunk_dims={"trial": 1})
    back = store.read(tmp_path / "r.zarr", group="scale2")
    xr.testing.assert_equal(back, ds)
    assert back.attrs["provenance"] == ds.attrs["provenance"]
    assert back["state"].dims == ("trial", "step", "y", "x", "channel")
    assert back["state"].encoding["compressors"][0].cname.value == "zstd"
    assert store.groups(tmp_path / "r.zarr") == ["scale2"]


def _digest(path):
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_data_same_bytes(tmp_path):
    store.write(_ds(), tmp_path / "a.zarr", group="g")
    store.write(_ds(), tmp_path / "b.zarr", group="g")
    assert _digest(tmp_path / "a.zarr") == _digest(tmp_path / "b.zarr")
    assert store.array_digest(_ds()) == store.array_digest(store.read(tmp_path / "a.zarr", group="g"))


def test_missing_store_is_named(tmp_path):
    with pytest.raises(store.StoreError, match="nowhere.zarr"):
        store.read(tmp_path / "nowhere.zarr")
