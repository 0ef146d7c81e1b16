"""Speed of the growing NCA's training step on this machine, against CAX's.

One training step: a batch of states rolled out for a fixed number of steps with fire rate 0.5,
the mean squared RGBA error against the target, its gradient by backpropagation through the
rollout, per-tensor gradient normalisation and an Adam update, all in one compiled program.

- morphogen: the pool regime's step (training.make_pool_step: it also samples the batch from
  the pool, sorts it, puts the seed in, damages a sample and writes the batch back), the model
  written as matrix products over a (cells, features) layout with shifted copies for the
  perception.
- CAX 0.3.3 (PyPI `cax`, the newest that installs beside these pins; `make bench` installs it
  from benchmarks/requirements-cax.txt): the same model built from its modules as its growing-NCA
  example does (a depthwise ConvPerceive with identity and Sobel kernels, NCAUpdate with one
  hidden layer of 128, zero-initialised output, cell dropout 0.5, alive masking), trained with
  nnx.value_and_grad and an nnx.Optimizer. Only the rollout, gradient and update: no pool.

Shapes default to the quick preset's (28x28 grid, batch 4, 48 steps); the reference's are
`--grid 72 --batch 8 --steps 96`.

    python benchmarks/growing_speed.py [--repeats 20] [--grid 28 --batch 4 --steps 48]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from timing import timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20, help="timed training steps per implementation")
    ap.add_argument("--grid", type=int, default=28)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=48, help="rollout steps per training step")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "src"))
    from morphogen.workflow import configure_jax

    configure_jax()

    import jax
    import jax.numpy as jnp
    import optax

    from morphogen import optimizers, tasks, training

    size = args.grid - 8
    cfg = {
        "family": "growing",
        "task": {"name": "growth", "image": "organism", "size": size, "padding": 4},
        "model": {"channels": 16, "hidden": [128], "init_output": "zero", "alive_threshold": 0.1},
        "update": {"mode": "async", "fire_rate": 0.5},
        "training": {
            "regime": "pool",
            "steps": 1000,
            "batch": args.batch,
            "pool_size": 64,
            "rollout_min": args.steps,
            "rollout_steps": args.steps,
            "damage_n": 1,
            "optimizer": {
                "lr": 2e-3,
                "b1": 0.9,
                "b2": 0.999,
                "weight_decay": 0.0,
                "normalize_gradients": True,
            },
        },
    }
    print(
        f"growing NCA training step: {args.grid}x{args.grid} grid, batch {args.batch}, {args.steps} steps, "
        f"16 channels, 128 hidden, fire rate 0.5; {jax.device_count()} {jax.devices()[0].platform} device(s)"
    )

    # --- morphogen
    exp = training.build(cfg)
    trainable, static = training.split_params(training.init_params(exp, 0))
    opt = optimizers.make_optimizer(cfg["training"]["optimizer"], 1000)
    pool = training.initial_pool(exp, 0, cfg["training"])
    state = training.TrainState(trainable, opt.init(trainable), jnp.asarray(0, jnp.int32), pool)
    step = training.make_pool_step(exp, static, cfg["training"], opt)
    box = {"state": state, "i": 0}

    def ours():
        box["state"], metrics = step(box["state"], jax.random.key(box["i"]))
        box["i"] += 1
        jax.block_until_ready(metrics["loss"])

    first_ours, ours_s = timed(ours, args.repeats)
    print(f"  morphogen: {ours_s * 1e3:8.1f} ms/step  (first call {first_ours:.1f} s)")

    # --- CAX
    try:
        from cax.core import ComplexSystem
        from cax.core.perceive import ConvPerceive, grad_kernel, identity_kernel
        from cax.core.update import NCAUpdate
        from flax import nnx
    except ImportError as e:
        print(f"  CAX: not installed ({e}); `make bench` installs benchmarks/requirements-cax.txt")
        return

    class GrowingNCA(ComplexSystem):
        def __init__(self, rngs):
            self.perceive = ConvPerceive(16, 48, feature_group_count=16, rngs=rngs)
            self.update = NCAUpdate(16, 48, (128,), cell_dropout_rate=0.5, zeros_init=True, rngs=rngs)
            kernel = jnp.concatenate([identity_kernel(2), grad_kernel(2)], axis=-1)  # (3, 3, 3)
            kernel = jnp.tile(kernel[..., None, :], (1, 1, 1, 16)).reshape(3, 3, 1, 48)
            self.perceive.conv.kernel = nnx.Param(kernel)

        def _step(self, state, input=None, *, sow=False):
            return self.update(state, self.perceive(state), input)

    cs = GrowingNCA(nnx.Rngs(0))
    tx = optax.chain(
        optax.stateless(lambda g, _: jax.tree.map(lambda t: t / (jnp.linalg.norm(t) + 1e-8), g)),
        optax.adam(2e-3),
    )
    optimizer = nnx.Optimizer(cs, tx, wrt=nnx.Param)
    target = jnp.asarray(tasks.growth_target(cfg["task"], args.grid))
    # (CAX's alive channel is the last one: its loss reads the last four channels, same cost)
    seed = (
        jnp.zeros((args.batch, args.grid, args.grid, 16)).at[:, args.grid // 2, args.grid // 2, 3:].set(1.0)
    )
    n_steps = args.steps

    @nnx.jit
    def cax_step(cs, optimizer, x):
        def loss_fn(cs):
            final = cs(x, num_steps=n_steps)
            return jnp.mean(jnp.square(final[..., -4:] - target))

        loss, grads = nnx.value_and_grad(loss_fn)(cs)
        optimizer.update(cs, grads)
        return loss

    def theirs():
        jax.block_until_ready(cax_step(cs, optimizer, seed))

    first_cax, cax_s = timed(theirs, args.repeats)
    print(f"  CAX 0.3.3: {cax_s * 1e3:8.1f} ms/step  (first call {first_cax:.1f} s)")
    print(f"  morphogen is {cax_s / ours_s:.1f}x faster per training step")


if __name__ == "__main__":
    main()
