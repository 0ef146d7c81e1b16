"""Comparing two trees item by item: tables, zarr stores, checkpoints, figures, bytes."""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from morphogen.diff.core import (
    ADDED,
    BLOCK_BYTES,
    EXCEEDS,
    ID_COLUMNS,
    IDENTICAL,
    INFO,
    PROVENANCE_FILES,
    REMOVED,
    VOLATILE_FILES,
    WITHIN,
    Item,
    Report,
    Tree,
    _changed,
    _files,
    _jsonable,
    _kind,
    _natural,
    _same_bytes,
    _status,
    _store_groups,
    _Tolerance,
    units,
)
from morphogen.diff.provenance import collect_provenance, provenance_diff

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
