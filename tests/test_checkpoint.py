"""Checkpoints: round trip, atomic replacement, clear errors for damaged ones."""

import jax.numpy as jnp
import numpy as np
import pytest

from morphogen import checkpoint


def _tree():
    return {"w": jnp.arange(6.0).reshape(2, 3), "step": jnp.asarray(7, jnp.int32), "b": [np.float32(2.5)]}


def test_round_trip_keeps_shapes_dtypes_and_values(tmp_path):
    tree = _tree()
    checkpoint.save(tmp_path / "ck", tree, {"seed": 3})
    loaded, meta = checkpoint.load(tmp_path / "ck", tree)
    assert meta == {"seed": 3}
    for k in ("w", "step"):
        assert loaded[k].shape == np.shape(tree[k]) and loaded[k].dtype == tree[k].dtype
        np.testing.assert_array_equal(loaded[k], tree[k])
    assert loaded["b"][0] == 2.5


def test_saving_twice_gives_the_same_bytes_and_leaves_no_temporary(tmp_path):
    checkpoint.save(tmp_path / "a", _tree(), {"x": 1})
    checkpoint.save(tmp_path / "b", _tree(), {"x": 1})
    for f in ("arrays.npz", "metadata.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    checkpoint.save(tmp_path / "a", {**_tree(), "w": jnp.zeros((2, 3))}, {"x": 2})  # replace
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    assert checkpoint.read_metadata(tmp_path / "a") == {"x": 2}


def test_corrupted_checkpoint_is_reported_with_its_path(tmp_path):
    checkpoint.save(tmp_path / "ck", _tree(), {})
    (tmp_path / "ck" / "arrays.npz").write_bytes(b"not a zip file")
    with pytest.raises(checkpoint.CheckpointError, match=str(tmp_path / "ck")):
        checkpoint.load(tmp_path / "ck", _tree())


def test_checkpoint_of_another_model_is_refused(tmp_path):
    checkpoint.save(tmp_path / "ck", _tree(), {})
    with pytest.raises(checkpoint.CheckpointError, match="shape"):
        checkpoint.load(tmp_path / "ck", {**_tree(), "w": jnp.zeros((3, 3))})


def test_no_pickle_in_the_arrays(tmp_path):
    checkpoint.save(tmp_path / "ck", _tree(), {})
    with np.load(tmp_path / "ck" / "arrays.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


def test_latest_finds_the_newest_step(tmp_path):
    for step in (5, 40, 10):
        checkpoint.save(tmp_path / f"step_{step:07d}", _tree(), {"step": step})
    assert checkpoint.latest(tmp_path).name == "step_0000040"
    assert checkpoint.latest(tmp_path / "missing") is None
