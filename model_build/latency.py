"""ONNX Runtime latency of a packaged model, recorded in the manifest as ``latency_ms``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def measure_latency(
    *,
    onnx_path: Path,
    feeds: Mapping[str, np.ndarray],
    batch_sizes: Sequence[int] = (1, 32),
    runs: int = 200,
    warmup: int = 20,
    budget_seconds: float = 5.0,
) -> dict[str, float]:
    """p50/p99 milliseconds per ``session.run`` for each batch size, e.g. ``p50_batch1``.

    ``feeds`` is one batch of inputs; rows are cycled to fill each batch size. One intra-op
    thread on the CPU provider: the figure is the cost of one request on one core, comparable
    between builds and machines, and not skewed by whatever else the machine is doing with its
    other cores. A large model stops early, after ``budget_seconds`` per batch size (at least
    10 timed runs, after at least one warm-up run), so packaging it does not take minutes.
    """
    import numpy as np

    from model_build.runner import open_session

    session = open_session(onnx_path, threads=1)
    latency: dict[str, float] = {}
    for batch_size in batch_sizes:
        # np.resize repeats whole rows, in order, for every input alike.
        feed = {
            name: np.resize(array, (batch_size, *array.shape[1:])) for name, array in feeds.items()
        }
        # Warm-up is bounded by time too: 20 runs of a transformer at batch 32 on a CPU are
        # minutes, and the first run or two is all the warming a session needs.
        warm_until = time.perf_counter() + budget_seconds / 5
        for done in range(warmup):
            if done and time.perf_counter() > warm_until:
                break
            session.run(None, feed)
        timings: list[float] = []
        deadline = time.perf_counter() + budget_seconds
        while len(timings) < runs and (len(timings) < 10 or time.perf_counter() < deadline):
            start = time.perf_counter_ns()
            session.run(None, feed)
            timings.append((time.perf_counter_ns() - start) / 1e6)
        latency[f"p50_batch{batch_size}"] = round(float(np.percentile(timings, 50)), 4)
        latency[f"p99_batch{batch_size}"] = round(float(np.percentile(timings, 99)), 4)
    return latency
