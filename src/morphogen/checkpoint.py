"""Training checkpoints: save, find, load. Atomic, no pickle.

A checkpoint is a directory holding ``arrays.npz`` (every leaf of the training state, keyed by
its pytree path, loaded with ``allow_pickle=False``) and ``metadata.json``. It is written to a
temporary sibling directory and renamed into place, so a reader sees either no checkpoint or a
whole one. A checkpoint that cannot be read is reported with its path, never silently replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

ARRAYS = "arrays.npz"
METADATA = "metadata.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupted or does not fit the model it is loaded into."""


def _flatten(tree) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    out = {}
    for path, leaf in leaves:
        name = jax.tree_util.keystr(path)
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        out[name] = np.asarray(leaf)
    return out


def save(path: str | Path, tree, metadata: dict[str, Any]) -> Path:
    """Write ``tree`` and ``metadata`` to the directory ``path`` atomically (replacing it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    arrays = _flatten(tree)
    # np.savez stores each array as a .npy in a zip; fixed member order and dates make the
    # bytes depend only on the arrays.
    with zipfile.ZipFile(tmp / ARRAYS, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as f:
                np.lib.format.write_array(f, np.asarray(arrays[name], order="C"), allow_pickle=False)
    (tmp / METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        if old.exists():
            shutil.rmtree(old)
        path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old)
    else:
        tmp.rename(path)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return json.loads((path / METADATA).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {path} has no readable {METADATA}: {e}") from e


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path / ARRAYS, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupted or unreadable ({ARRAYS}): {e}") from e


def load(path: str | Path, template):
    """Load a checkpoint into the structure of ``template``; returns (tree, metadata)."""
    path = Path(path)
    metadata = read_metadata(path)
    arrays = read_arrays(path)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    out = []
    for p, leaf in leaves:
        name = jax.tree_util.keystr(p)
        if name not in arrays:
            raise CheckpointError(f"checkpoint {path} lacks {name}; it was written for another model")
        value = arrays[name]
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            out.append(jax.random.wrap_key_data(value))
            continue
        if value.shape != np.shape(leaf) or value.dtype != np.asarray(leaf).dtype:
            raise CheckpointError(
                f"checkpoint {path}: {name} has shape {value.shape} {value.dtype}, "
                f"the model expects {np.shape(leaf)} {np.asarray(leaf).dtype}"
            )
        out.append(value)
    return jax.tree_util.tree_unflatten(treedef, out), metadata


def latest(directory: str | Path) -> Path | None:
    """The checkpoint ``step_<n>`` with the largest n under ``directory`` (None if none)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    steps = sorted(
        (int(p.name.split("_")[1]), p)
        for p in directory.iterdir()
        if p.is_dir() and p.name.startswith("step_") and p.name.split("_")[1].isdigit()
    )
    return steps[-1][1] if steps else None
