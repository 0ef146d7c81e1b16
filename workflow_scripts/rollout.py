"""Rule `rollout`: hard-mode rollouts of a trained model on 1x, 2x, 4x grids to rollout.zarr."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start, trained_run  # noqa: E402

start(snakemake)  # noqa: F821

from morphogen import evaluation, store  # noqa: E402

sm = snakemake  # noqa: F821
exp_cfg = sm.params.experiment
seed = int(sm.wildcards.seed)
exp, params, prov = trained_run(sm)
model = exp.family.summary(params, exp.model_cfg)
for i, scale in enumerate(exp_cfg["evaluation"]["scales"]):
    ds = evaluation.rollout_dataset(exp, params, exp_cfg, seed, scale)
    ds.attrs.update(provenance=prov, model=model)
    final = ds["accuracy"].isel(step=-1).values
    print(
        f"scale {scale}: grid {ds.sizes['y']}x{ds.sizes['x']}, {ds.sizes['step'] - 1} steps, "
        f"final accuracy mean {final.mean():.4f}, perfect trials {(final >= 1).mean():.2%}"
    )
    store.write(
        ds, sm.output.store, group=f"scale{scale}", chunk_dims={"trial": 1}, mode="w" if i == 0 else "a"
    )
