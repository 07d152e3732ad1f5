"""``package_hf``: a Hugging Face encoder from a local directory -> a verified ``model.tar.gz``
whose client signature is text in (BYTES, one string per row) and an embedding or a label
out, with the tokenizer packed beside the graph and the processing declared in the manifest.

The parity gate runs the candidate exactly as the model server will (``serving.processing``:
the packed tokenizer with the manifest's settings, the graph in ONNX Runtime, the declared
pooling) against the model in eager torch run the way its own library runs it, on varied
sentences in batches of 32 (so padding beside longer rows is part of what is compared).
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.core import progress
from functions.core.manifest import (
    MODEL_FILE_NAME,
    ParityReport,
    Signature,
)
from functions.core.naming import is_model_name
from model_build.exceptions import ParityFailed
from model_build.hf.exceptions import HfModelError
from model_build.hf.source import (
    FEATURE_EXTRACTION,
    TEXT_CLASSIFICATION,
    TOKENIZER_FILE,
    HfSource,
    read_source,
    reference_outputs,
)
from model_build.result import BuildResult

if TYPE_CHECKING:
    import numpy as np

    from serving.processing import TextPipeline

TEXT_INPUT = "text"
EMBEDDING_OUTPUT = "embedding"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
# Longest UTF-8 text one row may carry: far past what max_length tokens cover, small enough
# that the router refuses a runaway request before the tokenizer sees it.
MAX_TEXT_BYTES = 64 * 1024
PARITY_BATCH = 32
# FP32: every row this close to the reference. Compressed (INT8, FP16): on average this close,
# and no row further than the floor.
MIN_COSINE_FP32 = 0.9999
MEAN_COSINE_COMPRESSED = 0.99
MIN_COSINE_COMPRESSED = 0.97
QUANTIZATION_METHODS = {
    "int8": "onnxruntime.quantization.quantize_dynamic (INT8 weights per channel, MatMul only)",
    "fp16": "onnxruntime.transformers.float16 (FP16 weights and compute, FP32 inputs/outputs)",
}


@dataclass(frozen=True)
class CosineGate:
    min_cosine: float
    mean_cosine: float

    @classmethod
    def for_precision(cls, precision: str) -> CosineGate:
        if precision == "fp32":
            return cls(min_cosine=MIN_COSINE_FP32, mean_cosine=MIN_COSINE_FP32)
        return cls(min_cosine=MIN_COSINE_COMPRESSED, mean_cosine=MEAN_COSINE_COMPRESSED)

    @property
    def tolerance(self) -> float:
        """The max abs diff two unit vectors at the floor cosine can have at most
        (|a-b|^2 = 2 - 2cos): the report's ``tolerance`` in the gate's own terms. Rounded
        down, so the figure written to the manifest is the one the gate used."""
        return math.floor(math.sqrt(2.0 * (1.0 - self.min_cosine)) * 1e6) / 1e6


def package_hf(
    directory: Path,
    *,
    task: str = FEATURE_EXTRACTION,
    name: str,
    out_dir: Path,
    precision: str = "fp32",
    max_length: int | None = None,
    sentences: Sequence[str] | None = None,
    description: str = "",
) -> BuildResult:
    """Package the encoder in ``directory`` (``config.json``, weights, ``tokenizer.json``;
    never downloaded) as ``out_dir/model.tar.gz``.

    ``task``: ``feature-extraction`` (mean pooling + L2 normalisation -> ``embedding`` FP32
    [-1, hidden]) or ``text-classification`` (softmax -> ``probabilities`` FP32 [-1, classes],
    and ``label`` BYTES [-1]). ``precision``: ``fp32``, ``int8`` (ONNX Runtime dynamic
    quantization, for CPUs) or ``fp16`` (for the CUDA provider): each a separate artifact.
    ``max_length``: the token bound (default: the model's own, e.g. 256 for
    sentence-transformers models). ``sentences``: the parity gate's inputs (default: 240
    varied built-in sentences). Raises ``InvalidArtifact`` subclasses with a one-line reason,
    writing nothing, when the directory, the export or the gate fails.
    """
    from model_build.hf.graph import PRECISIONS
    from model_build.hf.sentences import parity_sentences

    started = time.perf_counter()
    if not is_model_name(name):
        raise HfModelError(
            f"invalid model name {name!r}: lowercase letters, digits and '-', at most 40"
        )
    if precision not in PRECISIONS:
        raise HfModelError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    source = read_source(Path(directory), task=task, max_length=max_length)
    texts = (
        list(sentences) if sentences is not None else parity_sentences(max_length=source.max_length)
    )
    if len(texts) < 2:
        raise HfModelError("the parity gate needs at least 2 sentences")
    progress.report("the reference: eager transformers", detail=f"{len(texts)} sentences")
    reference = reference_outputs(source, texts)
    with tempfile.TemporaryDirectory(prefix="modelway-hf-") as work:
        return _package(
            source=source,
            work=Path(work),
            name=name,
            out_dir=out_dir,
            precision=precision,
            texts=texts,
            reference=reference,
            description=description,
            started=started,
        )


def _package(
    *,
    source: HfSource,
    work: Path,
    name: str,
    out_dir: Path,
    precision: str,
    texts: list[str],
    reference: np.ndarray,
    description: str,
    started: float,
) -> BuildResult:
    """Export, gate, compress if asked, and hand the result to ``assemble`` (the end every
    packaging shares: latency, the archive, the publishing gate)."""
    import numpy as np
    import onnx
    import torch
    import transformers

    from functions.core.archive import sha256_file
    from model_build.hf.graph import EXPORTER, OPSET, convert_fp16, export_fp32, quantize_int8
    from model_build.latency import measure_latency
    from model_build.package import assemble
    from model_build.signature import signature_from_onnx
    from serving.processing import Processing, TextPipeline

    progress.report("exporting to ONNX")
    fp32 = export_fp32(source, path=work / "fp32.onnx")
    if precision != "fp32":
        progress.report(f"converting to {precision.upper()}")
    if precision == "int8":
        candidate = quantize_int8(fp32=fp32, path=work / MODEL_FILE_NAME)
    elif precision == "fp16":
        candidate = convert_fp16(fp32=fp32, path=work / MODEL_FILE_NAME)
    else:
        candidate = fp32.rename(work / MODEL_FILE_NAME)
        fp32 = candidate

    processing = processing_section(source)
    pipeline = TextPipeline(Processing.parse(processing), root=source.directory)
    gate = CosineGate.for_precision(precision)
    progress.report("checking parity with transformers", detail=f"{len(texts)} sentences")
    session = _session(candidate)
    actual = run_pipeline(session=session, pipeline=pipeline, texts=texts, task=source.task)
    parity = compare(reference=reference, actual=actual, gate=gate, task=source.task)
    if not parity.passed:
        raise ParityFailed(_describe(parity, precision=precision))

    # Latency on the gate's 32 median-length sentences, tokenized as the server batches them
    # (padded to their longest): a typical request, not the 256-token worst case.
    by_length = sorted(texts, key=len)
    middle = max(0, len(by_length) // 2 - PARITY_BATCH // 2)
    sample = np.array(by_length[middle : middle + PARITY_BATCH], dtype=object)
    feeds = pipeline.encode({pipeline.text_input: sample})
    quantization: dict[str, Any] | None = None
    if precision != "fp32":
        fp32_actual = run_pipeline(
            session=_session(fp32), pipeline=pipeline, texts=texts, task=source.task
        )
        cosines = _row_cosines(fp32_actual, actual)
        if cosines.min() < gate.min_cosine or cosines.mean() < gate.mean_cosine:
            raise ParityFailed(
                f"{precision} artifact is too far from FP32: cosine mean {cosines.mean():.5f} "
                f"(floor {gate.mean_cosine}), min {cosines.min():.5f} (floor {gate.min_cosine})"
            )
        quantization = {
            "precision": precision,
            "method": QUANTIZATION_METHODS[precision],
            "intended_provider": "CPUExecutionProvider" if precision == "int8" else "CUDA",
            "size_bytes": candidate.stat().st_size,
            "fp32_size_bytes": fp32.stat().st_size,
            "fp32_sha256": sha256_file(fp32),
            # The artifact's own figures are its latency_ms, measured the same way.
            "fp32_latency_ms": measure_latency(onnx_path=fp32, feeds=feeds),
            "vs_fp32": {
                "samples": len(texts),
                "min_cosine": round(float(cosines.min()), 9),
                "mean_cosine": round(float(cosines.mean()), 9),
                "min_cosine_floor": gate.min_cosine,
                "mean_cosine_floor": gate.mean_cosine,
            },
        }
    extra: dict[str, Any] = {
        "graph_signature": signature_from_onnx(candidate).model_dump(mode="json"),
        "processing": processing,
    }
    if quantization is not None:
        extra["quantization"] = quantization
    return assemble(
        onnx_path=candidate,
        name=name,
        out_dir=out_dir,
        feeds=feeds,
        parity=parity,
        frameworks={
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
            "opset": str(OPSET),
            "exporter": EXPORTER,
            "precision": precision,
        },
        source={"hf": str(source.directory), "task": source.task},
        labels=source.labels or None,
        description=description or _default_description(source, precision=precision),
        metrics={"max_length": float(source.max_length), "size_bytes": candidate.stat().st_size},
        signature=Signature.model_validate(public_signature(source)),
        files={TOKENIZER_FILE: source.tokenizer_path},
        extra_manifest=extra,
        started=started,
    )


def processing_section(source: HfSource) -> dict[str, Any]:
    """The manifest's ``processing``: the packed tokenizer feeding the graph's inputs, then
    pooling + normalisation (embeddings) or softmax + label map (classification)."""
    from model_build.hf.graph import graph_output_name

    tokenize: dict[str, Any] = {
        "op": "tokenize",
        "input": TEXT_INPUT,
        "file": TOKENIZER_FILE,
        "sha256": hashlib.sha256(source.tokenizer_path.read_bytes()).hexdigest(),
        "max_length": source.max_length,
        "pad_id": source.pad_id,
        "pad_type_id": source.pad_type_id,
        "input_ids": "input_ids",
        "attention_mask": "attention_mask",
        "token_type_ids": "token_type_ids" if "token_type_ids" in source.inputs else None,
    }
    graph_output = graph_output_name(source)
    if source.task == TEXT_CLASSIFICATION:
        post = [
            {"op": "softmax", "input": graph_output, "output": PROBABILITIES_OUTPUT},
            {
                "op": "label_map",
                "input": PROBABILITIES_OUTPUT,
                "output": LABEL_OUTPUT,
                "labels": source.labels,
            },
        ]
    else:
        post = [
            {"op": "mean_pool", "input": graph_output, "output": EMBEDDING_OUTPUT},
            {"op": "l2_normalize", "input": EMBEDDING_OUTPUT, "output": EMBEDDING_OUTPUT},
        ]
    return {"pre": [tokenize], "post": post}


def public_signature(source: HfSource) -> dict[str, Any]:
    """What a client sees: one string per row in; an embedding, or a label and the class
    probabilities, per row out."""
    text = {"name": TEXT_INPUT, "datatype": "BYTES", "shape": [-1], "max_bytes": MAX_TEXT_BYTES}
    if source.task == TEXT_CLASSIFICATION:
        outputs = [
            {"name": LABEL_OUTPUT, "datatype": "BYTES", "shape": [-1]},
            {"name": PROBABILITIES_OUTPUT, "datatype": "FP32", "shape": [-1, len(source.labels)]},
        ]
    else:
        outputs = [
            {"name": EMBEDDING_OUTPUT, "datatype": "FP32", "shape": [-1, source.hidden_size]}
        ]
    return {"inputs": [text], "outputs": outputs}


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _score_name(task: str) -> str:
    return PROBABILITIES_OUTPUT if task == TEXT_CLASSIFICATION else EMBEDDING_OUTPUT


def run_pipeline(
    *, session: Any, pipeline: TextPipeline, texts: Sequence[str], task: str
) -> np.ndarray:
    """The candidate, the model server's way, in batches of ``PARITY_BATCH``."""
    import numpy as np

    graph_outputs = [o.name for o in session.get_outputs()]
    results = []
    for start in range(0, len(texts), PARITY_BATCH):
        chunk = np.array(list(texts[start : start + PARITY_BATCH]), dtype=object)
        feeds = pipeline.encode({pipeline.text_input: chunk})
        raw = dict(zip(graph_outputs, session.run(graph_outputs, feeds), strict=True))
        results.append(pipeline.decode(raw, feeds)[_score_name(task)])
    return np.concatenate(results, axis=0).astype(np.float32)


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import numpy as np

    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return np.asarray((a64 * b64).sum(axis=1) / np.maximum(norms, 1e-12))


def compare(
    *, reference: np.ndarray, actual: np.ndarray, gate: CosineGate, task: str
) -> ParityReport:
    """Cosine per row (the figure that matters for embeddings) and max abs diff, both gated;
    for a classifier, also the share of rows whose top class agrees (all of them, for FP32)."""
    import numpy as np

    if actual.shape != reference.shape:
        max_abs_diff = math.inf
        cosines = np.zeros(len(reference))
    else:
        diff = float(np.abs(actual.astype(np.float64) - reference.astype(np.float64)).max())
        max_abs_diff = math.inf if math.isnan(diff) else diff
        cosines = np.nan_to_num(_row_cosines(reference, actual), nan=0.0)
    agreement = None
    if task == TEXT_CLASSIFICATION and actual.shape == reference.shape:
        agreement = float(np.mean(actual.argmax(axis=1) == reference.argmax(axis=1)))
    min_cos, mean_cos = float(cosines.min()), float(cosines.mean())
    passed = (
        max_abs_diff <= gate.tolerance
        and min_cos >= gate.min_cosine
        and mean_cos >= gate.mean_cosine
        and (agreement is None or gate.min_cosine < MIN_COSINE_FP32 or agreement == 1.0)
    )
    # Cosine figures ride as extra fields of the report (it keeps what a kind of model adds).
    return ParityReport.model_validate(
        {
            "samples": len(reference),
            "max_abs_diff": max_abs_diff,
            "argmax_agreement": agreement,
            "tolerance": gate.tolerance,
            "passed": passed,
            "reference": "transformers (eager torch)",
            "outputs": {_score_name(task): max_abs_diff},
            "min_cosine": round(min_cos, 9),
            "mean_cosine": round(mean_cos, 9),
            "min_cosine_floor": gate.min_cosine,
            "mean_cosine_floor": gate.mean_cosine,
        }
    )


def _describe(parity: ParityReport, *, precision: str) -> str:
    extra = parity.model_extra or {}
    return (
        f"{precision} ONNX disagrees with {parity.reference} on {parity.samples} sentences: "
        f"cosine min {extra.get('min_cosine')} (floor {extra.get('min_cosine_floor')}), mean "
        f"{extra.get('mean_cosine')} (floor {extra.get('mean_cosine_floor')}), max abs diff "
        f"{parity.max_abs_diff:.3g} (tolerance {parity.tolerance:g})"
        + (
            f", argmax agreement {parity.argmax_agreement:.4f}"
            if parity.argmax_agreement is not None
            else ""
        )
    )


def _default_description(source: HfSource, *, precision: str) -> str:
    what = (
        f"sentence embedding ({source.hidden_size}-d, mean pooling, L2-normalised)"
        if source.task == FEATURE_EXTRACTION
        else f"text classifier ({len(source.labels)} classes: {', '.join(source.labels[:5])})"
    )
    return (
        f"{source.directory.name}: {what}, {precision.upper()}. input: text, BYTES [n] "
        f"(one string per row, cut at {source.max_length} tokens)."
    )
