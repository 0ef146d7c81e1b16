"""Items, reports, tolerances and the walk over a results tree."""

from __future__ import annotations

import filecmp
import math
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IDENTICAL, WITHIN, EXCEEDS, ADDED, REMOVED, INFO = (
    "identical",
    "within tolerance",
    "exceeds",
    "added",
    "removed",
    "info",
)
FAILING = (EXCEEDS, ADDED, REMOVED)
STATUS_ORDER = {EXCEEDS: 0, REMOVED: 1, ADDED: 2, WITHIN: 3, IDENTICAL: 4, INFO: 5}

IGNORED_DIRS = ("logs", "benchmarks")  # top-level directories of a results tree that never compare
VOLATILE_FILES = ("tables/timings.csv",)  # wall times: shown as info, never compared
# What the results were made with (commit, versions, config hashes): it explains a difference
# (see the provenance line) and is never one itself.
PROVENANCE_FILES = ("provenance.json",)
ID_COLUMNS = {"seed", "trial", "step", "scale", "grid", "epoch", "frame", "index", "id", "generation"}
IMAGE_SUFFIXES = (".png", ".gif")
BLOCK_BYTES = 32 * 2**20  # arrays are compared in blocks along their first axis of about this size
CACHE = Path(".morphogen") / "diff"  # relative to the repository root


class DiffError(Exception):
    """A bad argument: a path or revision that names no results tree (exit status 2)."""


class BuildError(DiffError):
    """The workflow failed to build the results of a revision."""


# ---------------------------------------------------------------------------------------------
# Items and reports


@dataclass
class Item:
    """One compared thing: a table cell or row, a store variable, a checkpoint array, a file."""

    path: str  # relative to the results tree
    item: str  # what inside the file: row key and column, group/variable, array name, "pixels"
    kind: str  # table, store, checkpoint, image, pdf, file
    status: str
    a: Any = None
    b: Any = None
    change: float | None = None  # b - a for numbers; the largest absolute difference for arrays
    rel: float | None = None  # (b - a) / |a| for numbers
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return _jsonable(
            {
                "path": self.path,
                "item": self.item,
                "kind": self.kind,
                "status": self.status,
                "a": self.a,
                "b": self.b,
                "change": self.change,
                "rel": self.rel,
                **self.detail,
            }
        )


@dataclass
class Tree:
    """One side of a comparison: a results directory, and the revision it was built from."""

    label: str
    path: Path
    revision: str | None = None

    def to_dict(self) -> dict:
        return {"label": self.label, "path": str(self.path), "revision": self.revision}


@dataclass
class Report:
    a: Tree
    b: Tree
    rtol: float = 0.0
    atol: float = 0.0
    items: list[Item] = field(default_factory=list)  # every item worth showing
    counts: Counter = field(default_factory=Counter)  # every item compared, by status
    provenance: list[dict] = field(default_factory=list)

    def add(self, item: Item, keep: bool = True) -> None:
        self.counts[item.status] += 1
        if keep:
            self.items.append(item)

    @property
    def exceeds(self) -> bool:
        return any(self.counts[s] for s in FAILING)

    @property
    def differs(self) -> bool:
        return self.exceeds or bool(self.counts[WITHIN])

    def sorted_items(self) -> list[Item]:
        return sorted(self.items, key=lambda i: (_natural(i.path), STATUS_ORDER[i.status], _natural(i.item)))

    def to_dict(self, show_all: bool = False) -> dict:
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "rtol": self.rtol,
            "atol": self.atol,
            "exceeds": self.exceeds,
            "counts": {s: self.counts[s] for s in STATUS_ORDER if self.counts[s]},
            "items": [i.to_dict() for i in self.sorted_items() if show_all or _changed(i)],
            "provenance": self.provenance,
        }


def _changed(item: Item) -> bool:
    return item.status not in (IDENTICAL, INFO)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else str(x)
    return x


def _natural(s: str) -> tuple:
    """Sort key that puts step=2 before step=10."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s) if t)


class _Tolerance:
    def __init__(self, rtol: float, atol: float):
        self.rtol, self.atol = float(rtol), float(atol)

    def within(self, a, absdiff):
        """Elementwise ``|b - a| <= atol + rtol * |a|`` (False where either side is NaN)."""
        with np.errstate(invalid="ignore"):
            return absdiff <= self.atol + self.rtol * np.abs(a)


def _status(equal: bool, within: bool) -> str:
    return IDENTICAL if equal else WITHIN if within else EXCEEDS


# ---------------------------------------------------------------------------------------------
# Walking a tree


def _kind(path: Path) -> str:
    if path.is_dir():
        if path.suffix == ".zarr":
            return "store"
        return "checkpoint"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "table"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix == ".pdf":
        return "pdf"
    return "file"


def units(root: Path) -> dict[str, Path]:
    """The comparable units of a results tree, by path relative to it: files, stores, checkpoints."""
    out: dict[str, Path] = {}

    def visit(d: Path, rel: str) -> None:
        for p in sorted(d.iterdir()):
            if p.name.startswith(".") or (not rel and p.name in IGNORED_DIRS and p.is_dir()):
                continue
            r = rel + p.name
            if p.is_dir():
                if p.suffix == ".zarr" or (p / "arrays.npz").exists():
                    out[r] = p
                else:
                    visit(p, r + "/")
            elif p.is_file():
                out[r] = p

    visit(root, "")
    return out


def _files(d: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(d)): p
        for p in sorted(d.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(d).parts)
    }


def _same_bytes(a: Path, b: Path) -> bool:
    """Files, or directories file by file (hidden files aside), with equal bytes."""
    if a.is_file() and b.is_file():
        return a.stat().st_size == b.stat().st_size and filecmp.cmp(a, b, shallow=False)
    if a.is_dir() and b.is_dir():
        fa, fb = _files(a), _files(b)
        return fa.keys() == fb.keys() and all(_same_bytes(fa[k], fb[k]) for k in fa)
    return False


def _store_groups(path: Path) -> list[str]:
    """Every group of a zarr store that holds arrays ("" for the root), by path."""
    import zarr

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stray files in a store (e.g. workflow timestamps)
        root = zarr.open_group(str(path), mode="r")

        def walk(g, prefix):
            if list(g.array_keys()):
                out.append(prefix.rstrip("/"))
            for name, sub in sorted(g.groups()):
                walk(sub, f"{prefix}{name}/")

        walk(root, "")
    return sorted(out)
