"""Training-step speed of the project's DiffLogic path against a baseline computed the way the
reference notebook computes, both measured here, in one run, for the article's four experiments.

The baseline (written for this benchmark, after the notebook's structure): a circuit function of
one cell, vmapped over cells (and, in perception, over kernels and channels); each gate gathers
its two inputs by index and weighs all 16 relaxed operations by the softmax of its logits; the
rollout is a scan vmapped over the batch; AdamW with element-wise clipping as the notebook's.
The project's path is ``training.make_train_step`` (all cells of a layer at once, gates as affine
coefficients of the mixture, contiguous slices where wiring allows, a bit-packed hard rollout
logged every step). Both run the same circuit sizes, grids, rollout lengths and batches:

- checkerboard: 16 kernels, 8 channels, 3,040 gates, 16x16, 20 steps, batch 2 (non-periodic)
- Game of Life: 16 kernels, 1 channel, 2,543 gates, periodic 3x3, 1 step, batch 20
- growing lizard: 4 kernels, 128 channels, 4,540 gates, periodic 20x20, 12 steps, batch 1
- coloured G: 4 kernels, 64 channels, 4,600 gates, 16x16, 15 steps, batch 1 (non-periodic)

The lizard's and the G's losses here read channel 0 (the lizard's) against a random fixed
target: the cost of a step is the circuit's, not the loss's. Prints seconds per training step of
each, their ratio, and the largest difference between the two paths' output of one soft step of
a random circuit (float rounding: both compute the same step).

    python benchmarks/difflogic_reference_speed.py [--steps 5] [--baseline-steps 2] [--only NAME]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

from timing import timed

ROOT = Path(__file__).resolve().parents[1]

EXPERIMENTS = {
    # name: (model keys over the checkerboard's, grid, periodic, rollout steps, batch)
    "checkerboard": ({}, 16, False, 20, 2),
    "game_of_life": (
        {
            "channels": 1,
            "perception_kernels": 16,
            "perception_layers": [8, 4, 2, 1],
            "update_layers": [128] * 17 + [64, 32, 16, 8, 4, 2, 1],
        },
        3,
        True,
        1,
        20,
    ),
    "lizard": (
        {
            "channels": 128,
            "perception_kernels": 4,
            "perception_layers": [8, 4, 2, 1],
            "update_layers": [512] * 8 + [256, 128],
        },
        20,
        True,
        12,
        1,
    ),
    "colored_g": (
        {
            "channels": 64,
            "perception_kernels": 4,
            "perception_layers": [8, 4, 2],
            "update_layers": [512] * 8 + [256, 128, 64],
        },
        16,
        False,
        15,
        1,
    ),
}


def reference_style_model(params, cfg, grid, periodic):
    """The baseline's CA step ``step(logits, state (H, W, C)) -> state`` (soft: softmax mixtures)."""
    import jax
    import jax.numpy as jnp

    channels = cfg["channels"]
    wires_p = [(jnp.asarray(w[0]), jnp.asarray(w[1])) for w in params["wires"]["perception"]]
    wires_u = [(jnp.asarray(w[0]), jnp.asarray(w[1])) for w in params["wires"]["update"]]

    def all_ops(a, b):
        """(16, n) every relaxed two-input operation, in the reference's order."""
        ab = a * b
        return jnp.stack(
            [
                jnp.zeros_like(a),
                ab,
                a - ab,
                a,
                b - ab,
                b,
                a + b - 2 * ab,
                a + b - ab,
                1 - (a + b - ab),
                1 - (a + b - 2 * ab),
                1 - b,
                1 - b + ab,
                1 - a,
                1 - a + ab,
                1 - ab,
                jnp.ones_like(a),
            ]
        )

    def layer(x, logits, wire):
        a, b = x[wire[0]], x[wire[1]]  # a gather per gate
        w = jax.nn.softmax(logits, axis=-1)  # (n, 16)
        return jnp.sum(w.T * all_ops(a, b), axis=0)

    def perceive_one(patch, kernel_logits):
        """One kernel on one channel's 9 values -> its output bits."""
        x = patch
        for lg, wire in zip(kernel_logits, wires_p):
            x = layer(x, lg, wire)
        return x

    def cell(patch, logits):
        """(9, C) one cell's neighbourhood -> (C,) its next state."""
        # kernels x channels, each its own chain: (K, C, S)
        per_kernel = jax.vmap(lambda klog: jax.vmap(lambda p: perceive_one(p, klog))(patch.T))
        feats = per_kernel([lg for lg in logits["perception"]])  # (K, C, S)
        feats = jnp.transpose(feats, (1, 2, 0)).reshape(-1)  # 'k c s -> (c s k)'
        x = jnp.concatenate([patch[4], feats])
        for lg, wire in zip(logits["update"], wires_u):
            x = layer(x, lg, wire)
        return x

    def step(logits, state):
        """(H, W, C) -> (H, W, C): every cell's circuit, vmapped over cells."""
        mode = "wrap" if periodic else "constant"
        padded = jnp.pad(state, ((1, 1), (1, 1), (0, 0)), mode=mode)
        patches = jnp.stack(
            [padded[dy : dy + grid, dx : dx + grid] for dy in range(3) for dx in range(3)], axis=2
        )
        out = jax.vmap(lambda p: cell(p, logits))(patches.reshape(grid * grid, 9, channels))
        return out.reshape(grid, grid, channels)

    return step


def reference_style_step(params, cfg, grid, periodic, n_steps, batch, lr=0.05):
    """(jitted step(logits, opt_state, key) -> (logits, opt_state, loss), optimizer): the baseline."""
    import jax
    import jax.numpy as jnp
    import optax

    channels = cfg["channels"]
    step = reference_style_model(params, cfg, grid, periodic)
    target = jax.random.randint(jax.random.key(5), (grid, grid), 0, 2).astype(jnp.float32)

    def loss(logits, x0):
        def one(x):
            final = jax.lax.scan(lambda s, _: (step(logits, s), None), x, None, length=n_steps)[0]
            return jnp.sum(jnp.square(final[..., 0] - target))

        return jnp.sum(jax.vmap(one)(x0))

    opt = optax.chain(optax.clip(100.0), optax.adamw(lr, b1=0.9, b2=0.99, weight_decay=1e-2))

    @jax.jit
    def train_step(logits, opt_state, key):
        x0 = jax.random.randint(key, (batch, grid, grid, channels), 0, 2).astype(jnp.float32)
        value, grads = jax.value_and_grad(loss)(logits, x0)
        upd, opt_state = opt.update(grads, opt_state, logits)
        return optax.apply_updates(logits, upd), opt_state, value

    return train_step, opt


def compare(name: str, base: dict, steps: int, baseline_steps: int) -> None:
    """Time one experiment's training step both ways and print a row."""
    import jax
    import jax.numpy as jnp

    from morphogen import optimizers, training

    model, grid, periodic, n_steps, batch = EXPERIMENTS[name]
    exp_cfg = copy.deepcopy(base)
    exp_cfg["model"].update(model, periodic=periodic)
    exp_cfg["task"] = {"name": "checkerboard", "size": grid, "square": 2}
    exp_cfg["training"].update(batch=batch, rollout_steps=n_steps)
    exp = training.build(exp_cfg)
    params = training.init_params(exp, 0)
    trainable, static = training.split_params(params)
    tcfg = exp_cfg["training"]
    opt = optimizers.make_optimizer(tcfg["optimizer"], tcfg["steps"])
    holder = {"state": training.TrainState(trainable, opt.init(trainable), jnp.asarray(0, jnp.int32))}
    ours = training.make_train_step(exp, static, tcfg, opt)

    def project():
        holder["state"], _ = ours(holder["state"], jax.random.key(1))
        jax.block_until_ready(holder["state"])

    _, t_ours = timed(project, steps)

    ref_step, ref_opt = reference_style_step(params, exp.model_cfg, grid, periodic, n_steps, batch)
    logits = params["logits"]
    ref = {"logits": logits, "opt": ref_opt.init(logits)}

    def baseline():
        ref["logits"], ref["opt"], loss = ref_step(ref["logits"], ref["opt"], jax.random.key(1))
        jax.block_until_ready(loss)

    _, t_ref = timed(baseline, baseline_steps)
    # Both compute the same CA step: one step of a random circuit on a random state.
    leaves, tree = jax.tree.flatten(params["logits"])
    keys = jax.random.split(jax.random.key(3), len(leaves))
    logits = jax.tree.unflatten(tree, [jax.random.normal(k, z.shape) for k, z in zip(keys, leaves)])
    x = jax.random.uniform(jax.random.key(4), (1, grid, grid, exp.model_cfg["channels"]))
    a = exp.family.step({**params, "logits": logits}, x, None, exp.model_cfg)[0]
    b = reference_style_model(params, exp.model_cfg, grid, periodic)(logits, x[0])
    gates = exp.family.count(exp.model_cfg)["total"]
    print(
        f"{name:14s} {gates:6d} {t_ours:15.4f} {t_ref:16.4f} {t_ref / t_ours:6.1f}x "
        f"{float(jnp.max(jnp.abs(a - b))):10.1e}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--steps", type=int, default=5, help="timed steps of the project's path (after the first)"
    )
    ap.add_argument(
        "--baseline-steps", type=int, default=2, help="timed steps of the baseline (after the first)"
    )
    ap.add_argument("--only", choices=sorted(EXPERIMENTS), help="one experiment only")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from morphogen.workflow import configure_jax

    configure_jax()

    import jax
    import yaml

    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["experiments"]["checkerboard_sync"]
    print(
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}, {os.cpu_count()} CPUs, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )
    print(
        f"{'experiment':14s} {'gates':>6s} {'project s/step':>15s} {'baseline s/step':>16s} {'ratio':>7s} "
        f"{'same step':>10s}"
    )
    for name in EXPERIMENTS:
        if not args.only or name == args.only:
            compare(name, base, args.steps, args.baseline_steps)


if __name__ == "__main__":
    main()
