"""torch → ONNX, one exporter and one opset for every model modelway builds.

The torch.export-based ("dynamo") exporter: it is torch's default since 2.9, the TorchScript
exporter is deprecated and slated for removal, and it names dynamic axes from ``Dim`` objects.
Weights are kept inside the one ``.onnx`` file because the artifact carries only that file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from functions.core.errors import InvalidArtifact

if TYPE_CHECKING:
    import torch

OPSET = 18
EXPORTER = "torch.onnx.dynamo"
BATCH_AXIS = "batch"


def export_onnx(
    *,
    model: torch.nn.Module,
    example: torch.Tensor,
    path: Path,
    input_name: str,
    output_names: Sequence[str],
) -> Path:
    """Export a one-input model with a dynamic batch axis (axis 0 of every tensor) and check it.

    ``example`` must have a batch of at least 2, or torch.export specializes the axis to 1.
    """
    import onnx
    import torch

    if example.shape[0] < 2:
        raise ValueError("export needs an example batch of at least 2 to keep the axis dynamic")
    model.eval()
    batch = torch.export.Dim(BATCH_AXIS)
    # The exporter narrates its progress on stdout and warns about its own internals; neither
    # is news to someone running a build, and stdout belongs to the CLI's JSON.
    exporter_log = logging.getLogger("torch.onnx")
    previous_level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed. Skipping ..."
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=[input_name],
                output_names=list(output_names),
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                dynamic_shapes=({0: batch},),
                verbose=False,
            )
    finally:
        exporter_log.setLevel(previous_level)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise InvalidArtifact(f"the exported ONNX model does not pass onnx.checker: {exc}") from exc
    return path
