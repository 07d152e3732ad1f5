"""ONNX Runtime latency of a built model, recorded in the manifest as ``latency_ms``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def measure_latency(
    *,
    onnx_path: Path,
    samples: np.ndarray,
    input_name: str,
    batch_sizes: Sequence[int] = (1, 32),
    runs: int = 200,
    warmup: int = 20,
) -> dict[str, float]:
    """p50/p99 milliseconds per ``session.run`` for each batch size, e.g. ``p50_batch1``.

    One intra-op thread on the CPU provider: the figure is the cost of one request on one
    core, comparable between builds and machines, and not skewed by whatever else the
    machine is doing with its other cores.
    """
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    latency: dict[str, float] = {}
    for batch_size in batch_sizes:
        # Cycle through the samples so a small sample set still fills a large batch.
        feed = {input_name: np.resize(samples, (batch_size, *samples.shape[1:]))}
        for _ in range(warmup):
            session.run(None, feed)
        timings = np.empty(runs, dtype=np.float64)
        for i in range(runs):
            start = time.perf_counter_ns()
            session.run(None, feed)
            timings[i] = (time.perf_counter_ns() - start) / 1e6
        latency[f"p50_batch{batch_size}"] = round(float(np.percentile(timings, 50)), 4)
        latency[f"p99_batch{batch_size}"] = round(float(np.percentile(timings, 99)), 4)
    return latency
