"""ONNX Runtime as packaging uses it: load a graph and run it, with a one-line reason when
either fails, so a model that cannot serve is refused before it becomes an artifact."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_build.exceptions import ModelRunFailed, UnsupportedOperator, one_line

if TYPE_CHECKING:
    import numpy as np

    from functions.core.manifest import Signature

# What ONNX Runtime says when the graph needs an operator (or an opset of one) it lacks.
_MISSING_OPERATOR = re.compile(
    r"not a registered function/op|Could not find an implementation|NOT_IMPLEMENTED|"
    r"is under development|Unsupported ONNX opset|opset .* is not supported",
    re.IGNORECASE,
)
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*")


def open_session(path: Path, *, threads: int = 1) -> Any:
    """An ``InferenceSession`` on the CPU provider (the one every machine has)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # fatal only: the refusal says what went wrong, once
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... classes
        message = ort_message(exc)
        if _MISSING_OPERATOR.search(message):
            raise UnsupportedOperator(
                f"ONNX Runtime {ort.__version__} cannot run this model: {message}"
            ) from exc
        raise ModelRunFailed(
            f"ONNX Runtime {ort.__version__} cannot load this model: {message}"
        ) from exc


def run_rows(
    session: Any, feeds: Mapping[str, np.ndarray], *, source: str
) -> dict[str, np.ndarray]:
    """Every output for ``feeds`` (one batch), checked to hold one row per input row: the
    model server splits a batched answer along axis 0."""
    try:
        values = session.run(None, dict(feeds))
    except Exception as exc:
        raise ModelRunFailed(
            f"ONNX Runtime fails on the {source} inputs: {ort_message(exc)}"
        ) from exc
    outputs = {arg.name: value for arg, value in zip(session.get_outputs(), values, strict=True)}
    batch = next(iter(feeds.values())).shape[0]
    for name, value in outputs.items():
        if getattr(value, "ndim", 0) == 0 or value.shape[0] != batch:
            raise ModelRunFailed(
                f"output {name!r} has shape {list(getattr(value, 'shape', []))} for "
                f"{batch} input rows: every output needs one row per input row (axis 0)"
            )
    return outputs


def ort_message(exc: BaseException) -> str:
    """ONNX Runtime's message on one line, without its ``[ONNXRuntimeError] : 1 : FAIL :``."""
    return _ORT_PREFIX.sub("", one_line(exc, limit=600))[:500]


def load_and_run(
    onnx_path: Path, signature: Signature, feeds: Mapping[str, np.ndarray], *, origin: str
) -> tuple[Any, dict[str, np.ndarray]]:
    """Refuse what the model server could not serve, then run ``feeds`` once."""
    from model_build.runner import open_session, run_rows
    from model_build.signature import require_batch_axis

    require_batch_axis(signature)
    session = open_session(onnx_path)
    return session, run_rows(session, feeds, source=origin)
