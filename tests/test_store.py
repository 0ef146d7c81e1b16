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


def _chunks(group_dir):
    return sorted(p for p in group_dir.rglob("*") if p.is_file() and "/c/" in p.as_posix())


def test_a_missing_chunk_is_an_error_naming_the_store_not_zeros(tmp_path):
    path = tmp_path / "r.zarr"
    store.write(_ds(0), path, group="scale1", chunk_dims={"trial": 1})
    store.write(_ds(1), path, group="scale2", chunk_dims={"trial": 1}, mode="a")
    chunk = _chunks(path / "scale2")[-1]
    chunk.unlink()
    with pytest.raises(store.StoreError, match=r"r\.zarr/scale2 is damaged: missing .*") as err:
        store.read(path, group="scale2")
    assert chunk.relative_to(path / "scale2").as_posix() in str(err.value)
    # the other group is whole and still reads
    xr.testing.assert_equal(store.read(path, group="scale1"), _ds(0))


def test_an_altered_or_extra_file_is_reported(tmp_path):
    path = tmp_path / "r.zarr"
    store.write(_ds(), path, group="g", chunk_dims={"trial": 1})
    first, second = _chunks(path / "g")[:2]
    first.write_bytes(second.read_bytes())
    with pytest.raises(store.StoreError, match="altered"):
        store.read(path, group="g")
    store.write(_ds(), path, group="g", chunk_dims={"trial": 1})
    (path / "g" / "state" / "c" / "9").mkdir(parents=True)
    (path / "g" / "state" / "c" / "9" / "0").write_bytes(b"x")
    with pytest.raises(store.StoreError, match="unexpected state/c/9/0"):
        store.read(path, group="g")


def test_the_manifest_is_not_a_data_attribute(tmp_path):
    store.write(_ds(), tmp_path / "r.zarr", group="g")
    assert store.MANIFEST not in store.read(tmp_path / "r.zarr", group="g").attrs
