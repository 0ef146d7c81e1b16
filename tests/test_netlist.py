"""The pruned netlist of a trained logic circuit: it computes what the circuit computes, bit for
bit, runs without JAX, and reads the same as Verilog."""

import json
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, TINY_MODEL

from morphogen import cli, netlist
from morphogen.models import difflogic as dl


def _random_params(seed, scale=3.0, cfg=TINY_MODEL):
    params = dl.init(jax.random.key(seed), cfg)
    leaves, treedef = jax.tree.flatten(params["logits"])
    keys = jax.random.split(jax.random.key(100 + seed), len(leaves))
    new = [jax.random.normal(k, z.shape) * scale for k, z in zip(keys, leaves)]
    out = {"logits": jax.tree.unflatten(treedef, new), "wires": params["wires"]}
    if "wire_logits" in params:  # learned wiring: a random choice of each gate input's wire
        out["wire_logits"] = jax.tree.map(
            lambda z: jax.random.normal(jax.random.key(200 + seed), z.shape), params["wire_logits"]
        )
    return out


def _jax_rollout(params, cfg, state, steps):
    run = jax.jit(lambda x: jax.lax.fori_loop(0, steps, lambda _, y: dl.hard_step(params, y, None, cfg), x))
    return np.asarray(run(jnp.asarray(state)))


@pytest.mark.parametrize("wiring", ["shared", "per_kernel", "learned"])
@pytest.mark.parametrize("periodic", [False, True])
def test_the_pruned_circuit_computes_what_the_circuit_does_bit_for_bit(periodic, wiring):
    cfg = {**TINY_MODEL, "periodic": periodic, "perception_wiring": wiring}
    states = np.random.default_rng(0).integers(0, 2, (100, 9, 7, cfg["channels"]), dtype=np.uint8)
    sizes = []
    for seed in range(4):
        params = _random_params(seed, cfg=cfg)
        net = dl.pruned_netlist(params, cfg)
        sizes.append(len(net["gates"]))
        np.testing.assert_array_equal(netlist.run(net, states, 50), _jax_rollout(params, cfg, states, 50))
    # pruning removes most of a random circuit (what no output reads, wires, constants)
    unpruned = net["gates_unpruned"]
    assert unpruned == 2 * 14 * cfg["channels"] + sum(TINY_MODEL["update_layers"])
    assert all(0 < n < unpruned / 2 for n in sizes), sizes


def test_pruning_folds_constants_collapses_wires_and_double_negations():
    # every gate a wire ("A"): the circuit copies one neighbour's channel to each output
    params = dl.init(jax.random.key(0), TINY_MODEL)
    net = dl.pruned_netlist(params, TINY_MODEL)
    assert net["gates"] == [] and all(0 <= o < 9 * TINY_MODEL["channels"] for o in net["outputs"])
    # every gate NOT_A: chains of negations cancel in pairs, so what is left is at most one NOT
    # of an input per output (an output reads its cell's state through the 3 update layers, or
    # a neighbour's through 3 + 3 layers)
    ops = jax.tree.map(lambda z: jnp.full(z.shape[:-1], netlist.NOT_A), params["logits"])
    logits = jax.tree.map(lambda o: jnp.where(jax.nn.one_hot(o, 16, dtype=bool), 1.0, 0.0), ops)
    nots = dl.pruned_netlist({"logits": logits, "wires": params["wires"]}, TINY_MODEL)
    c = TINY_MODEL["channels"]
    assert nots["gates"] and all(op == netlist.NOT_A and a < 9 * c for op, a, _ in nots["gates"])
    assert len(nots["gates"]) <= c
    state = np.random.default_rng(0).integers(0, 2, (3, 5, 6, c), dtype=np.uint8)
    np.testing.assert_array_equal(
        netlist.run(nots, state, 4),
        _jax_rollout({"logits": logits, "wires": params["wires"]}, TINY_MODEL, state, 4),
    )
    # every gate FALSE: all outputs the constant 0, no gates
    logits = jax.tree.map(
        lambda z: jnp.where(jax.nn.one_hot(jnp.zeros(z.shape[:-1], int), 16, dtype=bool), 1.0, 0.0),
        params["logits"],
    )
    zeros = dl.pruned_netlist({"logits": logits, "wires": params["wires"]}, TINY_MODEL)
    assert zeros["gates"] == [] and zeros["outputs"] == [netlist.FALSE] * TINY_MODEL["channels"]
    state = np.ones((1, 5, 5, TINY_MODEL["channels"]), np.uint8)
    assert not netlist.run(zeros, state, 1).any()


_VERILOG_WIRE = re.compile(r"^\s*wire (\w+) = (.+);")
_VERILOG_OUT = re.compile(r"^\s*assign next\[(\d+)\] = (.+);")


def _verilog_cell(text: str, nb: list[int]) -> list[int]:
    """Evaluate the generated module on one neighbourhood: its expressions use only names,
    1'b0/1'b1, ~, &, |, ^ and parentheses."""
    values: dict[str, int] = {"nb": 0}
    out: dict[int, int] = {}

    def value(expr):
        expr = expr.replace("1'b0", "0").replace("1'b1", "1")
        expr = re.sub(r"nb\[(\d+)\]", lambda m: str(nb[int(m.group(1))]), expr)
        expr = re.sub(r"\b([A-Za-z_]\w*)\b", lambda m: str(values[m.group(1)]), expr)
        assert re.fullmatch(r"[01~&|^() ]+", expr), expr
        return eval(expr, {"__builtins__": {}}) & 1  # noqa: S307 - 0/1 and bit operators only

    for line in text.splitlines():
        line = line.split("//")[0]
        if m := _VERILOG_WIRE.match(line):
            values[m.group(1)] = value(m.group(2))
        elif m := _VERILOG_OUT.match(line):
            out[int(m.group(1))] = value(m.group(2))
    return [out[c] for c in sorted(out)]


def test_the_verilog_module_computes_the_same_cell_update():
    params = _random_params(2)
    net = dl.pruned_netlist(params, TINY_MODEL)
    text = netlist.to_verilog(net, "tiny")
    c = TINY_MODEL["channels"]
    assert f"module tiny (\n  input  wire [{9 * c - 1}:0] nb," in text and text.endswith("endmodule\n")
    rng = np.random.default_rng(1)
    for _ in range(40):
        patch = rng.integers(0, 2, (1, 3, 3, c), dtype=np.uint8)
        nb = netlist.neighbourhoods(patch, False)[:, 0, 1, 1].astype(int).tolist()  # the centre cell
        assert _verilog_cell(text, nb) == netlist.step(net, patch)[0, 1, 1].tolist()


def test_trained_circuits_export_and_run_without_jax(test_preset_run, tmp_path):
    """Every trained DiffLogic circuit of the `test` preset: `morphogen export` writes the pruned
    circuit as JSON and Verilog, and `python -m morphogen.netlist` (JAX unimportable) runs it
    exactly as the JAX hard path does on 100 random states x 50 steps."""
    from morphogen import checkpoint, training

    checkpoints = sorted((test_preset_run / "results" / "test").glob("*/seed*/checkpoint"))
    logic = [p for p in checkpoints if checkpoint.read_metadata(p)["config"]["family"] == "difflogic"]
    assert len(logic) >= 2
    for ckpt in logic:
        meta = checkpoint.read_metadata(ckpt)
        cfg = meta["config"]
        out = tmp_path / f"{ckpt.parent.parent.name}.{ckpt.parent.name}"
        assert cli.main(["export", str(ckpt), str(out)]) == 0
        net = json.loads(out.with_name(out.name + ".json").read_text())
        assert net["format"] == netlist.FORMAT and net["provenance"]["seed"] == meta["seed"]
        assert "endmodule" in out.with_name(out.name + ".v").read_text()
        size = cfg["task"]["size"]
        states = np.random.default_rng(3).integers(
            0, 2, (100, size, size, cfg["model"]["channels"]), dtype=np.uint8
        )
        np.save(tmp_path / "states.npy", states)
        script = (
            "import sys; sys.modules['jax'] = sys.modules['jaxlib'] = None\n"
            "import numpy as np\n"
            "from morphogen import netlist\n"
            f"net = netlist.load({str(out) + '.json'!r})\n"
            f"np.save({str(tmp_path / 'out.npy')!r}, netlist.run(net, np.load({str(tmp_path / 'states.npy')!r}), 50))\n"
            "assert 'jax' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
            env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        exp = training.build(cfg)
        params = training.load_params(exp, ckpt, int(meta["seed"]))
        np.testing.assert_array_equal(
            np.load(tmp_path / "out.npy"), _jax_rollout(params, cfg["model"], states, 50)
        )


def test_the_netlist_command_grows_the_pattern_and_names_bad_input(tmp_path, capsys):
    params = _random_params(1)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(dl.pruned_netlist(params, TINY_MODEL)))
    assert netlist.main([str(path), "--size", "6", "--steps", "3", "--verilog", str(tmp_path / "c.v")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1 + 6 + 1 and set("".join(printed[1:7])) <= {"#", "."}
    assert "module cell_c (" in (tmp_path / "c.v").read_text()
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    assert netlist.main([str(tmp_path / "bad.json")]) == 2
    assert "bad.json: not a morphogen netlist" in capsys.readouterr().err
