"""Why two trees differ: the provenance fields of their checkpoints and stores."""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from morphogen.diff.core import _store_groups, units

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
