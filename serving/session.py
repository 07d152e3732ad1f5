"""One ONNX Runtime InferenceSession per version, configured deliberately."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
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


class SessionRunner:
    """``run(feeds) -> outputs by name`` over one session.

    On CUDA the inputs are copied to the device once and the outputs are allocated there by
    ONNX Runtime and copied back once (IOBinding), instead of the implicit per-call staging of
    ``session.run``; on CPU plain ``run`` already works on the numpy buffers in place.
    """

    def __init__(self, session: ort.InferenceSession, *, output_names: Sequence[str]) -> None:
        self.session = session
        self.output_names = list(output_names)
        self.on_cuda = session.get_providers()[0] == CUDA

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Strings never live on the device: such a graph runs the plain way.
        if not self.on_cuda or any(array.dtype == object for array in feeds.values()):
            results = self.session.run(self.output_names, dict(feeds))
            return dict(zip(self.output_names, results, strict=True))
        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_ortvalue_input(
                name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), "cuda", 0)
            )
        for name in self.output_names:
            binding.bind_output(name, "cuda", 0)
        self.session.run_with_iobinding(binding)
        return dict(zip(self.output_names, binding.copy_outputs_to_cpu(), strict=True))


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
