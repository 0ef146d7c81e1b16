"""A report as text, Markdown or a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter
from pathlib import Path

import numpy as np

from morphogen.diff.compare import read_image
from morphogen.diff.core import (
    ADDED,
    EXCEEDS,
    IDENTICAL,
    INFO,
    REMOVED,
    STATUS_ORDER,
    WITHIN,
    Item,
    Report,
    Tree,
    _changed,
    _natural,
)
from morphogen.diff.provenance import explain

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
