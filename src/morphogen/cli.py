"""The ``morphogen`` command.

morphogen info                         versions, devices, XLA flags
morphogen export CHECKPOINT OUT       a trained logic circuit, pruned, as OUT.json (run it with
                                       python -m morphogen.netlist OUT.json) and OUT.v (Verilog)
morphogen diff [A] [B]                 compare two results trees (directories or git revisions):
                                       tables, stores, checkpoints, figures, and why they differ
"""

from __future__ import annotations

import argparse
import json
import sys


def _info(args) -> int:
    from morphogen import provenance

    print(
        json.dumps(
            {
                "packages": provenance.package_versions(),
                **provenance.device_info(),
                "git_commit": provenance.git_commit(),
            },
            indent=2,
        )
    )
    return 0


def _export(args) -> int:
    from morphogen import checkpoint, netlist, training
    from morphogen.models import difflogic

    meta = checkpoint.read_metadata(args.checkpoint)
    cfg = meta.get("config")
    if cfg is None or cfg.get("family") != "difflogic":
        print(f"error: {args.checkpoint} is not a DiffLogic checkpoint", file=sys.stderr)
        return 2
    exp = training.build(cfg)
    params = training.load_params(exp, args.checkpoint, int(meta["seed"]))
    net = difflogic.pruned_netlist(params, cfg["model"])
    net["provenance"] = {k: meta[k] for k in ("experiment", "seed", "config_hash", "git_commit") if k in meta}
    json_path, verilog_path = netlist.save(net, args.out, f"{meta['experiment']}_seed{meta['seed']}")
    print(f"wrote {json_path} and {verilog_path}: {len(net['gates'])} gates (of {net['gates_unpruned']})")
    return 0


def _diff(args) -> int:
    from morphogen import diff

    return diff.run(
        args.a,
        args.b,
        preset=args.preset,
        repo=args.repo,
        cache=args.cache,
        cores=args.cores,
        rebuild=args.rebuild,
        rtol=args.rtol,
        atol=args.atol,
        show_all=args.all,
        fmt=args.format,
        precision=args.precision,
        limit=args.limit,
        html_path=args.html,
    )


def _at_least(cast, low):
    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value >= low:
            raise argparse.ArgumentTypeError(f"{text!r} must be {low} or more")
        return value

    return parse


DIFF_EPILOG = """\
A and B are each a results directory (results/<preset>, or a checkout holding it) or a git
revision. A defaults to HEAD and B to the working tree's results/<preset> (brought up to date
missing). A revision is checked out in <repo>/.morphogen/diff/<sha> (a git worktree) and built
there with `snakemake figures --config preset=<preset>`; a finished build is reused.

Numbers are within tolerance when |b - a| <= atol + rtol * |a| (A is the reference). Both
default to 0: any difference exceeds. Non-numeric differences (shapes, text, bytes, missing
rows or files) always exceed. Figures compare by pixels on the 0-255 scale; tables/timings.csv
(wall times) is never compared; logs/ and benchmarks/ are ignored.

Exit status: 0 when nothing exceeds tolerance, 1 when something does, 2 for a bad path or
revision, or a failed build.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="morphogen", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, devices and XLA flags").set_defaults(func=_info)
    p = sub.add_parser("export", help="export a trained DiffLogic circuit, pruned, as JSON and Verilog")
    p.add_argument(
        "checkpoint", help="a final checkpoint directory (results/<preset>/<exp>/seed<k>/checkpoint)"
    )
    p.add_argument("out", help="output path: writes OUT.json and OUT.v")
    p.set_defaults(func=_export)
    p = sub.add_parser(
        "diff",
        help="compare two results trees (directories or git revisions) and explain the differences",
        description="Compare two results trees: tables, zarr stores, checkpoints and figures.",
        epilog=DIFF_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("a", nargs="?", metavar="A", help="results directory or git revision (default: HEAD)")
    p.add_argument(
        "b", nargs="?", metavar="B", help="results directory or git revision (default: the working tree)"
    )
    p.add_argument("--preset", default="test", help="preset whose results are compared (default: test)")
    p.add_argument("--repo", default=".", help="a directory inside the git repository (default: .)")
    p.add_argument(
        "--cache", help="where revisions are checked out and built (default: <repo>/.morphogen/diff)"
    )
    p.add_argument(
        "--cores",
        type=_at_least(int, 1),
        default=None,
        help="cores for building a revision (default: all of them)",
    )
    p.add_argument(
        "--rebuild", action="store_true", help="run the workflow again for a revision built before"
    )
    p.add_argument("--rtol", type=_at_least(float, 0), default=0.0, help="relative tolerance (default: 0)")
    p.add_argument("--atol", type=_at_least(float, 0), default=0.0, help="absolute tolerance (default: 0)")
    p.add_argument(
        "--all", action="store_true", help="show identical items and wall times too, not only differences"
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", dest="format", action="store_const", const="json", help="JSON output")
    fmt.add_argument("--md", dest="format", action="store_const", const="md", help="Markdown table output")
    p.set_defaults(format="text")
    p.add_argument(
        "--precision",
        type=_at_least(int, 1),
        default=5,
        help="significant digits of numbers shown (default: 5)",
    )
    p.add_argument(
        "--limit",
        type=_at_least(int, 0),
        default=50,
        help="rows shown per file in text, Markdown and HTML output; 0 shows all (default: 50)",
    )
    p.add_argument("--html", metavar="PATH", help="also write a self-contained HTML report to PATH")
    p.set_defaults(func=_diff)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
