"""Transport steps per second on a 128x128 grid: the advection NCA's donor-cell scheme against
Flow-Lenia's reintegration tracking (CAX), and what each does to the total mass.

- morphogen: :func:`morphogen.models.advection.transport`, two substeps of dt 0.25 (the paper
  preset's), outflows limited, walls at the edge.
- CAX 0.3.3 (`make bench` installs it from benchmarks/requirements-cax.txt): Flow Lenia's
  ``apply_reintegration_tracking`` (each cell's mass moved as a square of side 2 sigma and
  shared by overlap, a torus), with the smallest stencil that holds the same displacements
  (``dd`` 1: up to 0.5 cells a step) and with its default (``dd`` 5).
- the source's scheme (seed 003): the same upwind fluxes clipped to [0, 1] afterwards.

Every implementation moves the same mass field along the same converging velocity field (the
flow that broke the source) for ``--steps`` steps, one compiled program each; the table gives
steps per second and the relative change of the total mass (float64 sums).

    python benchmarks/advection_speed.py [--grid 128] [--steps 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

from timing import timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", type=int, default=128)
    ap.add_argument("--steps", type=int, default=200, help="transport steps per timed call")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "src"))
    from morphogen.workflow import configure_jax

    configure_jax()

    import jax
    import jax.numpy as jnp
    import numpy as np

    from morphogen.models import advection

    n = args.grid
    rng = np.random.default_rng(0)
    mass = jnp.asarray(rng.uniform(0, 1, (n, n)) * (rng.uniform(size=(n, n)) < 0.2), jnp.float32)
    y, x = np.mgrid[:n, :n].astype(np.float32)
    velocity = jnp.asarray(np.clip(np.stack([n / 2 - y, n / 2 - x], -1) / (n / 8), -1, 1), jnp.float32)
    cfg = {"dt": 0.5, "substeps": 2, "boundary": "wall"}

    def many(step):
        return jax.jit(lambda m: jax.lax.fori_loop(0, args.steps, lambda _, m: step(m), m))

    impls = {
        "morphogen donor-cell (conserving)": many(lambda m: advection.transport(m, velocity, cfg)),
        "source: upwind, then clip to [0, 1]": many(
            lambda m: jnp.clip(
                advection.transport_substep(
                    jnp.clip(advection.transport_substep(m, velocity[..., 0], velocity[..., 1], 0.25), 0, 1),
                    velocity[..., 0],
                    velocity[..., 1],
                    0.25,
                ),
                0,
                1,
            )
        ),
    }
    try:
        from cax.cs.flow_lenia.update import FlowLeniaUpdate

        flow = velocity[..., None]  # (y, x, [dy, dx], channel): moved by dt x F = 0.5 v cells a step
        for dd in (1, 5):
            rt = types.SimpleNamespace(dd=dd, sigma=0.65, dt=0.5)

            def reintegrate(m, rt=rt):
                return FlowLeniaUpdate.apply_reintegration_tracking(rt, m[..., None], flow)[..., 0]

            impls[f"CAX Flow Lenia reintegration (dd {dd})"] = many(reintegrate)
    except ImportError:
        print("cax is not installed (make bench installs it): Flow Lenia is left out", file=sys.stderr)

    print(f"{n}x{n} grid, {args.steps} transport steps per call, median of {args.repeats} calls")
    print(f"{'implementation':40s} {'steps/s':>10s} {'compile+1st s':>14s} {'mass change':>12s}")
    rates = {}
    total = float(np.asarray(mass, np.float64).sum())
    for name, fn in impls.items():
        first, median = timed(lambda fn=fn: fn(mass).block_until_ready(), args.repeats)
        change = float(np.asarray(fn(mass), np.float64).sum()) / total - 1.0
        rates[name] = args.steps / median
        print(f"{name:40s} {rates[name]:10.0f} {first:14.2f} {change:12.2e}")
    ours = rates["morphogen donor-cell (conserving)"]
    for name, rate in rates.items():
        if name.startswith("CAX"):
            print(f"morphogen / {name}: {ours / rate:.1f}x")


if __name__ == "__main__":
    main()
