"""The ONNX graph of a Hugging Face encoder: export, fuse for ONNX Runtime, and the compressed
variants (INT8 for CPUs, FP16 for GPUs).

Export: the torch.export-based exporter with dynamic batch and sequence axes. Fusion:
onnxscript's ONNX Runtime rewrites turn the exported attention, layer norm and GELU
subgraphs into ``com.microsoft`` ``Attention`` / ``SkipLayerNormalization`` / ``BiasGelu``
nodes, which both the CPU and the CUDA providers run as single kernels (the CUDA one with
its fused/flash attention). ONNX Runtime's own load-time optimiser does not find these
patterns in a dynamo-exported graph, so they are fused here, once, at build time.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from model_build.exceptions import one_line
from model_build.hf.exceptions import HfModelError
from model_build.hf.source import TEXT_CLASSIFICATION, HfSource

if TYPE_CHECKING:
    import torch

OPSET = 18
EXPORTER = "torch.onnx.dynamo+onnxscript.ort_fusions"
BATCH_AXIS = "batch"
SEQUENCE_AXIS = "sequence"
PRECISIONS = ("fp32", "int8", "fp16")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # The exporter narrates on stdout (which belongs to the CLI's JSON) and warns about its
    # own internals; neither is news to someone running a build.
    # The quantizer logs advice on the root logger ("consider pre-processing").
    exporter_log = logging.getLogger("torch.onnx")
    previous = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)
        exporter_log.setLevel(previous)


def graph_output_name(source: HfSource) -> str:
    return "logits" if source.task == TEXT_CLASSIFICATION else "last_hidden_state"


def _wrapper(source: HfSource) -> torch.nn.Module:
    """The model as a module of plain tensors in, one tensor out (no ModelOutput)."""
    import torch

    output = graph_output_name(source)
    names = source.inputs

    class Encoder(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        # Positional, in ``source.inputs`` order: torch.export needs named parameters.
        def forward(self, *feeds: torch.Tensor) -> torch.Tensor:
            result = self.inner(**dict(zip(names, feeds, strict=True)))
            return getattr(result, output)

    return Encoder(source.model).eval()


def export_fp32(source: HfSource, *, path: Path) -> Path:
    """Export and fuse; ``path`` is the FP32 graph ONNX Runtime serves."""
    import onnx
    import onnx_ir
    import torch
    from onnxscript.rewriter import ort_fusions

    # Two rows of different lengths: every dynamic axis at least 2 long, so torch.export
    # keeps it symbolic.
    encoded = source.tokenizer(
        ["a short one", "and a somewhat longer example sentence"],
        padding=True,
        return_tensors="pt",
    )
    # A tokenizer that does not emit type ids means "all segment 0", which is what the
    # served tokenizer produces for one sentence.
    feeds = {
        name: encoded[name] if name in encoded else torch.zeros_like(encoded["input_ids"])
        for name in source.inputs
    }
    batch = torch.export.Dim(BATCH_AXIS)
    sequence = torch.export.Dim(SEQUENCE_AXIS, max=source.max_length)
    raw = path.with_name(path.stem + ".exported.onnx")
    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(
                _wrapper(source),
                tuple(feeds.values()),
                str(raw),
                input_names=list(feeds),
                output_names=[graph_output_name(source)],
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                dynamic_shapes=(tuple({0: batch, 1: sequence} for _ in feeds),),
                verbose=False,
            )
        fused, _ = ort_fusions.optimize_for_ort(onnx_ir.load(str(raw)))
        onnx_ir.save(fused, str(path))
    except HfModelError:
        raise
    except Exception as exc:  # torch.export / onnxscript raise many kinds
        raise HfModelError(
            f"exporting to ONNX failed: {type(exc).__name__}: {one_line(exc)}"
        ) from exc
    finally:
        raw.unlink(missing_ok=True)
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise HfModelError(f"the exported ONNX model does not pass onnx.checker: {exc}") from exc
    return path


def quantize_int8(*, fp32: Path, path: Path) -> Path:
    """ONNX Runtime dynamic quantization: INT8 weights, activations quantized per batch at
    run time. Made for CPUs (VNNI/AVX-512 int8).

    Measured on all-MiniLM-L6-v2 (cosine to FP32, worst row of 40 varied sentences): per-tensor
    scales 0.86, per-channel 0.965, per-channel with the fused Attention left in FP32 (only the
    MatMuls quantized) 0.974 — the last is what this does. The worst rows are the shortest
    inputs ("", "ok"), whose few tokens average out no quantization noise."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            model_input=str(fp32),
            model_output=str(path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
    return path


def convert_fp16(*, fp32: Path, path: Path) -> Path:
    """FP16 weights and compute for the CUDA provider (tensor cores). Inputs and outputs stay
    as they were (INT64 ids in, FP32 out), so the served signature and processing do not
    change; ``LayerNormalization``-family nodes keep FP32 accumulation inside their kernels."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32))
    with _quiet():
        converted = convert_float_to_float16(model, keep_io_types=True)
    onnx.save(converted, str(path))
    return path
