"""Rule `rollout`: evaluation rollouts of a trained model (1x, 2x, 4x grids) to rollout.zarr."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start, trained_run  # noqa: E402

start(snakemake)  # noqa: F821

from morphogen import evaluation, store, training  # noqa: E402

sm = snakemake  # noqa: F821
exp_cfg = sm.params.experiment
seed = int(sm.wildcards.seed)
exp, params, prov = trained_run(sm)
ecfg = exp_cfg["evaluation"]
runs = [(f"scale{scale}", params, scale, {}) for scale in ecfg["scales"]]
# fixed grids (e.g. the Game of Life's scene on 128x128)
runs += [(f"grid{side}", params, 1, {"grid": side}) for side in ecfg.get("grids", [])]
# the same start states with model keys overridden (e.g. without the model's noise)
runs += [(name, params, 1, {"variant": v}) for name, v in ecfg.get("variants", {}).items()]
if ecfg.get("initial_params", False):
    # the same evaluation of the untrained model: the baseline a trained one is read against
    runs.append(("initial", training.init_params(exp, seed), 1, {"label": "initial"}))
for i, (group, run_params, scale, options) in enumerate(runs):
    ds = evaluation.rollout_dataset(exp, run_params, exp_cfg, seed, scale, **options)
    ds.attrs.update(provenance=prov, model=exp.family.summary(run_params, exp.model_cfg))
    print(f"{group}: {evaluation.describe(ds)}")
    # a chunk per trial, or per as many trials as make 64 KiB of states (small states)
    per_chunk = max(1, (1 << 16) // (ds["state"].nbytes // ds.sizes["trial"]))
    store.write(
        ds, sm.output.store, group=group, chunk_dims={"trial": per_chunk}, mode="w" if i == 0 else "a"
    )
trace = training.load_trace(sm.input.checkpoint)
if trace is not None:  # the online regime's snapshots of its training trajectory
    ds = evaluation.trace_dataset(trace, exp_cfg)
    ds.attrs.update(provenance=prov)
    store.write(ds, sm.output.store, group="training", chunk_dims={"snapshot": 64}, mode="a")
