"""Rule `train`: train one (experiment, seed), checkpoint, write the training history."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start  # noqa: E402

start(snakemake)  # noqa: F821 - injected by Snakemake; sets XLA flags before JAX loads

import json  # noqa: E402

import pandas as pd  # noqa: E402

from morphogen import checkpoint, training  # noqa: E402

sm = snakemake  # noqa: F821
result = training.train(
    sm.params.experiment,
    int(sm.wildcards.seed),
    experiment=sm.wildcards.experiment,
    preset=sm.params.preset,
    progress_dir=sm.params.progress,
)
steps = len(next(iter(result["history"].values())))
history = pd.DataFrame({"step": range(1, steps + 1), **result["history"]})
history.to_csv(sm.output.history, index=False, float_format="%.8g", lineterminator="\n")
tree = {"train_state": result["state"], "params": result["params"]}
if result["trace"] is not None:  # the online regime's snapshots of its trajectory
    tree["trace"] = result["trace"]
checkpoint.save(sm.output.checkpoint, tree, result["metadata"])
training.clear_progress(sm.params.progress, result["metadata"]["config_hash"])
with open(sm.output.timing, "w") as f:
    json.dump(result["timing"], f, indent=2, sort_keys=True)
print(f"done: {json.dumps(result['timing'])}")
