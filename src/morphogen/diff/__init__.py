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

import json
import os
import sys
from pathlib import Path
from typing import TextIO

# The package's modules, by stage (core: items and the walk of a tree; compare; provenance;
# revisions: building git revisions; render): their public names are this package's.
from morphogen.diff.compare import (  # noqa: F401
    array_diff,
    compare,
    compare_checkpoints,
    compare_images,
    compare_stores,
    compare_tables,
    read_image,
    table_keys,
)
from morphogen.diff.core import (  # noqa: F401
    ADDED,
    BLOCK_BYTES,
    CACHE,
    EXCEEDS,
    FAILING,
    ID_COLUMNS,
    IDENTICAL,
    IGNORED_DIRS,
    IMAGE_SUFFIXES,
    INFO,
    PROVENANCE_FILES,
    REMOVED,
    STATUS_ORDER,
    VOLATILE_FILES,
    WITHIN,
    BuildError,
    DiffError,
    Item,
    Report,
    Tree,
    units,
)
from morphogen.diff.provenance import (  # noqa: F401
    TREE_FIELDS,
    collect_provenance,
    explain,
    provenance_diff,
)
from morphogen.diff.render import (  # noqa: F401
    COLUMNS,
    MAX_CELL,
    difference_image,
    provenance_line,
    render_html,
    render_markdown,
    render_text,
    rows,
    summary_line,
)
from morphogen.diff.revisions import (  # noqa: F401
    _progress,
    find_results,
    repo_root,
    resolve,
    revision_tree,
    run_workflow,
)

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
