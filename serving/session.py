"""One ONNX Runtime InferenceSession per version, configured deliberately."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import onnxruntime as ort

log = logging.getLogger("serving")

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def choose_providers() -> list[Any]:
    """CUDA first when this onnxruntime build has it (the GPU image), CPU always as fallback
    for the ops CUDA lacks."""
    if CUDA in ort.get_available_providers():
        # HEURISTIC: the default EXHAUSTIVE benchmarks conv algorithms for every new input
        # shape, and dynamic batching produces many batch sizes: each would pay that search
        # on a live request.
        return [(CUDA, {"cudnn_conv_algo_search": "HEURISTIC"}), CPU]
    return [CPU]


def session_options(*, threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    # Load time is paid once per version; every request benefits from fused/folded graphs.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The batcher runs one batch at a time per session, so parallelism comes from the batch
    # (intra-op threads over its rows); the parallel executor only helps graphs with
    # independent branches and costs scheduling overhead on every run.
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle spinning threads would burn the cores the HTTP event loop and other versions'
    # sessions need between requests.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: ORT warnings are noise per request
    return options


def create_session(model_path: Path, *, threads: int) -> ort.InferenceSession:
    session = ort.InferenceSession(
        str(model_path),
        sess_options=session_options(threads=threads),
        providers=choose_providers(),
    )
    # CUDA in get_available_providers() only means the build has it; if the driver or
    # cuDNN is missing ORT silently falls back to CPU, so log what it really uses.
    log.info("loaded %s with providers %s", model_path.name, session.get_providers())
    return session
