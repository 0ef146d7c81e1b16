"""The ``morphogen`` command.

morphogen info                         versions, devices, XLA flags
morphogen export CHECKPOINT OUT.json   a trained logic circuit as a JAX-free netlist
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


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
    from morphogen import checkpoint, training
    from morphogen.models import difflogic

    meta = checkpoint.read_metadata(args.checkpoint)
    cfg = meta.get("config")
    if cfg is None or cfg.get("family") != "difflogic":
        print(f"error: {args.checkpoint} is not a DiffLogic checkpoint", file=sys.stderr)
        return 2
    exp = training.build(cfg)
    params = training.load_params(exp, args.checkpoint, int(meta["seed"]))
    netlist = difflogic.export_netlist(params, cfg["model"])
    netlist["provenance"] = {k: meta[k] for k in ("experiment", "seed", "config_hash", "git_commit")}
    Path(args.out).write_text(json.dumps(netlist, separators=(",", ":")) + "\n")
    print(f"wrote {args.out}: {sum(len(layer['ops']) for layer in netlist['layers'])} gate rows")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="morphogen", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, devices and XLA flags").set_defaults(func=_info)
    p = sub.add_parser("export", help="export a trained DiffLogic circuit as a JSON netlist")
    p.add_argument(
        "checkpoint", help="a final checkpoint directory (results/<preset>/<exp>/seed<k>/checkpoint)"
    )
    p.add_argument("out", help="output .json path")
    p.set_defaults(func=_export)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
