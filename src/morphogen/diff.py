"""Compare two results trees and explain the differences: ``morphogen diff``.

A results tree is ``results/<preset>/`` of a checkout. Either side of a comparison is a
directory (``results/<preset>`` itself, or a checkout holding it) or a git revision, which is
checked out in its own worktree under ``<repo>/.morphogen/diff/<sha>`` and built there with the
workflow (``snakemake figures --config preset=<preset>``); a finished build is reused.

What is compared, item by item:

- every CSV (``tables/*.csv``, ``<experiment>/seed<k>/train.csv``): rows are joined on their key
  columns (every non-numeric column, plus id columns such as ``seed``, ``trial``, ``step``);
  each value cell of a row present in both trees is an item, and rows present in one tree only
  are added or removed;
- every zarr store, group and variable: exact equality first (equal chunk bytes, or equal
  values); otherwise the largest absolute difference and, for variables with a ``step``
  dimension, the first step at which they differ;
- checkpoints: every array of ``arrays.npz`` (``metadata.json`` is provenance, see below);
- figures: PNGs and GIF frames by pixels (share of differing pixels, largest channel
  difference, on the 0-255 scale); a PDF by its bytes. With a tolerance given, a PDF whose bytes
  differ is within tolerance when the PNG of the same figure (its pixel rendering) is identical
  or within tolerance;
- any other file by its bytes; files present in one tree only.

Tolerances work as ``numpy.isclose`` with A as the reference: a number is within tolerance when
``|b - a| <= atol + rtol * |a|``. Both default to 0, so any difference exceeds. Differences that
are not numbers (shapes, dtypes, text, bytes, missing rows or files) always exceed.
``tables/timings.csv`` (wall times) is never compared: its rows are shown as ``info`` with
``--all``. ``logs/`` and ``benchmarks/`` are ignored, as are hidden files.

Provenance (the ``metadata.json`` of checkpoints and the ``provenance`` attribute of stores) is
collected from both trees, and the fields that differ (config hash per experiment, package
versions, XLA flags, device, code revision) are listed to explain why the results differ.
"""

from __future__ import annotations

import base64
import filecmp
import html
import io
import json
import math
import os
import re
import shlex
import subprocess
import sys
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

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


# ---------------------------------------------------------------------------------------------
# Comparing


def compare(a: Tree, b: Tree, *, rtol: float = 0.0, atol: float = 0.0, keep_all: bool = False) -> Report:
    """Compare two results trees; ``keep_all`` keeps identical and info items in the report too."""
    report = Report(a, b, rtol, atol)
    tol = _Tolerance(rtol, atol)
    ua, ub = units(a.path), units(b.path)
    image_status: dict[str, str] = {}
    pdfs = []
    for rel in sorted(ua.keys() | ub.keys(), key=_natural):
        pa, pb = ua.get(rel), ub.get(rel)
        volatile = rel in VOLATILE_FILES
        if pa is None or pb is None:
            p = pa or pb
            status = INFO if volatile else REMOVED if pb is None else ADDED
            item = Item(
                rel, "(file)", _kind(p), status, a="present" if pa else None, b="present" if pb else None
            )
            report.add(item, keep=keep_all or status != INFO)
            continue
        if rel in PROVENANCE_FILES:
            status = IDENTICAL if _same_bytes(pa, pb) else INFO
            report.add(Item(rel, "(provenance)", "file", status), keep=keep_all)
            continue
        kind = _kind(pa)
        if kind != _kind(pb):
            report.add(Item(rel, "(kind)", kind, EXCEEDS, a=kind, b=_kind(pb)))
            continue
        if kind == "pdf":
            pdfs.append((rel, pa, pb))
            continue
        part = Report(a, b, rtol, atol)  # merged once the whole unit has been read
        try:
            if kind == "table":
                compare_tables(rel, pa, pb, tol, part, keep_all=keep_all, volatile=volatile)
            elif kind == "store":
                compare_stores(rel, pa, pb, tol, part, keep_all=keep_all)
            elif kind == "checkpoint":
                compare_checkpoints(rel, pa, pb, tol, part, keep_all=keep_all)
            elif kind == "image":
                image_status[rel] = compare_images(rel, pa, pb, tol, part, keep_all=keep_all)
            else:
                _compare_bytes(rel, kind, pa, pb, part, keep_all=keep_all)
        except Exception as e:  # an unreadable file: fall back to its bytes, and say why
            part = Report(a, b, rtol, atol)
            _compare_bytes(rel, kind, pa, pb, part, keep_all=keep_all, note=f"not readable as {kind}: {e}")
        report.items += part.items
        report.counts.update(part.counts)
    for rel, pa, pb in pdfs:
        png = rel[: -len(".pdf")] + ".png"
        judged_by = (png, image_status.get(png)) if rtol or atol else None
        _compare_bytes(rel, "pdf", pa, pb, report, keep_all=keep_all, judged_by=judged_by)
    report.provenance = provenance_diff(collect_provenance(a.path), collect_provenance(b.path))
    return report


def _compare_bytes(rel, kind, pa, pb, report, *, keep_all, note=None, judged_by=None):
    if _same_bytes(pa, pb):
        report.add(Item(rel, "(bytes)", kind, IDENTICAL), keep=keep_all)
        return
    detail = {"note": note} if note else {}
    status = EXCEEDS
    if judged_by and judged_by[1] in (IDENTICAL, WITHIN):
        status = WITHIN
        detail["note"] = f"bytes differ; {Path(judged_by[0]).name} is {judged_by[1]}"
    report.add(Item(rel, "(bytes)", kind, status, a=f"{_size(pa)} B", b=f"{_size(pb)} B", detail=detail))


def _size(p: Path) -> int:
    return sum(f.stat().st_size for f in _files(p).values()) if p.is_dir() else p.stat().st_size


# --- tables ----------------------------------------------------------------------------------


def table_keys(df: pd.DataFrame) -> list[str]:
    """Key columns of a tidy table: non-numeric columns, and integer-like id columns (seed, step...)."""
    keys = []
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_bool_dtype(s):
            continue
        name = str(c).lower()
        id_like = (name in ID_COLUMNS or name.endswith("_id")) and _integer_like(s)
        if id_like or not pd.api.types.is_numeric_dtype(s):
            keys.append(c)
    return keys


def _integer_like(s: pd.Series) -> bool:
    v = s.dropna().to_numpy()
    return pd.api.types.is_integer_dtype(s) or bool(np.all(np.mod(v, 1) == 0))


def _key_str(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _cell(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _row_label(keys: dict[str, str]) -> str:
    parts = []
    for c, v in keys.items():
        if c == "#":
            parts.append(f"#{v}")
        elif v == "" or str(c).lower() in ID_COLUMNS or _NUMBER.match(v):
            parts.append(f"{c}={v or 'NaN'}")
        else:
            parts.append(v)
    return " ".join(parts) or "(row)"


def compare_tables(rel, pa, pb, tol, report, *, keep_all=False, volatile=False):
    """Join two CSV tables on their key columns and compare every value cell."""
    ta, tb = pd.read_csv(pa), pd.read_csv(pb)
    info = INFO if volatile else None
    common = [c for c in ta.columns if c in tb.columns]
    for c, side in [(c, REMOVED) for c in ta.columns if c not in tb.columns] + [
        (c, ADDED) for c in tb.columns if c not in ta.columns
    ]:
        report.add(Item(rel, f"(column {c})", "table", info or side), keep=keep_all or not info)
    keys = [c for c in common if c in set(table_keys(ta[common])) | set(table_keys(tb[common]))]
    values = [c for c in common if c not in keys]

    def keyed(t):
        k = pd.DataFrame({f"k{i}": t[c].map(_key_str) for i, c in enumerate(keys)}, index=t.index)
        if not keys:
            k["k#"] = t.index.astype(str)
        return k

    ka, kb = keyed(ta), keyed(tb)
    kcols = list(ka.columns)
    names = dict(zip(kcols, keys or ["row"]))
    if ka.duplicated().any() or kb.duplicated().any():
        ka["k#"] = ka.groupby(kcols).cumcount().astype(str)
        kb["k#"] = kb.groupby(kcols).cumcount().astype(str)
        kcols.append("k#")
        names["k#"] = "#"
    va = ta[values].rename(columns=lambda c: f"a:{c}")
    vb = tb[values].rename(columns=lambda c: f"b:{c}")
    m = pd.merge(
        pd.concat([ka, va], axis=1), pd.concat([kb, vb], axis=1), on=kcols, how="outer", indicator=True
    )
    m = m.reset_index(drop=True)
    key_values = {k: m[k].tolist() for k in kcols}
    labels: dict[int, tuple[str, dict]] = {}

    def label(i):
        if i not in labels:
            keyvals = {names[k]: key_values[k][i] for k in kcols}
            labels[i] = (_row_label(keyvals), keyvals)
        return labels[i]

    for side, status in (("left_only", REMOVED), ("right_only", ADDED)):
        prefix = "a:" if status == REMOVED else "b:"
        for i in np.flatnonzero(m["_merge"] == side):
            row = {c: _cell(m[prefix + c].iat[i]) for c in values}
            shown = row[values[0]] if len(values) == 1 else row
            text, keyvals = label(i)
            item = Item(rel, text, "table", info or status, detail={"key": keyvals})
            item.a, item.b = (shown, None) if status == REMOVED else (None, shown)
            report.add(item, keep=keep_all or not info)
    both = np.flatnonzero(m["_merge"] == "both")
    for c in values:
        sa, sb = m[f"a:{c}"].iloc[both], m[f"b:{c}"].iloc[both]
        numeric = pd.api.types.is_numeric_dtype(sa) and pd.api.types.is_numeric_dtype(sb)
        if numeric:
            fa, fb = sa.to_numpy(dtype=np.float64), sb.to_numpy(dtype=np.float64)
            nan_a, nan_b = np.isnan(fa), np.isnan(fb)
            equal = (fa == fb) | (nan_a & nan_b)
            with np.errstate(invalid="ignore", divide="ignore"):
                d = fb - fa
                absd = np.where(nan_a != nan_b, np.inf, np.abs(d))
                rel_change = np.where(fa != 0, d / np.abs(fa), np.nan)
            within = tol.within(fa, absd)
        else:
            equal = (sa.map(_key_str) == sb.map(_key_str)).to_numpy()
            within = np.zeros(len(equal), bool)
        n_equal = int(equal.sum())
        if not keep_all:
            report.counts[IDENTICAL] += 0 if info else n_equal
            if info:
                report.counts[INFO] += len(equal)
                continue
        rows = range(len(both)) if keep_all else np.flatnonzero(~equal)
        values_a, values_b = sa.to_numpy(), sb.to_numpy()
        for j in rows:
            i = int(both[j])
            text, keyvals = label(i)
            if len(values) > 1:
                text = f"{text}: {c}"
            status = info or _status(bool(equal[j]), bool(within[j]))
            a, b = _cell(values_a[j]), _cell(values_b[j])
            item = Item(rel, text, "table", status, a=a, b=b, detail={"key": keyvals, "column": c})
            if numeric and not equal[j]:
                item.change = _cell(d[j]) if math.isfinite(absd[j]) else None
                item.rel = _cell(rel_change[j])
            report.add(item, keep=keep_all or not info)


# --- arrays ----------------------------------------------------------------------------------


def _numeric(dtype) -> bool:
    return np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)


def array_diff(take_a: Callable, take_b: Callable, shape, dtypes, step_axis: int | None, tol) -> dict:
    """Compare two arrays of one shape block by block along the first axis.

    ``take_x(i, j)`` returns the numpy block ``[i:j]`` (the whole array for 0-d arrays). Returns
    ``equal``, ``within``, ``max_abs`` (None for non-numbers), ``n_differ``, ``size`` and
    ``first`` (index along ``step_axis`` of the first difference, or None).
    """
    numeric = all(_numeric(d) for d in dtypes)
    n0 = shape[0] if shape else 1
    row = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    block = max(1, BLOCK_BYTES // (8 * max(row, 1)))
    out = {"equal": True, "within": True, "max_abs": 0.0 if numeric else None, "n_differ": 0, "first": None}
    out["size"] = int(np.prod(shape)) if shape else 1
    for i in range(0, max(n0, 1), block):
        j = min(n0, i + block)
        a, b = np.asarray(take_a(i, j)), np.asarray(take_b(i, j))
        if a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
            continue
        if numeric:
            fa, fb = a.astype(np.float64), b.astype(np.float64)
            nan_a, nan_b = np.isnan(fa), np.isnan(fb)
            neq = (fa != fb) & ~(nan_a & nan_b)
            with np.errstate(invalid="ignore", divide="ignore"):
                absd = np.where(nan_a != nan_b, np.inf, np.abs(fb - fa))
            if neq.any():
                out["max_abs"] = max(out["max_abs"], float(absd[neq].max()))
                out["within"] &= bool(tol.within(fa[neq], absd[neq]).all())
        else:
            neq = np.asarray(a != b)
            out["within"] &= not neq.any()
        if not neq.any():
            continue
        out["equal"] = False
        out["n_differ"] += int(neq.sum())
        if step_axis is not None and neq.ndim:
            other = tuple(ax for ax in range(neq.ndim) if ax != step_axis)
            first = int(np.flatnonzero(neq.any(axis=other) if other else neq)[0])
            first += i if step_axis == 0 else 0
            out["first"] = first if out["first"] is None else min(out["first"], first)
    if out["equal"]:
        out["within"] = True
    return out


def _describe(dtype, shape) -> str:
    return f"{np.dtype(dtype).name}{list(shape)}"


def _array_item(rel, name, kind, dtype_a, shape_a, dtype_b, shape_b, diff, *, step_values=None) -> Item:
    a, b = _describe(dtype_a, shape_a), _describe(dtype_b, shape_b)
    if tuple(shape_a) != tuple(shape_b):
        return Item(rel, name, kind, EXCEEDS, a=a, b=b, detail={"note": "shape differs"})
    if diff is None:  # equal bytes
        return Item(rel, name, kind, IDENTICAL, a=a, b=b)
    status = _status(diff["equal"], diff["within"])
    if np.dtype(dtype_a) != np.dtype(dtype_b) and status != EXCEEDS:
        status = EXCEEDS
    detail = {"max_abs": diff["max_abs"], "n_differ": diff["n_differ"], "size": diff["size"]}
    if diff["first"] is not None:
        first = diff["first"]
        detail["first_step"] = _cell(step_values[first]) if step_values is not None else first
    return Item(
        rel,
        name,
        kind,
        status,
        a=a,
        b=b,
        change=diff["max_abs"] if not diff["equal"] else None,
        detail=detail,
    )


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


def _open_group(path: Path, group: str):
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(path, group=group or None, consolidated=False, chunks=None)


def compare_stores(rel, pa, pb, tol, report, *, keep_all=False):
    """Every group and variable of two zarr stores; attributes other than provenance (and the
    chunk manifest, which follows the bytes compared below) too."""
    from morphogen.store import MANIFEST  # imports zarr and xarray: only when stores are compared

    ga, gb = _store_groups(pa), _store_groups(pb)
    for g in sorted(set(ga) ^ set(gb), key=_natural):
        report.add(Item(rel, g or "/", "store", REMOVED if g in ga else ADDED))
    for g in sorted(set(ga) & set(gb), key=_natural):
        da, db = _open_group(pa, g), _open_group(pb, g)
        prefix = f"{g}/" if g else ""
        attrs_a = {k: v for k, v in da.attrs.items() if k not in ("provenance", MANIFEST)}
        attrs_b = {k: v for k, v in db.attrs.items() if k not in ("provenance", MANIFEST)}
        same = json.dumps(_jsonable(attrs_a), sort_keys=True) == json.dumps(
            _jsonable(attrs_b), sort_keys=True
        )
        keys = sorted(k for k in attrs_a.keys() | attrs_b.keys() if attrs_a.get(k) != attrs_b.get(k))
        detail = {} if same else {"note": "differ: " + ", ".join(keys)}
        item = Item(rel, f"{prefix}(attributes)", "store", IDENTICAL if same else EXCEEDS, detail=detail)
        report.add(item, keep=keep_all or not same)
        va, vb = set(da.variables), set(db.variables)
        for v in sorted(va ^ vb):
            report.add(Item(rel, prefix + v, "store", REMOVED if v in va else ADDED))
        for v in sorted(va & vb):
            xa, xb = da.variables[v], db.variables[v]
            diff = None
            if xa.dims != xb.dims or xa.shape != xb.shape:
                item = _array_item(rel, prefix + v, "store", xa.dtype, xa.shape, xb.dtype, xb.shape, diff)
                item.detail["note"] = (
                    f"dims {xa.dims} -> {xb.dims}" if xa.dims != xb.dims else "shape differs"
                )
                report.add(item)
                continue
            if not _same_bytes(pa / g / v, pb / g / v):
                step_axis = xa.dims.index("step") if "step" in xa.dims else None
                take = lambda x: lambda i, j: x[i:j].values if x.ndim else x.values  # noqa: E731
                diff = array_diff(take(xa), take(xb), xa.shape, (xa.dtype, xb.dtype), step_axis, tol)
                steps = da["step"].values if step_axis is not None and "step" in da.coords else None
            else:
                steps = None
            item = _array_item(
                rel, prefix + v, "store", xa.dtype, xa.shape, xb.dtype, xb.shape, diff, step_values=steps
            )
            report.add(item, keep=keep_all or _changed(item))


def compare_checkpoints(rel, pa, pb, tol, report, *, keep_all=False):
    """Every array of two checkpoints' ``arrays.npz``."""
    from morphogen import checkpoint  # imports JAX: only when a tree has checkpoints

    fa, fb = pa / "arrays.npz", pb / "arrays.npz"
    if not (fa.exists() and fb.exists()):
        report.add(Item(rel, "arrays.npz", "checkpoint", REMOVED if fa.exists() else ADDED))
        return
    same_file = _same_bytes(fa, fb)
    aa, ab = checkpoint.read_arrays(pa), checkpoint.read_arrays(pb)
    for k in sorted(aa.keys() ^ ab.keys(), key=_natural):
        report.add(Item(rel, k, "checkpoint", REMOVED if k in aa else ADDED))
    for k in sorted(aa.keys() & ab.keys(), key=_natural):
        x, y = aa[k], ab[k]
        diff = None
        if not same_file and x.shape == y.shape:
            take = lambda arr: lambda i, j: arr[i:j] if arr.ndim else arr  # noqa: E731
            diff = array_diff(take(x), take(y), x.shape, (x.dtype, y.dtype), None, tol)
        item = _array_item(rel, k, "checkpoint", x.dtype, x.shape, y.dtype, y.shape, diff)
        report.add(item, keep=keep_all or _changed(item))


# --- figures ---------------------------------------------------------------------------------


def read_image(path: Path) -> np.ndarray:
    """Pixels of a PNG ``(y, x, channel)`` or of every frame of a GIF ``(frame, y, x, channel)``."""
    import imageio.v3 as iio

    return np.asarray(iio.imread(path, index=None) if path.suffix.lower() == ".gif" else iio.imread(path))


def compare_images(rel, pa, pb, tol, report, *, keep_all=False) -> str:
    """Pixel difference of two images; returns the status."""
    if _same_bytes(pa, pb):
        item = Item(rel, "pixels", "image", IDENTICAL)
        report.add(item, keep=keep_all)
        return item.status
    x, y = read_image(pa), read_image(pb)
    a, b = _describe(x.dtype, x.shape), _describe(y.dtype, y.shape)
    if x.shape != y.shape:
        item = Item(rel, "pixels", "image", EXCEEDS, a=a, b=b, detail={"note": "shape differs"})
    else:
        fx, fy = x.astype(np.float64), y.astype(np.float64)
        d = np.abs(fy - fx)
        pixel = d.any(axis=-1) if x.ndim >= 3 else d > 0
        equal = not pixel.any()
        status = _status(equal, bool(tol.within(fx, d).all()))
        detail = {
            "fraction_pixels": float(pixel.mean()),
            "max_abs": float(d.max()),
            "n_differ": int(pixel.sum()),
        }
        item = Item(
            rel, "pixels", "image", status, a=a, b=b, change=None if equal else float(d.max()), detail=detail
        )
    report.add(item, keep=keep_all or _changed(item))
    return item.status


# ---------------------------------------------------------------------------------------------
# Provenance

TREE_FIELDS = (
    "xla_flags",
    "device_kind",
    "device_version",
    "cpu_model",
    "cpu_simd",
    "cpu_vendor",
    "cpu_count",
    "platform",
    "x64",
    "morphogen_version",
    "preset",
    "git_commit",
)


def collect_provenance(root: Path) -> list[dict]:
    """Provenance records of a tree: each checkpoint's metadata.json and each store group's attribute."""
    records = []
    for rel, p in units(root).items():
        try:
            if p.is_dir() and (p / "metadata.json").exists():
                records.append({"source": rel, **json.loads((p / "metadata.json").read_text())})
            elif p.suffix == ".zarr":
                import zarr

                for g in _store_groups(p):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        prov = dict(zarr.open_group(str(p), mode="r", path=g or None).attrs).get("provenance")
                    if isinstance(prov, str):
                        prov = json.loads(prov)
                    if isinstance(prov, dict):
                        records.append({"source": f"{rel}/{g}", **prov})
        except Exception:  # provenance explains; an unreadable record is reported as a difference elsewhere
            continue
    return records


def _summary(records: Iterable[dict]) -> dict[tuple, set[str]]:
    out: dict[tuple, set[str]] = defaultdict(set)
    for r in records:
        if "config_hash" in r and r.get("experiment"):
            out[("config_hash", str(r["experiment"]))].add(str(r["config_hash"]))
        for name, version in sorted((r.get("packages") or {}).items()):
            out[("package", name)].add(str(version))
        for f in TREE_FIELDS:
            if f in r:
                out[(f, "")].add(str(r[f]))
    return out


def provenance_diff(records_a: list[dict], records_b: list[dict]) -> list[dict]:
    """The provenance fields whose values differ between two trees, most explanatory first."""
    sa, sb = _summary(records_a), _summary(records_b)
    order = {"config_hash": 0, "package": 1, **{f: 2 + i for i, f in enumerate(TREE_FIELDS)}}
    out = []
    for key in sorted(sa.keys() & sb.keys(), key=lambda k: (order[k[0]], k[1])):
        if sa[key] != sb[key]:
            what, name = key
            out.append({"field": what, "name": name, "a": sorted(sa[key]), "b": sorted(sb[key])})
    return out


def _short(field_name: str, value: str) -> str:
    if field_name in ("config_hash", "git_commit"):
        dirty = value.endswith("-dirty")
        core = value.removesuffix("-dirty")
        return (core[:8] + "…" if len(core) > 8 else core) + ("-dirty" if dirty else "")
    return json.dumps(value) if value == "" or " " in value else value


def explain(diffs: list[dict]) -> str:
    """One line naming the provenance fields that differ."""
    parts = []
    for d in diffs:
        a = ", ".join(_short(d["field"], v) for v in d["a"])
        b = ", ".join(_short(d["field"], v) for v in d["b"])
        if d["field"] == "config_hash":
            parts.append(f"config_hash of {d['name']} differs ({a} → {b})")
        elif d["field"] == "package":
            parts.append(f"{d['name']} {a} → {b}")
        else:
            parts.append(f"{d['field']} {a} → {b}")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Resolving A and B: directories, revisions, the working tree


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def repo_root(start: Path) -> Path:
    try:
        proc = _git(start, "rev-parse", "--show-toplevel")
    except OSError as e:
        raise DiffError(f"git is not available: {e}") from e
    if proc.returncode != 0:
        raise DiffError(f"{start} is not inside a git repository")
    return Path(proc.stdout.strip())


def _is_tree(p: Path) -> bool:
    return any((p / d).is_dir() for d in ("tables", "figures")) or any(p.glob("*/seed*"))


def find_results(path: Path, preset: str) -> Path | None:
    """The results tree a directory names: ``results/<preset>`` in it, itself, or ``<preset>`` in it."""
    for candidate in (path / "results" / preset, path, path / preset):
        if candidate.is_dir() and _is_tree(candidate):
            return candidate
    return None


def run_workflow(checkout: Path, preset: str, cores: int, log: Path) -> int:
    """Build ``figures`` of ``preset`` in a checkout with this interpreter; output goes to ``log``.

    Returns the exit status. The checkout's own ``src/`` comes first on ``PYTHONPATH``, so its
    library is the one that runs.
    """
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        str(cores),
        "figures",
        "--config",
        f"preset={preset}",
    ]
    path = os.pathsep.join(p for p in (str(checkout / "src"), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        fh.write(f"# in {checkout}\n$ {shlex.join(cmd)}\n")
        fh.flush()
        return subprocess.run(cmd, cwd=checkout, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode


def _build(label: str, checkout: Path, preset: str, cores: int, log: Path) -> Path:
    rc = run_workflow(checkout, preset, cores, log)
    results = checkout / "results" / preset
    if rc:
        tail = ""
        if log.exists():
            lines = log.read_text(errors="replace").splitlines()[-15:]
            tail = "\n" + "\n".join("  " + line for line in lines)
        raise BuildError(f"building {label} failed (snakemake exit status {rc}); log: {log}{tail}")
    if not results.is_dir():
        raise BuildError(f"building {label} wrote no {results}; log: {log}")
    return results


def revision_tree(
    root: Path, rev: str, sha: str, *, preset: str, cores: int, cache: Path, rebuild=False
) -> Path:
    """The results tree of commit ``sha``, built in the worktree ``<cache>/<sha>`` unless built already."""
    wt = cache / sha
    label = f"{rev} ({sha[:10]})"
    done = cache / f"{sha}.{preset}.done"
    if not (wt / ".git").exists():
        cache.mkdir(parents=True, exist_ok=True)
        if wt.exists() and any(wt.iterdir()):
            raise DiffError(f"{wt} exists but is not a git worktree; remove it to build {label}")
        # --force: the path may still be registered from a worktree whose directory was deleted
        proc = _git(root, "worktree", "add", "--force", "--detach", str(wt), sha)
        if proc.returncode != 0:
            raise DiffError(f"cannot check out {label} in {wt}: {proc.stderr.strip()}")
    elif _git(wt, "rev-parse", "HEAD").stdout.strip() != sha:
        done.unlink(missing_ok=True)
        proc = _git(wt, "checkout", "--quiet", "--detach", sha)
        if proc.returncode != 0:
            raise DiffError(f"cannot check out {label} in {wt}: {proc.stderr.strip()}")
    results = wt / "results" / preset
    if results.is_dir() and done.exists() and not rebuild:
        _progress(f"{label}: reusing the build in {results}")
        return results
    log = cache / f"{sha}.{preset}.log"
    _progress(f"building {label}, preset {preset}, in {wt} (log: {log})")
    done.unlink(missing_ok=True)
    results = _build(label, wt, preset, cores, log)
    done.write_text(f"{sha} {preset}\n")
    return results


def resolve(
    spec: str | None, *, repo: Path, preset: str, cores: int, cache: Path | None = None, rebuild=False
) -> Tree:
    """A results directory, a git revision, or (``None``) the working tree's ``results/<preset>``."""
    if spec is not None:
        path = Path(spec).expanduser()
        if path.is_dir():
            results = find_results(path, preset)
            if results is None:
                raise DiffError(
                    f"{spec} holds no results tree (expected results/{preset}/ in it, or tables/, "
                    "figures/ and <experiment>/seed<k>/ directly)"
                )
            return Tree(spec, results)
        if path.exists():
            raise DiffError(f"{spec} is a file, not a results directory or a revision")
    try:
        root = repo_root(repo)
    except DiffError as e:
        if spec is None:
            raise DiffError(f"no B given, and the working tree is unknown: {e}") from e
        raise DiffError(f"{spec} is not a directory, and not a revision: {e}") from e
    cache = cache or root / CACHE
    if spec is None:
        # Always run the workflow here: Snakemake brings results up to date with the edits in
        # the working tree (rerunning only what changed), and is quick when nothing did.
        log = cache / f"workspace.{preset}.log"
        _progress(f"bringing the working tree's results up to date, preset {preset} (log: {log})")
        results = _build("the working tree", root, preset, cores, log)
        return Tree("workspace", results)
    proc = _git(root, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    if proc.returncode != 0:
        raise DiffError(f"{spec} is neither a directory nor a revision of the repository at {root}")
    sha = proc.stdout.strip()
    results = revision_tree(root, spec, sha, preset=preset, cores=cores, cache=cache, rebuild=rebuild)
    return Tree(spec, results, revision=sha)


# ---------------------------------------------------------------------------------------------
# Output


def _fmt(v, precision: int) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return f"{float(v):.{precision}g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x, precision)}" for k, x in v.items())
    return str(v)


def _change(item: Item, precision: int) -> str:
    d = item.detail
    if item.kind == "table" and item.change is not None:
        text = f"{item.change:+.{precision}g}"
        if item.rel is not None and math.isfinite(item.rel):
            text += f" ({item.rel * 100:+.{min(precision, 3)}g}%)"
        return text
    parts = []
    if "fraction_pixels" in d and item.change is not None:
        parts.append(f"{d['fraction_pixels'] * 100:.{min(precision, 3)}g}% of pixels")
    if item.change is not None:
        parts.append(f"max |Δ| {item.change:.{precision}g}")
    if d.get("first_step") is not None:
        parts.append(f"first step {d['first_step']}")
    if "n_differ" in d and "size" in d and d["n_differ"]:
        parts.append(f"{d['n_differ']} of {d['size']} differ")
    if d.get("note"):
        parts.append(d["note"])
    return "; ".join(parts)


COLUMNS = ("Path", "Item", "A", "B", "Change", "Status")
MAX_CELL = 60


def rows(report: Report, *, show_all: bool, precision: int, limit: int) -> tuple[list[tuple], list[str]]:
    """Table rows to show, and notes on what was left out by ``limit`` (items per file, 0 for all)."""
    out, notes = [], []
    per_path: Counter = Counter()
    left: Counter = Counter()
    for it in report.sorted_items():
        if not (show_all or _changed(it)):
            continue
        per_path[it.path] += 1
        if limit and per_path[it.path] > limit:
            left[it.path] += 1
            continue
        cells = (
            it.path,
            it.item,
            _fmt(it.a, precision),
            _fmt(it.b, precision),
            _change(it, precision),
            it.status,
        )
        out.append(tuple(c if len(c) <= MAX_CELL else c[: MAX_CELL - 1] + "…" for c in cells))
    for path in sorted(left, key=_natural):
        notes.append(f"{path}: {left[path]} more not shown (--limit 0 shows all)")
    return out, notes


def summary_line(report: Report) -> str:
    c = report.counts
    tol = f"rtol={report.rtol:g}, atol={report.atol:g}"
    n = sum(c[s] for s in STATUS_ORDER if s != INFO)
    if not report.differs:
        return f"no differences: {n} items compared, all identical ({tol})"
    parts = [f"{c[s]} {s}" for s in (EXCEEDS, REMOVED, ADDED, WITHIN, IDENTICAL) if c[s]]
    verdict = "exceeds tolerance" if report.exceeds else "within tolerance"
    return f"{n} items compared: " + ", ".join(parts) + f" ({tol}): {verdict}"


def provenance_line(report: Report, show_all: bool = False) -> str | None:
    if report.provenance:
        return "provenance: " + explain(report.provenance)
    if report.differs or show_all:
        return (
            "provenance: no recorded difference (config hashes, code revision, packages, device, XLA flags)"
        )
    return None


def _header(t: Tree, name: str) -> str:
    rev = f" = {t.revision[:10]}" if t.revision else ""
    where = "" if Path(t.label) == t.path else f" ({t.path})"
    return f"{name}: {t.label}{rev}{where}"


def render_text(report: Report, *, show_all=False, precision=5, limit=50) -> str:
    table, notes = rows(report, show_all=show_all, precision=precision, limit=limit)
    lines = [_header(report.a, "A"), _header(report.b, "B"), ""]
    if table:
        widths = [max(len(r[i]) for r in [COLUMNS, *table]) for i in range(len(COLUMNS))]
        for r in [COLUMNS, *table]:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        lines += notes + [""]
    lines.append(summary_line(report))
    prov = provenance_line(report, show_all)
    if prov:
        lines.append(prov)
    return "\n".join(lines) + "\n"


def render_markdown(report: Report, *, show_all=False, precision=5, limit=50) -> str:
    table, notes = rows(report, show_all=show_all, precision=precision, limit=limit)
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    lines = [f"- {esc(_header(report.a, 'A'))}", f"- {esc(_header(report.b, 'B'))}", ""]
    if table:
        lines.append("| " + " | ".join(COLUMNS) + " |")
        lines.append("|" + "---|" * len(COLUMNS))
        lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in table]
        lines += [""] + [f"{n}  " for n in notes]
    lines.append(summary_line(report))
    prov = provenance_line(report, show_all)
    if prov:
        lines += ["", prov]
    return "\n".join(lines) + "\n"


def _data_uri(data: bytes, suffix: str) -> str:
    mime = {".png": "image/png", ".gif": "image/gif"}[suffix.lower()]
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def difference_image(x: np.ndarray, y: np.ndarray) -> bytes:
    """PNG of A's pixels, faded, with every pixel that differs in B in red."""
    import imageio.v3 as iio

    rgb = x[..., :3].astype(np.float64) if x.ndim == 3 else np.repeat(x[..., None], 3, -1).astype(np.float64)
    gray = rgb.mean(axis=-1, keepdims=True)
    img = np.repeat(255 - 0.25 * (255 - gray), 3, axis=-1)
    differs = np.abs(x.astype(np.int32) - y.astype(np.int32))
    differs = differs.any(axis=-1) if differs.ndim == 3 else differs > 0
    img[differs] = (220, 0, 0)
    buf = io.BytesIO()
    iio.imwrite(buf, img.astype(np.uint8), extension=".png")
    return buf.getvalue()


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
tr.exceeds td, tr.added td, tr.removed td { background: #fde8e8; }
tr.within td { background: #fff6dd; }
.side { display: flex; gap: 1em; align-items: flex-start; }
.side figure { margin: 0; flex: 1; min-width: 0; }
.side img { max-width: 100%; border: 1px solid #ccc; }
figcaption { font-size: 0.9em; color: #555; }
"""


def render_html(report: Report, *, show_all=False, precision=5, limit=50) -> str:
    """A self-contained page: the summary table, and each changed figure of A and B side by side."""
    e = html.escape
    table, notes = rows(report, show_all=show_all, precision=precision, limit=limit)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>morphogen diff: {e(report.a.label)} vs {e(report.b.label)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>morphogen diff</h1>",
        f"<p>{e(_header(report.a, 'A'))}<br>{e(_header(report.b, 'B'))}</p>",
        f"<p><strong>{e(summary_line(report))}</strong></p>",
    ]
    prov = provenance_line(report, show_all)
    if prov:
        out.append(f"<p>{e(prov)}</p>")
    if table:
        out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in COLUMNS) + "</tr>")
        for r in table:
            cls = r[-1].split()[0]
            out.append(f'<tr class="{cls}">' + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>")
        out.append("</table>")
        out += [f"<p>{e(n)}</p>" for n in notes]
    figures = [it for it in report.sorted_items() if it.kind == "image" and _changed(it)]
    if figures:
        out.append("<h2>Figures</h2>")
    for it in figures:
        out.append(f"<h3>{e(it.path)}</h3><p>{e(it.status)}: {e(_change(it, precision))}</p>")
        out.append('<div class="side">')
        pa, pb = report.a.path / it.path, report.b.path / it.path
        for tree, p in ((report.a, pa), (report.b, pb)):
            if p.is_file():
                src = _data_uri(p.read_bytes(), p.suffix)
                caption = f"<figcaption>{e(tree.label)}</figcaption>"
                out.append(f'<figure><img src="{src}" alt="{e(tree.label)}">{caption}</figure>')
            else:
                out.append(f"<figure><figcaption>{e(tree.label)}: absent</figcaption></figure>")
        if pa.is_file() and pb.is_file() and pa.suffix.lower() == ".png":
            x, y = read_image(pa), read_image(pb)
            if x.shape == y.shape:
                src = _data_uri(difference_image(x, y), ".png")
                caption = "<figcaption>difference (differing pixels in red)</figcaption>"
                out.append(f'<figure><img src="{src}" alt="difference">{caption}</figure>')
        out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# The command


def run(
    a: str | None = None,
    b: str | None = None,
    *,
    preset: str = "test",
    repo: str | Path = ".",
    cache: str | Path | None = None,
    cores: int | None = None,
    rebuild: bool = False,
    rtol: float = 0.0,
    atol: float = 0.0,
    show_all: bool = False,
    fmt: str = "text",
    precision: int = 5,
    limit: int = 50,
    html_path: str | Path | None = None,
    out: TextIO | None = None,
) -> int:
    """``morphogen diff``: 0 when nothing exceeds tolerance, 1 when something does, 2 on bad arguments."""
    out = out or sys.stdout
    cores = cores or os.cpu_count() or 1
    try:
        common = {"repo": Path(repo), "preset": preset, "cores": cores, "rebuild": rebuild}
        if cache is not None:
            common["cache"] = Path(cache).resolve()
        tree_a = resolve(a or "HEAD", **common)
        tree_b = resolve(b, **common)
    except DiffError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = compare(tree_a, tree_b, rtol=rtol, atol=atol, keep_all=show_all)
    if fmt == "json":
        out.write(json.dumps(report.to_dict(show_all), indent=2, ensure_ascii=False) + "\n")
    elif fmt == "md":
        out.write(render_markdown(report, show_all=show_all, precision=precision, limit=limit))
    else:
        out.write(render_text(report, show_all=show_all, precision=precision, limit=limit))
    if html_path:
        page = render_html(report, show_all=show_all, precision=precision, limit=limit)
        Path(html_path).write_text(page, encoding="utf-8")
        _progress(f"wrote {html_path}")
    return 1 if report.exceeds else 0
