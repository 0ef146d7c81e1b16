"""Timing shared by the benchmark scripts (run as `python benchmarks/<name>.py`, which puts this
folder on the import path)."""

from __future__ import annotations

import statistics
import time


def timed(fn, repeats: int) -> tuple[float, float]:
    """(seconds of the first call, including compilation; median seconds of the later ones)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)
