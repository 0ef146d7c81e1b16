"""A trained logic circuit as a pruned netlist that runs without JAX (NumPy only).

``python -m morphogen.netlist CIRCUIT.json`` grows the circuit's pattern from a random start
state and prints it; :func:`run` is the evaluator, :func:`prune` turns the layered export of
:func:`morphogen.models.difflogic.export_netlist` into the pruned netlist, and
:func:`to_verilog` writes the same circuit as one Verilog module.

The pruned netlist computes one cell's next state from its 3x3 neighbourhood. Signals are
numbered: ``0 .. 9*C - 1`` are the inputs (channel ``c`` of neighbour ``pos`` is ``pos*C + c``,
neighbours row-major with the cell itself at ``pos`` 4), and ``9*C + i`` is gate ``i``'s output;
every gate reads two earlier signals. An output is a signal, or ``-1``/``-2`` for a constant
0/1. Pruning, in one pass in the circuit's order:

* constants are folded (a FALSE or TRUE gate, and any gate whose inputs fix its output);
* a gate that reads one signal only (a wire "A" or "B", a gate whose two inputs are the same
  signal, a gate with one constant input) becomes that signal or its negation: wire chains
  collapse, a negation stays as a NOT gate;
* a gate equal to an earlier one (same operation, same inputs) is that one;
* what no output depends on is dropped.

The pruned circuit computes exactly what the unpruned one does, bit for bit.

This module imports NumPy and the standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

FORMAT = "morphogen-difflogic-netlist/2"
LAYERED_FORMAT = "morphogen-difflogic-netlist/1"
FALSE, TRUE = -1, -2  # constant outputs
NOT_A = 12
GATE_NAMES = (
    "FALSE", "AND", "A_AND_NOT_B", "A", "NOT_A_AND_B", "B", "XOR", "OR",
    "NOR", "XNOR", "NOT_B", "A_OR_NOT_B", "NOT_A", "NOT_A_OR_B", "NAND", "TRUE",
)  # fmt: skip
NEIGHBOURS = ("nw", "n", "ne", "w", "self", "e", "sw", "s", "se")


def truth(op: int, a: int, b: int) -> int:
    """Gate ``op``'s output for inputs ``a``, ``b`` (bit 3 of ``op`` is f(0,0), bit 0 f(1,1))."""
    return (op >> (3 - 2 * a - b)) & 1


# --------------------------------------------------------------------------- pruning


def _pairs_of(layer: dict, kernel: int) -> tuple[list, list]:
    """A perception layer's input pairs in ``kernel``: its own where the layer's pairs are
    per kernel (``a`` and ``b`` lists of lists), else the ones every kernel shares."""
    if layer["a"] and isinstance(layer["a"][0], list):
        return layer["a"][kernel], layer["b"][kernel]
    return layer["a"], layer["b"]


def _flatten(layered: dict):
    """The layered export as gates in circuit order: yields (op, a, b) per gate, where a and b
    are signal numbers (inputs first), and returns the C output signals."""
    c = int(layered["channels"])
    perception = [layer for layer in layered["layers"] if layer["part"] == "perception"]
    update = [layer for layer in layered["layers"] if layer["part"] == "update"]
    n_kernels = len(perception[0]["ops"])
    gates: list[tuple[int, int, int]] = []

    def add(op, a, b):
        gates.append((int(op), int(a), int(b)))
        return 9 * c + len(gates) - 1

    # perception: every kernel runs on every channel separately; layer 0 reads the patch
    prev = [[[pos * c + ch for pos in range(9)] for ch in range(c)] for _ in range(n_kernels)]
    for layer in perception:
        prev = [
            [
                [
                    add(layer["ops"][k][j], prev[k][ch][a], prev[k][ch][b])
                    for j, (a, b) in enumerate(zip(*_pairs_of(layer, k)))
                ]
                for ch in range(c)
            ]
            for k in range(n_kernels)
        ]
    width = len(_pairs_of(perception[-1], 0)[0])
    # the update network reads the cell's own state, then the features ordered (channel, out, kernel)
    x = [4 * c + ch for ch in range(c)]
    x += [prev[k][ch][s] for ch in range(c) for s in range(width) for k in range(n_kernels)]
    for layer in update:
        x = [add(op, x[a], x[b]) for op, a, b in zip(layer["ops"], layer["a"], layer["b"])]
    return gates, x


def prune(layered: dict) -> dict:
    """The pruned netlist of a layered export (see the module docstring)."""
    if layered.get("format") != LAYERED_FORMAT:
        raise ValueError(f"prune expects a {LAYERED_FORMAT} export, got format {layered.get('format')!r}")
    c = int(layered["channels"])
    n_in = 9 * c
    flat, outputs = _flatten(layered)
    ref = list(range(n_in))  # flat signal -> what it is in the pruned circuit: a signal or a constant
    kept: list[tuple[int, int, int]] = []
    seen: dict[tuple[int, int, int], int] = {}

    def gate(op, a, b):
        key = (op, a, b)
        if key not in seen:
            kept.append(key)
            seen[key] = n_in + len(kept) - 1
        return seen[key]

    def unary(x, f0, f1):
        # the function x -> (f0 if x == 0 else f1) of one signal
        if f0 == f1:
            return TRUE if f0 else FALSE
        if f1:
            return x
        if x >= n_in and kept[x - n_in][0] == NOT_A:  # not (not y) is y
            return kept[x - n_in][1]
        return gate(NOT_A, x, x)

    for op, a, b in flat:
        a, b = ref[a], ref[b]
        va = {FALSE: 0, TRUE: 1}.get(a)
        vb = {FALSE: 0, TRUE: 1}.get(b)
        if va is not None and vb is not None:
            out = TRUE if truth(op, va, vb) else FALSE
        elif va is not None:
            out = unary(b, truth(op, va, 0), truth(op, va, 1))
        elif vb is not None:
            out = unary(a, truth(op, 0, vb), truth(op, 1, vb))
        elif a == b:
            out = unary(a, truth(op, 0, 0), truth(op, 1, 1))
        elif all(truth(op, x, 0) == truth(op, x, 1) for x in (0, 1)):  # ignores b
            out = unary(a, truth(op, 0, 0), truth(op, 1, 0))
        elif all(truth(op, 0, y) == truth(op, 1, y) for y in (0, 1)):  # ignores a
            out = unary(b, truth(op, 0, 0), truth(op, 0, 1))
        else:
            out = gate(op, a, b)
        ref.append(out)
    outputs = [ref[o] for o in outputs]

    # drop what no output reads, renumbering the rest in order
    live = np.zeros(len(kept), bool)
    stack = [o - n_in for o in outputs if o >= n_in]
    while stack:
        i = stack.pop()
        if live[i]:
            continue
        live[i] = True
        op, a, b = kept[i]
        stack += [s - n_in for s in (a, b) if s >= n_in and not live[s - n_in]]
    new = np.full(len(kept), -1, np.int64)
    new[live] = n_in + np.arange(int(live.sum()))

    def renumber(s):
        return int(s) if s < n_in else int(new[s - n_in])

    gates = [[op, renumber(a), renumber(b)] for (op, a, b), keep in zip(kept, live) if keep]
    return {
        "format": FORMAT,
        "gate_names": list(GATE_NAMES),
        "channels": c,
        "periodic": bool(layered["periodic"]),
        "gates_unpruned": len(flat),
        "gates": gates,
        "outputs": [renumber(o) if o >= 0 else o for o in outputs],
    }


# --------------------------------------------------------------------------- evaluation


def _check(net: dict) -> None:
    if net.get("format") != FORMAT:
        raise ValueError(f"expected a pruned netlist ({FORMAT}), got format {net.get('format')!r}")


def neighbourhoods(state: np.ndarray, periodic: bool) -> np.ndarray:
    """(B, H, W, C) {0,1} -> (9 * C, B, H, W) bool: the 3x3 neighbourhood's channels, row-major
    (signal ``pos * C + c``); outside a non-periodic grid every channel reads 0."""
    state = np.asarray(state).astype(bool)
    b, h, w, c = state.shape
    padded = np.pad(state, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap" if periodic else "constant")
    shifted = [padded[:, dy : dy + h, dx : dx + w, :] for dy in range(3) for dx in range(3)]
    return np.stack(shifted).transpose(0, 4, 1, 2, 3).reshape(9 * c, b, h, w)


def step(net: dict, state: np.ndarray) -> np.ndarray:
    """One synchronous update of every cell: (B, H, W, C) {0,1} -> (B, H, W, C) uint8."""
    _check(net)
    signals = list(neighbourhoods(state, net["periodic"]))
    zero = np.zeros_like(signals[0])
    for op, a, b in net["gates"]:
        x, y = signals[a], signals[b]
        # the truth table: f(0,0) where both are 0, f(0,1), f(1,0), f(1,1)
        out = zero
        for va, vb in ((0, 0), (0, 1), (1, 0), (1, 1)):
            if truth(op, va, vb):
                out = out | ((x if va else ~x) & (y if vb else ~y))
        signals.append(out)
    outs = [signals[o] if o >= 0 else np.full_like(zero, o == TRUE) for o in net["outputs"]]
    return np.stack(outs, axis=-1).astype(np.uint8)


def run(net: dict, state: np.ndarray, steps: int, fire=None) -> np.ndarray:
    """``steps`` updates of a (B, H, W, C) state. ``fire`` (steps, B, H, W) bool, if given,
    says which cells update in each step (the others keep their state: asynchronous)."""
    x = np.asarray(state).astype(np.uint8)
    for t in range(steps):
        new = step(net, x)
        x = new if fire is None else np.where(np.asarray(fire[t])[..., None], new, x)
    return x


# --------------------------------------------------------------------------- Verilog


_VERILOG = {
    "FALSE": "1'b0", "AND": "{a} & {b}", "A_AND_NOT_B": "{a} & ~{b}", "A": "{a}",
    "NOT_A_AND_B": "~{a} & {b}", "B": "{b}", "XOR": "{a} ^ {b}", "OR": "{a} | {b}",
    "NOR": "~({a} | {b})", "XNOR": "~({a} ^ {b})", "NOT_B": "~{b}", "A_OR_NOT_B": "{a} | ~{b}",
    "NOT_A": "~{a}", "NOT_A_OR_B": "~{a} | {b}", "NAND": "~({a} & {b})", "TRUE": "1'b1",
}  # fmt: skip


def signal_name(net: dict, s: int) -> str:
    """A readable name: ``se_c3`` (channel 3 of the south-east neighbour), ``g12``, ``1'b0``."""
    c = int(net["channels"])
    if s == FALSE:
        return "1'b0"
    if s == TRUE:
        return "1'b1"
    if s < 9 * c:
        return f"{NEIGHBOURS[s // c]}_c{s % c}"
    return f"g{s - 9 * c}"


def to_verilog(net: dict, module: str = "cell") -> str:
    """The pruned netlist as one combinational Verilog module: the cell's next state from its
    neighbourhood (input ``nb[pos*C + c]``, output ``next[c]``)."""
    _check(net)
    c = int(net["channels"])
    if not module.isidentifier():
        raise ValueError(f"Verilog module name must be an identifier, got {module!r}")
    lines = [
        f"// {module}: one cell of a DiffLogic cellular automaton ({len(net['gates'])} gates, pruned",
        f"// from {net['gates_unpruned']}). nb[pos*{c} + c] is channel c of neighbour pos, row-major",
        "// (0 nw, 1 n, 2 ne, 3 w, 4 the cell itself, 5 e, 6 sw, 7 s, 8 se); outside a",
        f"// {'periodic grid the neighbourhood wraps' if net['periodic'] else 'non-periodic grid every neighbour reads 0'}.",
        f"module {module} (",
        f"  input  wire [{9 * c - 1}:0] nb,",
        f"  output wire [{c - 1}:0] next",
        ");",
    ]
    used = {s for _, a, b in net["gates"] for s in (a, b)} | set(net["outputs"])
    for s in sorted(x for x in used if 0 <= x < 9 * c):
        lines.append(f"  wire {signal_name(net, s)} = nb[{s}];")
    for i, (op, a, b) in enumerate(net["gates"]):
        expr = _VERILOG[GATE_NAMES[op]].format(a=signal_name(net, a), b=signal_name(net, b))
        lines.append(f"  wire g{i} = {expr};  // {GATE_NAMES[op]}")
    for ch, o in enumerate(net["outputs"]):
        lines.append(f"  assign next[{ch}] = {signal_name(net, o)};")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def save(net: dict, out: str | Path, module: str = "cell") -> tuple[Path, Path]:
    """``net`` as ``out``.json and ``out``.v (``out`` with or without either suffix)."""
    out = Path(out)
    out = out.with_suffix("") if out.suffix in (".json", ".v") else out
    json_path, verilog_path = out.with_name(out.name + ".json"), out.with_name(out.name + ".v")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(net, separators=(",", ":")) + "\n")
    verilog_path.write_text(to_verilog(net, "".join(ch if ch.isalnum() else "_" for ch in module)))
    return json_path, verilog_path


# --------------------------------------------------------------------------- command line


def load(path: str | Path) -> dict:
    """A pruned netlist from its JSON file (a layered export is pruned on the way)."""
    try:
        net = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable netlist JSON file ({e})") from e
    if isinstance(net, dict) and net.get("format") == LAYERED_FORMAT:
        return prune(net)
    if not isinstance(net, dict) or net.get("format") != FORMAT:
        raise ValueError(f"{path}: not a morphogen netlist (format {FORMAT})")
    return net


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m morphogen.netlist",
        description="Run a pruned DiffLogic circuit (NumPy only) from a random start and print channel 0.",
    )
    parser.add_argument("netlist", help="a JSON netlist written by `morphogen export`")
    parser.add_argument("--size", type=int, default=16, help="grid side (default 16)")
    parser.add_argument("--steps", type=int, default=40, help="updates (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="start state's seed (default 0)")
    parser.add_argument("--verilog", metavar="OUT.v", help="also write the circuit as Verilog")
    args = parser.parse_args(argv)
    try:
        net = load(args.netlist)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.size < 1 or args.steps < 0:
        print(
            f"error: --size must be >= 1 and --steps >= 0, got {args.size} and {args.steps}", file=sys.stderr
        )
        return 2
    rng = np.random.default_rng(args.seed)
    start = rng.integers(0, 2, (1, args.size, args.size, int(net["channels"])), dtype=np.uint8)
    final = run(net, start, args.steps)
    print(f"{len(net['gates'])} gates (of {net['gates_unpruned']}); channel 0 after {args.steps} steps:")
    for row in final[0, :, :, 0]:
        print("".join("#" if v else "." for v in row))
    if args.verilog:
        stem = "".join(ch if ch.isalnum() else "_" for ch in Path(args.verilog).stem)
        Path(args.verilog).write_text(to_verilog(net, f"cell_{stem}"))
        print(f"wrote {args.verilog}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
