"""Rule `export`: the pruned circuit of a trained DiffLogic run as circuit.json and circuit.v."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start, trained_run  # noqa: E402

start(snakemake)  # noqa: F821

from morphogen.models import difflogic  # noqa: E402

sm = snakemake  # noqa: F821
exp_cfg = sm.params.experiment
exp, params, prov = trained_run(sm)
if exp_cfg["family"] != "difflogic":
    raise ValueError(f"export: experiment {sm.wildcards.experiment!r} is not a DiffLogic circuit")
# the NumPy evaluator against the JAX hard path: 100 random start states x 50 steps on the
# training grid (the states drawn from the run's seed)
check = {"grid": int(exp_cfg["task"]["size"]), "states": 100, "steps": 50, "seed": int(sm.wildcards.seed)}
keep = ("experiment", "seed", "config_hash")  # not the commit: the file is a result
net, _, _ = difflogic.write_circuit(
    params, exp.model_cfg, sm.output.json, {k: prov[k] for k in keep if k in prov}, check=check
)
print(f"{len(net['gates'])} gates (of {net['gates_unpruned']}); check: {net['check']}")
if net["check"]["cells_differing"]:
    raise RuntimeError(
        f"the exported netlist differs from the circuit on {net['check']['cells_differing']} cells"
    )
