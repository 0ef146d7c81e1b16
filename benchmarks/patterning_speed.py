"""Speed of the patterning experiments' training steps on this machine (quick-preset sizes).

Prints simulated cell-steps per second of one evolution-strategy generation (every individual
rolls out the generation's replicates; hard utility) and of one backpropagation epoch (forward
rollout, soft utility, backward pass through every step, Adam), and the ratio of their cost per
simulated trajectory: what an equal budget of trajectories costs each method in time.

    python benchmarks/patterning_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per method (after warm-up)")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "src"))
    from morphogen.workflow import configure_jax

    configure_jax()

    import jax
    import yaml

    from morphogen import optimizers, training

    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    quick = yaml.safe_load((root / "config" / "presets" / "quick.yaml").read_text())

    def experiment(name):
        cfg = config["experiments"][name]
        for part, values in quick["experiments"][name].items():
            cfg[part] = {**cfg[part], **values}
        return cfg

    results = {}
    for name in ("patterning_es", "patterning_backprop"):
        cfg = experiment(name)
        tcfg = cfg["training"]
        exp = training.build(cfg)
        if tcfg.get("regime") == "evolution":
            trainable, static = training.init_population(exp, 0, tcfg)
            state = training.TrainState(trainable, jax.numpy.zeros(tcfg["population"]), jax.numpy.asarray(0))
            step = training.make_evolution_step(exp, static, tcfg)
        else:
            trainable, static = training.split_params(training.init_params(exp, 0))
            optimizer = optimizers.make_optimizer(tcfg["optimizer"], tcfg["steps"])
            state = training.TrainState(trainable, optimizer.init(trainable), jax.numpy.asarray(0))
            step = training.make_train_step(exp, static, tcfg, optimizer)
        state, metrics = step(state, jax.random.key(0))  # compile
        jax.block_until_ready(metrics)
        times = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            state, metrics = step(state, jax.random.key(i + 1))
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - t0)
        seconds = statistics.median(times)
        trajectories = training.simulated_trajectories(tcfg)
        cell_steps = trajectories * tcfg["rollout_steps"] * cfg["model"]["cells"]
        results[name] = seconds / trajectories
        print(
            f"{name}: {seconds * 1e3:.1f} ms per step, {trajectories} trajectories of "
            f"{tcfg['rollout_steps']} steps, {cell_steps / seconds / 1e6:.2f} M cell-steps/s"
        )
    ratio = results["patterning_backprop"] / results["patterning_es"]
    print(f"time per simulated trajectory, backprop / evolution strategy: {ratio:.2f}x")


if __name__ == "__main__":
    main()
