"""Does the ONNX graph compute what the torch model computes? Checked on held-out inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from functions.core.manifest import ParityReport

if TYPE_CHECKING:
    import numpy as np
    import torch

DEFAULT_TOLERANCE = 1e-4


def check_parity(
    *,
    model: torch.nn.Module,
    onnx_path: Path,
    inputs: np.ndarray,
    input_name: str,
    output_names: Sequence[str],
    scores_output: str,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ParityReport:
    """Run both on ``inputs`` (one batch) and compare every output.

    ``max_abs_diff`` covers all outputs, integer ones included, so a single flipped label
    (a difference of at least 1) fails the tolerance on its own. ``argmax_agreement`` is the
    share of samples whose top class from ``scores_output`` is the same in both.
    """
    import numpy as np
    import onnxruntime as ort
    import torch

    model.eval()
    with torch.no_grad():
        torch_out = model(torch.from_numpy(inputs))
    torch_outputs = torch_out if isinstance(torch_out, tuple | list) else (torch_out,)
    if len(torch_outputs) != len(output_names):
        raise ValueError(f"torch returned {len(torch_outputs)} outputs, expected {output_names}")
    expected = {
        name: tensor.numpy() for name, tensor in zip(output_names, torch_outputs, strict=True)
    }

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    actual = dict(
        zip(output_names, session.run(list(output_names), {input_name: inputs}), strict=True)
    )

    max_abs_diff = 0.0
    for name in output_names:
        if actual[name].shape != expected[name].shape:
            max_abs_diff = math.inf
            break
        diff = np.abs(actual[name].astype(np.float64) - expected[name].astype(np.float64))
        max_abs_diff = max(max_abs_diff, float(diff.max(initial=0.0)))
    if math.isnan(max_abs_diff):
        max_abs_diff = math.inf  # NaN compares False with everything; make failure explicit

    scores_onnx = actual[scores_output].reshape(len(inputs), -1)
    scores_torch = expected[scores_output].reshape(len(inputs), -1)
    agreement = float(np.mean(scores_onnx.argmax(axis=1) == scores_torch.argmax(axis=1)))

    return ParityReport(
        samples=len(inputs),
        max_abs_diff=max_abs_diff,
        argmax_agreement=agreement,
        tolerance=tolerance,
        passed=max_abs_diff <= tolerance and agreement == 1.0,
    )
