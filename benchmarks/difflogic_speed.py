"""Speed of the DiffLogic CA against the reference notebook on this machine.

Prints seconds per training step of the paper-size synchronous checkerboard (3,040 gates,
16x16, batch 2, 20 steps; soft forward + backward + the hard rollout logged each step + AdamW),
where that time goes, and the cell-updates per second of hard rollouts on a 64x64 grid. Then
seconds per training step of quick's async checkerboard (its own training method) with each
perception wiring, and with the per-kernel gathers as the one-hot product they replaced.

Reference anchors (the notebook's own code, measured on a 2-core CPU of this kind):
15.22 s per training step and 707 cell-updates/s for 64x64 hard rollouts.
benchmarks/difflogic_reference_speed.py measures a notebook-style baseline beside the project's
path in the same run instead, for the article's four circuits.

    python benchmarks/difflogic_speed.py [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

NOTEBOOK_SECONDS_PER_STEP = 15.22
NOTEBOOK_ROLLOUT_64 = 707.0  # cell-updates/s, hard, 64x64


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="timed training steps (after warm-up)")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from morphogen.workflow import configure_jax

    configure_jax()

    import jax
    import jax.numpy as jnp
    import yaml

    from morphogen import optimizers, tasks, training, updates

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
    exp_cfg = cfg["experiments"]["checkerboard_sync"]
    exp = training.build(exp_cfg)
    params = training.init_params(exp, 0)
    trainable, static = training.split_params(params)
    tcfg = exp_cfg["training"]
    opt = optimizers.make_optimizer(tcfg["optimizer"], tcfg["steps"])
    state = training.TrainState(trainable, opt.init(trainable), jnp.asarray(0, jnp.int32))
    train_step = training.make_train_step(exp, static, tcfg, opt)
    root = Path(__file__).resolve().parents[1]

    def timed(fn, *a, n=args.steps):
        jax.block_until_ready(fn(*a))
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            jax.block_until_ready(fn(*a))
            ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    print(
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}, {os.cpu_count()} CPUs, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )
    print(
        f"model: {exp.family.count(exp.model_cfg)['total']} gates; batch {tcfg['batch']}, "
        f"grid {exp_cfg['task']['size']}x{exp_cfg['task']['size']}, {tcfg['rollout_steps']} steps"
    )

    t = time.perf_counter()
    state, _ = train_step(state, jax.random.key(0))
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - t
    times = []
    for i in range(args.steps):
        t = time.perf_counter()
        state, m = train_step(state, jax.random.key(i + 1))
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t)
    per_step = statistics.median(times)

    # Where the time goes: the same pieces, jitted one by one.
    x0 = exp.task.initial_states(jax.random.key(0), tcfg["batch"])
    n = tcfg["rollout_steps"]
    full = training.merge_params(state.params, static)

    def soft_loss(p, remat):
        final = updates.rollout(
            exp.step, training.merge_params(p, static), x0, jax.random.key(1), exp.model_cfg, n, remat=remat
        )
        return exp.task.loss(final)

    fwd = timed(jax.jit(lambda p: soft_loss(p, False)), state.params)
    grad_remat = timed(jax.jit(jax.grad(lambda p: soft_loss(p, True))), state.params)
    grad_plain = timed(jax.jit(jax.grad(lambda p: soft_loss(p, False))), state.params)
    # Hard circuits: a random circuit (every gate type), passed as an argument so that XLA cannot
    # fold the circuit into the program; the "compiled-in" variant lets it (what evaluation
    # rollouts do, since the circuit is fixed there).
    leaves, treedef = jax.tree.flatten(full["logits"])
    keys = jax.random.split(jax.random.key(7), len(leaves))
    random_logits = jax.tree.unflatten(treedef, [jax.random.normal(k, z.shape) for k, z in zip(keys, leaves)])
    hard_params = exp.family.harden({"logits": random_logits, "wires": static["wires"]})
    hard_logits = hard_params["logits"]

    def hard_run(logits, x, n_steps):
        p = {"logits": logits, "wires": static["wires"]}
        return updates.rollout(exp.hard_step, p, x, jax.random.key(1), exp.model_cfg, n_steps)

    def float_run(logits, x, n_steps):
        p = {"logits": logits, "wires": static["wires"]}
        return updates.rollout(exp.step, p, x, jax.random.key(1), exp.model_cfg, n_steps)

    hard_packed = timed(jax.jit(hard_run, static_argnums=2), hard_logits, x0, n)
    hard_float = timed(jax.jit(float_run, static_argnums=2), hard_logits, x0, n)

    print()
    print(
        f"training step (median of {args.steps}):  {per_step:.3f} s   "
        f"notebook {NOTEBOOK_SECONDS_PER_STEP:.2f} s -> {NOTEBOOK_SECONDS_PER_STEP / per_step:.0f}x faster"
    )
    print(f"  first call (trace + compile + 1 step): {compile_s:.1f} s")
    print(f"  soft forward rollout            {fwd * 1e3:8.1f} ms")
    print(
        f"  soft forward+backward (remat)   {grad_remat * 1e3:8.1f} ms   (without remat: {grad_plain * 1e3:.1f} ms)"
    )
    print(
        f"  hard rollout, bit-packed        {hard_packed * 1e3:8.1f} ms   (float one-hot path: {hard_float * 1e3:.1f} ms)"
    )
    cells = tcfg["batch"] * exp_cfg["task"]["size"] ** 2 * n
    print(f"  soft training throughput        {cells / per_step:,.0f} cell-updates/s")

    # Hard rollouts on 64x64 (the 4x generalisation grid).
    gates_per_cell = (
        exp.family.count(exp.model_cfg)["perception"] * exp.model_cfg["channels"]
        + exp.family.count(exp.model_cfg)["update"]
    )
    task = tasks.make(exp_cfg["task"], channels=exp.model_cfg["channels"], scale=4)
    packed = jax.jit(hard_run, static_argnums=2)
    for batch, steps in ((1, 80), (16, 80)):
        xb = task.initial_states(jax.random.key(2), batch)
        sec = timed(packed, hard_logits, xb, steps, n=5)
        rate = batch * 64 * 64 * steps / sec
        print(
            f"hard rollout 64x64, batch {batch:2d}, {steps} steps: {sec:.3f} s -> {rate:,.0f} cell-updates/s "
            f"({rate * gates_per_cell / 1e9:.2f} G gate-evals/s); notebook {NOTEBOOK_ROLLOUT_64:.0f} -> "
            f"{rate / NOTEBOOK_ROLLOUT_64:,.0f}x"
        )
    xb = task.initial_states(jax.random.key(2), 16)
    compiled_in = jax.jit(lambda x: hard_run(hard_logits, x, 80))
    sec = timed(compiled_in, xb, n=5)
    print(
        f"  same, batch 16, circuit compiled into the program: {16 * 64 * 64 * 80 / sec:,.0f} cell-updates/s"
    )

    # quick's async checkerboard: a training step with each perception wiring, and per_kernel
    # with its gathers as the one-hot product (koi,ik...) that computed them before
    from morphogen import methods
    from morphogen.models import difflogic, logic_gather
    from morphogen.training import initial_clock

    def quick_async_step(wiring: str) -> float:
        cfg = methods.preset_experiment(root / "config", "quick", "checkerboard_async")
        cfg["model"]["perception_wiring"] = wiring
        q = training.build(cfg)
        qcfg = cfg["training"]
        tr, st = training.split_params(training.init_params(q, 0))
        qopt, rate = training.attempt_optimizer(qcfg, int(qcfg["steps"]))
        clock = initial_clock(qcfg)
        qstate = training.TrainState(tr, qopt.init(tr), jnp.asarray(0, jnp.int32), clock=clock)
        step = training.make_train_step(q, st, qcfg, qopt, rate=rate)
        return timed(lambda s, k: step(s, k)[0], qstate, jax.random.key(0))

    def product_rows(x, idx):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            return gathered_rows(x, idx)
        return logic_gather.mixed_rows(x, jax.nn.one_hot(idx, x.shape[0], dtype=x.dtype))

    print()
    print("quick's async checkerboard (its training method), a training step, median:")
    shared = quick_async_step("shared")
    per_kernel = quick_async_step("per_kernel")
    gathered_rows = difflogic.kernel_rows
    difflogic.kernel_rows = product_rows
    try:
        product = quick_async_step("per_kernel")
    finally:
        difflogic.kernel_rows = gathered_rows
    print(f"  shared wiring                   {shared:.3f} s")
    print(f"  per-kernel wiring, gathers      {per_kernel:.3f} s   ({per_kernel / shared:.2f}x shared)")
    print(
        f"  per-kernel wiring, product      {product:.3f} s   ({product / shared:.2f}x shared; "
        f"the gathers {product / per_kernel:.2f}x faster)"
    )


if __name__ == "__main__":
    main()
