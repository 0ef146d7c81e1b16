"""Speed of the attention NCA's online training on this machine (quick-preset shapes).

Prints online training steps per second (one model step on the trajectory's state, the one-step
loss, its gradient and an Adam update, all in one compiled program) of morphogen's attention NCA
and of a plain unfold-based formulation of the same model, and their ratio; then the steps per
second of the whole training loop (morphogen.training.train, with its logging), what `quick`
pays.

The baseline is written here: the seed project's formulation (PyTorch's F.unfold, here
jax.lax.conv_general_dilated_patches) unfolds each cell's 3x3 patch of keys and values into
channels, with the neighbourhood on a middle axis. CAX, the library named as the peer, ships no
attention NCA in the version that installs beside these pins (cax 0.3.3; its 0.4 line, which
lists one, is not served for Python 3.11), so it is not timed.

    python benchmarks/attention_speed.py [--repeats 300]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=300, help="timed training steps per formulation")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "src"))
    from morphogen.workflow import configure_jax

    configure_jax()

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    import yaml

    from morphogen import training
    from morphogen.models import attention

    def merge(base, over):
        out = copy.deepcopy(base)
        for k, v in over.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    quick = yaml.safe_load((root / "config" / "presets" / "quick.yaml").read_text())
    cfg = merge(config["experiments"]["attention_online"], quick["experiments"]["attention_online"])
    mcfg = cfg["model"]
    exp = training.build(cfg)
    c, h, d = int(mcfg["channels"]), int(mcfg.get("heads", 1)), int(mcfg.get("width", 16))
    size = int(cfg["task"]["size"])

    def unfold_update(params, state):
        """The same f(s), unfolding 3x3 patches of keys and values into channels."""
        b = state.shape[0]
        flat = state.reshape(-1, c)
        q = (flat @ params["q"]["w"] + params["q"]["b"]).reshape(b, size, size, h, d)
        k = (flat @ params["k"]["w"] + params["k"]["b"]).reshape(b, size, size, h * d)
        v = (flat @ params["v"]["w"] + params["v"]["b"]).reshape(b, size, size, h * d)

        def unfold(x):  # (B, H, W, F) -> (B, H, W, F, 9), zero padding
            p = jax.lax.conv_general_dilated_patches(
                x, (3, 3), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            return p.reshape(b, size, size, h, d, 9)

        keys, values = unfold(k), unfold(v)
        scores = jnp.einsum("byxhd,byxhdk->byxhk", q, keys) / np.sqrt(d)
        scores = scores + params["position"].T[None, None, None]
        inside = np.moveaxis(attention.neighbourhood_mask(size, size), -1, 0)  # (9, H, W)
        mask = jnp.asarray(np.transpose(inside, (1, 2, 0)))[None, :, :, None, :]
        weights = jax.nn.softmax(jnp.where(mask, scores, -1e9), axis=-1)
        mixed = jnp.einsum("byxhk,byxhdk->byxhd", weights, values).reshape(-1, h * d)
        return (mixed @ params["o"]["w"] + params["o"]["b"]).reshape(state.shape)

    def unfold_step(params, state, key, cfg):
        state = attention.add_noise(state, key, cfg)
        return state + unfold_update(params, state)

    params = attention.init(jax.random.key(0), {**mcfg, "init_output": "random"})
    x = exp.task.initial_states(jax.random.key(1), int(cfg["training"]["batch"]))
    check = jax.jit(lambda p, s: (attention.update(p, s, mcfg), unfold_update(p, s)))(params, x)
    np.testing.assert_allclose(np.asarray(check[0]), np.asarray(check[1]), rtol=1e-4, atol=1e-5)
    optimizer = optax.adam(float(cfg["training"]["optimizer"]["lr"]))

    def make(step):
        @jax.jit
        def train_step(p, o, s, key):
            def loss(p):
                return exp.task.loss(step(p, s, key, mcfg))

            value, g = jax.value_and_grad(loss)(p)
            u, o = optimizer.update(g, o, p)
            return optax.apply_updates(p, u), o, value

        return train_step

    rates = {}
    for name, step in (("morphogen (shifted copies)", attention.step), ("unfold baseline", unfold_step)):
        train_step = make(step)
        p, o = params, optimizer.init(params)
        jax.block_until_ready(train_step(p, o, x, jax.random.key(0)))  # compile
        times = []
        for _ in range(3):
            t = time.perf_counter()
            for i in range(args.repeats):
                p, o, value = train_step(p, o, x, jax.random.key(i))
            jax.block_until_ready(value)
            times.append((time.perf_counter() - t) / args.repeats)
        rates[name] = 1.0 / statistics.median(times)
        print(f"{name:28s} {rates[name]:8.0f} training steps/s ({1e3 / rates[name]:.2f} ms)")
    ours, base = rates["morphogen (shifted copies)"], rates["unfold baseline"]
    print(f"ratio: {ours / base:.2f}x the unfold baseline's steps per second")

    run = copy.deepcopy(cfg)
    run["training"].update(steps=2000, snapshot_every=20, checkpoint_every=10**6, max_spikes=0)
    with tempfile.TemporaryDirectory() as tmp:
        r = training.train(run, 0, experiment="bench", preset="bench", progress_dir=tmp, log=lambda m: None)
    per_step = r["timing"]["seconds_per_step"]
    print(
        f"whole online loop (training.train, {size}x{size}, batch {run['training']['batch']}): "
        f"{1 / per_step:.0f} steps/s ({per_step * 1e3:.2f} ms/step; compile {r['timing']['compile_seconds']:.1f} s)"
    )


if __name__ == "__main__":
    main()
