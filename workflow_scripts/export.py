"""Rule `export`: the pruned circuit of a trained DiffLogic run as circuit.json and circuit.v."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start, trained_run  # noqa: E402

start(snakemake)  # noqa: F821

import jax  # noqa: E402
import numpy as np  # noqa: E402

from morphogen import netlist, updates  # noqa: E402
from morphogen.models import difflogic  # noqa: E402

sm = snakemake  # noqa: F821
exp_cfg = sm.params.experiment
seed = int(sm.wildcards.seed)
if exp_cfg["family"] != "difflogic":
    raise ValueError(f"export: experiment {sm.wildcards.experiment!r} is not a DiffLogic circuit")
exp, params, prov = trained_run(sm)
net = difflogic.pruned_netlist(params, exp.model_cfg)
net["provenance"] = {k: prov[k] for k in ("experiment", "seed", "config_hash")}  # not the commit: a result
# the NumPy evaluator against the JAX hard path: 100 random start states (drawn from the run's
# seed) x 50 synchronous steps on the training grid
grid, states, steps = int(exp_cfg["task"]["size"]), 100, 50
start_states = np.random.default_rng(seed).integers(
    0, 2, (states, grid, grid, exp.family.channels(exp.model_cfg)), dtype=np.uint8
)
hard = jax.jit(
    lambda x: updates.rollout(difflogic.hard_step, params, x, jax.random.key(seed), exp.model_cfg, steps)
)
differ = np.asarray(hard(start_states)) != netlist.run(net, start_states, steps)
net["check"] = {
    "grid": grid,
    "states": states,
    "steps": steps,
    "seed": seed,
    "cells_differing": int(differ.any(-1).sum()),
}
netlist.save(net, sm.output.json, f"{sm.wildcards.experiment}_seed{seed}")
print(f"{len(net['gates'])} gates (of {net['gates_unpruned']}); check: {net['check']}")
if net["check"]["cells_differing"]:
    raise RuntimeError(
        f"the exported netlist differs from the circuit on {net['check']['cells_differing']} cells"
    )
