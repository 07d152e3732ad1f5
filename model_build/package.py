"""Any model in, one verified ``model.tar.gz`` out: the packaging API.

``package_onnx`` wraps an ONNX file from any exporter; ``package_torch`` exports an
``nn.Module``; ``package_hf`` (``model_build.hf``) a Hugging Face directory. All end in
``assemble``: load the graph in ONNX Runtime, run it, check parity with the reference, measure
latency, write the manifest and the archive, and verify the archive as publishing will. A
model that cannot serve is refused here, with a one-line reason (``model_build.exceptions``).

Its own module: the one path every packaging takes. Each step lives where it is done
everywhere: the torch export in ``model_build.export``, the samples in ``model_build.samples``,
parity in ``model_build.parity``, ONNX Runtime in ``model_build.runner``, and the archive
itself (``write_artifact``, deterministic, the layout SageMaker unpacks) in
``functions.core.archive``, beside the checks publishing applies to it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.core import progress
from functions.core.archive import sha256_file, write_artifact
from functions.core.clock import utc_now
from functions.core.manifest import ARTIFACT_NAME, MODEL_FILE_NAME, Manifest
from functions.core.naming import MODEL_NAME_RE
from model_build.exceptions import (
    ExportFailed,
    InvalidModel,
    InvalidSamples,
    PackagingError,
    ParityFailed,
    SourceNotFound,
    one_line,
)
from model_build.parity import DEFAULT_TOLERANCE
from model_build.result import BuildResult

if TYPE_CHECKING:
    import numpy as np
    import torch

    from functions.core.manifest import ParityReport, Signature
    from model_build.export import DynamicAxes

# Named arrays, or the .npz file that holds them.
ArraysOrFile = Mapping[str, "np.ndarray"] | Path | str


def package_onnx(
    model: Path | str,
    *,
    name: str,
    out_dir: Path,
    samples: ArraysOrFile | None = None,
    expected: ArraysOrFile | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    scores_output: str | None = None,
    labels: Sequence[str] | None = None,
    description: str = "",
    capture: Mapping[str, Any] | None = None,
) -> BuildResult:
    """Package the ONNX file ``model`` (from any exporter) as ``out_dir/model.tar.gz``.

    The signature is read from the graph. ``samples`` (named as the graph's inputs, at least 2
    rows) are run and timed; without them, inputs are generated from the signature and run
    once. ``expected`` (named as the graph's outputs, one row per sample row: what the
    original framework gave) is compared with ONNX Runtime's answer, and a difference over
    ``tolerance`` (absolute) refuses the model. Raises a ``PackagingError`` subclass.
    """
    import onnx

    from model_build.parity import compare_outputs, unchecked
    from model_build.runner import load_and_run
    from model_build.samples import check_expected, check_inputs, generate_inputs
    from model_build.signature import signature_from_model

    started = time.perf_counter()
    _check_name(name)
    source = Path(model)
    if not source.is_file():
        raise SourceNotFound(f"ONNX file {source} does not exist")
    if expected is not None and samples is None:
        raise InvalidSamples("expected outputs need the samples they were computed from")
    if scores_output is not None and expected is None:
        raise InvalidSamples("a scores output is compared with expected outputs: give them")
    progress.report("checking the ONNX graph")
    try:
        graph = onnx.load(str(source), load_external_data=False)
        # Weights an exporter wrote to files beside the model are packed inline.
        external = any(t.data_location == t.EXTERNAL for t in graph.graph.initializer)
        if external:
            onnx.external_data_helper.load_external_data_for_model(graph, str(source.parent))
        onnx.checker.check_model(graph)
    except Exception as exc:  # DecodeError, ValidationError, OSError: not a usable model
        raise InvalidModel(f"{source.name} is not a valid ONNX model: {one_line(exc)}") from exc
    signature = signature_from_model(graph)
    with tempfile.TemporaryDirectory(prefix="modelway-package-") as work:
        onnx_path = Path(work) / MODEL_FILE_NAME
        if external:
            _save_inline(graph, onnx_path)
        else:
            shutil.copyfile(source, onnx_path)  # the user's bytes, unchanged
        if samples is not None:
            feeds = check_inputs(_arrays(samples, what="samples"), signature)
            origin = "sample"
        else:
            feeds = generate_inputs(signature)
            origin = "generated"
        session, outputs = load_and_run(onnx_path, signature, feeds, origin=origin)
        del session
        if expected is not None:
            reference = check_expected(
                _arrays(expected, what="expected outputs"),
                signature,
                batch=_rows(feeds),
            )
            if not reference:
                raise InvalidSamples("the expected outputs file names none of the model's outputs")
            if scores_output is not None and scores_output not in reference:
                raise InvalidSamples(
                    f"scores output {scores_output!r} is not in the expected outputs"
                )
            parity = compare_outputs(
                expected=reference,
                actual=outputs,
                tolerance=tolerance,
                reference="expected",
                scores_output=scores_output,
            )
        else:
            parity = unchecked(rows=_rows(feeds))
        producer = " ".join(p for p in (graph.producer_name, graph.producer_version) if p)
        return assemble(
            onnx_path=onnx_path,
            name=name,
            out_dir=out_dir,
            feeds=feeds,
            parity=parity,
            frameworks={"producer": producer or "unknown", **_onnx_frameworks(graph)},
            source={"kind": "onnx", "file": source.name, "inputs": origin},
            labels=labels,
            description=description,
            capture=capture,
            started=started,
        )


def package_torch(
    module: torch.nn.Module,
    *,
    name: str,
    samples: ArraysOrFile,
    out_dir: Path,
    dynamic_axes: DynamicAxes | None = None,
    max_lengths: Mapping[str, int] | None = None,
    output_names: Sequence[str] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    scores_output: str | None = None,
    labels: Sequence[str] | None = None,
    description: str = "",
    metrics: Mapping[str, float] | None = None,
    source: Mapping[str, str] | None = None,
    capture: Mapping[str, Any] | None = None,
) -> BuildResult:
    """Export ``module`` to ONNX and package it as ``out_dir/model.tar.gz``.

    ``samples`` are named as ``forward``'s parameters (they become the graph's input names),
    at least 2 rows. Axis 0 of every input is a dynamic batch axis; ``dynamic_axes`` names
    more (``{"token_ids": {1: "sequence"}, "mask": {1: "sequence"}}``) and ``max_lengths``
    bounds them (``{"sequence": 256}``). Outputs are named by ``output_names``, else by the
    keys of a returned dict, else ``output`` (``output_0``, ``output_1``, ... for several).
    Parity with eager torch is checked on the samples, on the first row alone, and with every
    named dynamic dimension one shorter; any difference over ``tolerance`` refuses the model.
    """
    import torch

    from model_build.export import (
        EXPORTER,
        OPSET,
        check_dynamic_axes,
        eager_output_names,
        export_onnx,
        with_max_lengths,
    )
    from model_build.parity import compare_outputs, merge_reports, parity_variants, torch_outputs
    from model_build.runner import load_and_run, run_rows
    from model_build.samples import forward_arguments
    from model_build.signature import signature_from_onnx

    started = time.perf_counter()
    _check_name(name)
    if not isinstance(module, torch.nn.Module):
        raise ExportFailed(f"expected a torch.nn.Module, got {type(module).__name__}")
    module.eval()
    arrays = forward_arguments(module, _arrays(samples, what="samples"))
    names = list(output_names) if output_names else eager_output_names(module, arrays)
    with tempfile.TemporaryDirectory(prefix="modelway-package-") as work:
        progress.report("exporting to ONNX")
        onnx_path = export_onnx(
            model=module,
            inputs={key: torch.from_numpy(value) for key, value in arrays.items()},
            path=Path(work) / MODEL_FILE_NAME,
            output_names=names,
            dynamic_axes=dynamic_axes,
            max_lengths=max_lengths,
        )
        signature = with_max_lengths(
            signature_from_onnx(onnx_path), dynamic_axes or {}, max_lengths or {}
        )
        graph_inputs = [spec.name for spec in signature.inputs]
        if sorted(graph_inputs) != sorted(arrays):
            # torch.export drops a parameter forward never reads.
            raise ExportFailed(
                f"the exported graph takes inputs {graph_inputs}, the samples give "
                f"{sorted(arrays)}: drop the samples forward does not use"
            )
        check_dynamic_axes(signature, dynamic_axes or {})
        progress.report("checking parity with torch")
        session, _ = load_and_run(onnx_path, signature, arrays, origin="sample")
        reports = []
        for label, feeds in parity_variants(arrays, dynamic_axes or {}):
            actual = run_rows(session, feeds, source=f"{label} sample")
            expected = torch_outputs(model=module, inputs=feeds, output_names=names)
            report = compare_outputs(
                expected=expected,
                actual=actual,
                tolerance=tolerance,
                reference="torch",
                scores_output=scores_output,
            )
            reports.append((label, report))
        del session
        parity = merge_reports(reports)
        return assemble(
            onnx_path=onnx_path,
            name=name,
            out_dir=out_dir,
            feeds=arrays,
            parity=parity,
            frameworks={
                "torch": torch.__version__,
                "exporter": EXPORTER,
                **_onnx_frameworks(None, opset=OPSET),
            },
            source={"kind": "torch", "module": type(module).__name__, **(source or {})},
            labels=labels,
            description=description,
            metrics=metrics,
            signature=signature,
            capture=capture,
            started=started,
        )


def package_hf(directory: Path | str, **kwargs: Any) -> BuildResult:
    """A local Hugging Face encoder directory: ``model_build.hf.package_hf`` (its arguments:
    ``task``, ``name``, ``out_dir``, ``precision``, ``max_length``, ...)."""
    from model_build.hf import package_hf as package

    return package(Path(directory), **kwargs)


def assemble(
    *,
    onnx_path: Path,
    name: str,
    out_dir: Path,
    feeds: Mapping[str, np.ndarray],
    parity: ParityReport,
    frameworks: Mapping[str, str],
    source: Mapping[str, Any],
    labels: Sequence[str] | None = None,
    description: str = "",
    metrics: Mapping[str, float] | None = None,
    signature: Signature | None = None,
    files: Mapping[str, Path] | None = None,
    extra_manifest: Mapping[str, Any] | None = None,
    capture: Mapping[str, Any] | None = None,
    started: float | None = None,
) -> BuildResult:
    """The common end of every packaging: refuse a failed parity, measure latency on
    ``feeds``, write ``out_dir/model.tar.gz`` and verify it as publishing will.

    ``signature`` is the graph's unless given (a model whose server-side pre-processing
    changes what a client sends); ``files`` (archive name → file) are packed beside the
    model (e.g. ``tokenizer.json``) and ``extra_manifest`` merged into the manifest.
    ``capture`` (``{"sensitive": [input names] | ["*"], "mode": "hash" | "drop"}``) marks
    inputs that request capture must hash or leave out (``functions.core.capture``).
    """
    import onnxruntime

    from model_build.latency import measure_latency
    from model_build.parity import describe_failure
    from model_build.reference import reference_statistics
    from model_build.signature import signature_from_onnx
    from model_build.verify import verify_artifact

    started = time.perf_counter() if started is None else started
    if not parity.passed:
        raise ParityFailed(describe_failure(parity))
    progress.report("measuring latency")
    signature = signature if signature is not None else signature_from_onnx(onnx_path)
    # The drift baseline of live traffic (``modelway compare``): the build samples' deciles.
    reference = reference_statistics(signature=signature, feeds=feeds)
    if capture is not None:
        names = {spec.name for spec in signature.inputs}
        unknown = sorted(set(capture.get("sensitive") or ()) - names - {"*"})
        if unknown:
            raise InvalidSamples(
                f"sensitive input(s) {unknown} are not inputs of the model {sorted(names)}"
            )
    manifest = Manifest(
        name=name,
        sha256=sha256_file(onnx_path),
        signature=signature,
        frameworks={**frameworks, "onnxruntime": onnxruntime.__version__},
        parity=parity,
        metrics=dict(metrics or {}),
        latency_ms=measure_latency(onnx_path=onnx_path, feeds=feeds),
        labels=list(labels) if labels is not None else None,
        description=description,
        created_at=utc_now(),
        **{
            "source": dict(source),
            "reference": reference,
            "capture": dict(capture) if capture is not None else None,
            **dict(extra_manifest or {}),
        },
    )
    progress.report("writing model.tar.gz")
    artifact = write_artifact(
        model_path=onnx_path,
        manifest=manifest,
        dest=out_dir / ARTIFACT_NAME,
        files=files,
    )
    progress.report("verifying model.tar.gz as publishing will")
    try:
        # The same gate publishing applies; a package that cannot pass it claims no success.
        verify_artifact(path=artifact)
    except Exception:
        artifact.unlink(missing_ok=True)
        raise
    return BuildResult(artifact=artifact, manifest=manifest, seconds=time.perf_counter() - started)


# Helpers -----------------------------------------------------------------------------------
def _check_name(name: str) -> None:
    if not MODEL_NAME_RE.match(name):
        raise PackagingError(
            f"invalid model name {name!r}: lowercase letters, digits and '-', at most 40, "
            "starting with a letter or digit",
            code="invalid_name",
        )


def _arrays(value: ArraysOrFile, *, what: str) -> Mapping[str, np.ndarray]:
    from model_build.samples import load_npz

    if isinstance(value, str | Path):
        return load_npz(Path(value), what=what)
    return value


def _rows(feeds: Mapping[str, np.ndarray]) -> int:
    return int(next(iter(feeds.values())).shape[0])


def _save_inline(graph: Any, path: Path) -> None:
    """Re-save a model whose weights were in external files with the weights inside: the
    artifact carries one model file. Protobuf caps that at 2 GB."""
    import onnx

    try:
        onnx.save_model(graph, str(path), save_as_external_data=False)
    except ValueError as exc:  # "Message onnx.ModelProto exceeds maximum protobuf size of 2GB"
        raise InvalidModel(
            f"the model's weights do not fit in one ONNX file: {one_line(exc)}"
        ) from exc


def _onnx_frameworks(graph: Any, *, opset: int | None = None) -> dict[str, str]:
    import onnx

    if opset is None:
        opset = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), 0)
    return {"onnx": onnx.__version__, "opset": str(opset)}
