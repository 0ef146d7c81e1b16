"""Rule `damage`: damage-recovery trials of a trained model, one store group per protocol."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # noqa: F821 - this checkout's library

from morphogen.workflow import start, trained_run  # noqa: E402

start(snakemake)  # noqa: F821

import numpy as np  # noqa: E402

from morphogen import evaluation, store  # noqa: E402

sm = snakemake  # noqa: F821
exp_cfg = sm.params.experiment
seed = int(sm.wildcards.seed)
exp, params, prov = trained_run(sm)
for i, (name, protocol) in enumerate(sm.params.protocols.items()):
    ds = evaluation.recovery_dataset(exp, params, exp_cfg, seed, name, protocol)
    ds.attrs["provenance"] = prov
    err = ds["error"].values
    end, threshold = ds.attrs["damage_end"], ds.attrs["recovery_threshold"]
    back = (err[:, end:] <= threshold).any(axis=1) if end < err.shape[1] else np.zeros(len(err), bool)
    print(
        f"{name}: {ds.sizes['trial']} trials, {ds.sizes['y']}x{ds.sizes['x']}, {ds.attrs['inference']} inference, "
        f"error after warm-up {err[:, 0].mean():.4g}, final {err[:, -1].mean():.4g}, "
        f"back to {threshold:g} after the damage: {back.mean():.0%}"
    )
    store.write(ds, sm.output.store, group=name, chunk_dims={"trial": 1}, mode="w" if i == 0 else "a")
