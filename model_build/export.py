"""torch → ONNX, one exporter and one opset for every model modelway packages.

The torch.export-based ("dynamo") exporter: it is torch's default since 2.9, the TorchScript
exporter is deprecated and slated for removal, and it names dynamic axes from ``Dim`` objects.
Weights are kept inside the one ``.onnx`` file because the artifact carries only that file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from functions.core.exceptions import InvalidArtifact
from model_build.exceptions import ExportFailed, one_line

if TYPE_CHECKING:
    import numpy as np
    import onnx
    import torch

    from functions.core.manifest import Signature

OPSET = 18
EXPORTER = "torch.onnx.dynamo"
BATCH_AXIS = "batch"

# input name → {axis: dimension name}. Axes of different inputs that share a name are one
# dimension (token ids and their attention mask share "sequence").
DynamicAxes = Mapping[str, Mapping[int, str]]


def export_onnx(
    *,
    model: torch.nn.Module,
    inputs: Mapping[str, torch.Tensor],
    path: Path,
    output_names: Sequence[str],
    dynamic_axes: DynamicAxes | None = None,
    max_lengths: Mapping[str, int] | None = None,
) -> Path:
    """Export ``model`` called as ``model(**inputs)`` and check the file.

    Axis 0 of every input is the dynamic batch axis; ``dynamic_axes`` names more (e.g.
    ``{"token_ids": {1: "sequence"}}``), and ``max_lengths`` bounds a named dimension
    (``{"sequence": 256}``). Every dynamic axis of the example must be at least 2 long, or
    torch.export specializes it to its example size.
    """
    import onnx
    import torch

    dimensions: dict[str, torch.export.Dim] = {}

    def dim(name: str) -> torch.export.Dim:
        if name not in dimensions:
            upper = (max_lengths or {}).get(name)
            dimensions[name] = (
                torch.export.Dim(name) if upper is None else torch.export.Dim(name, max=upper)
            )
        return dimensions[name]

    unknown = sorted(set(dynamic_axes or {}) - set(inputs))
    if unknown:
        raise ExportFailed(f"dynamic axes name unknown input(s) {unknown}; inputs: {list(inputs)}")
    named = {dim_name for axes in (dynamic_axes or {}).values() for dim_name in axes.values()}
    unbound = sorted(set(max_lengths or {}) - named)
    if unbound:
        raise ExportFailed(f"max lengths name no dynamic axis: {unbound} (named: {sorted(named)})")
    shapes: dict[str, dict[int, torch.export.Dim]] = {}
    for name, tensor in inputs.items():
        axes = {0: BATCH_AXIS, **dict((dynamic_axes or {}).get(name, {}))}
        for axis, dim_name in axes.items():
            if not 0 <= axis < tensor.ndim:
                raise ExportFailed(f"input {name!r} has no axis {axis} (rank {tensor.ndim})")
            if tensor.shape[axis] < 2:
                raise ExportFailed(
                    f"input {name!r} axis {axis} ({dim_name}) is {tensor.shape[axis]} long in "
                    "the samples; give at least 2 so the axis stays dynamic"
                )
        shapes[name] = {axis: dim(dim_name) for axis, dim_name in axes.items()}

    model.eval()
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
                (),
                str(path),
                kwargs=dict(inputs),
                input_names=list(inputs),
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                dynamic_shapes=shapes,
                verbose=False,
            )
    except Exception as exc:  # torch.export raises many kinds (UserError, RuntimeError, ...)
        raise ExportFailed(
            f"torch.onnx.export failed: {type(exc).__name__}: {one_line(exc)}"
        ) from exc
    finally:
        exporter_log.setLevel(previous_level)
    model_proto = onnx.load(str(path))
    graph_outputs = [value.name for value in model_proto.graph.output]
    if len(graph_outputs) != len(output_names):
        raise ExportFailed(
            f"the exported graph has {len(graph_outputs)} output(s), but {len(output_names)} "
            f"output name(s) were given: {list(output_names)}"
        )
    rename_values(model_proto.graph, dict(zip(graph_outputs, output_names, strict=True)))
    onnx.save(model_proto, str(path))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise InvalidArtifact(f"the exported ONNX model does not pass onnx.checker: {exc}") from exc
    return path


def rename_values(graph: onnx.GraphProto, renames: Mapping[str, str]) -> None:
    """Rename values of ``graph`` (``old → new``) everywhere they occur.

    The exporter names internal values after the modules that make them (an ``nn.Embedding``
    attribute ``embedding`` yields a value ``embedding``), so naming an output the same would
    break single assignment; a value already holding a wanted name is moved aside first.
    """
    taken = _value_names(graph)
    wanted = {new for old, new in renames.items() if old != new}
    moves: dict[str, str] = {}
    for name in sorted(wanted & taken - set(renames)):
        fresh, n = f"{name}__internal", 1
        while fresh in taken or fresh in wanted:
            fresh, n = f"{name}__internal{n}", n + 1
        moves[name] = fresh
    moves.update({old: new for old, new in renames.items() if old != new})
    if not moves:
        return

    def swap(name: str) -> str:
        return moves.get(name, name)

    for node in graph.node:
        node.input[:] = [swap(n) for n in node.input]
        node.output[:] = [swap(n) for n in node.output]
    for collection in (graph.input, graph.output, graph.value_info):
        for value in collection:
            value.name = swap(value.name)
    for initializer in graph.initializer:
        initializer.name = swap(initializer.name)


def _value_names(graph: onnx.GraphProto) -> set[str]:
    names = {n for node in graph.node for n in (*node.input, *node.output)}
    names |= {v.name for v in (*graph.input, *graph.output, *graph.value_info)}
    return names | {i.name for i in graph.initializer}


def eager_output_names(module: torch.nn.Module, arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Names for the outputs of one eager run: a returned dict's keys, else ``output``."""
    import torch

    from model_build.parity import flatten_outputs

    first = {name: torch.from_numpy(array[:2]) for name, array in arrays.items()}
    try:
        with torch.no_grad():
            result = module(**first)
    except Exception as exc:
        raise ExportFailed(
            f"{type(module).__name__} fails on the samples in eager torch: "
            f"{type(exc).__name__}: {one_line(exc)}"
        ) from exc
    if isinstance(result, Mapping) and all(isinstance(v, torch.Tensor) for v in result.values()):
        return [str(key) for key in result]
    count = len(flatten_outputs(result))
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def with_max_lengths(
    signature: Signature, dynamic_axes: DynamicAxes, max_lengths: Mapping[str, int]
) -> Signature:
    """The graph's signature with each bounded dimension's ``max_shape`` on the inputs that
    have it: the router refuses a longer request (422) before it reaches the model."""
    from functions.core.manifest import Signature as ManifestSignature

    inputs = []
    for spec in signature.inputs:
        axes = {
            axis: max_lengths[dim]
            for axis, dim in dynamic_axes.get(spec.name, {}).items()
            if dim in max_lengths and spec.shape[axis] == -1
        }
        if axes:
            spec = spec.model_copy(
                update={"max_shape": [axes.get(axis, -1) for axis in range(len(spec.shape))]}
            )
        inputs.append(spec)
    return ManifestSignature(inputs=inputs, outputs=signature.outputs)


def check_dynamic_axes(signature: Signature, dynamic_axes: DynamicAxes) -> None:
    """Refuse an export that fixed an axis the user named dynamic: torch.export specializes a
    dimension the module's code ties to a constant (a reshape to a literal size, say),
    silently, and every request of another length would then be refused."""
    specs = {spec.name: spec for spec in signature.inputs}
    for name, axes in dynamic_axes.items():
        for axis, dim_name in axes.items():
            size = specs[name].shape[axis]
            if size != -1:
                raise ExportFailed(
                    f"input {name!r} axis {axis} ({dim_name}) was exported with the fixed size "
                    f"{size}: the module's code ties it to that size (e.g. a reshape to a "
                    "constant); compute the size from the input's shape to keep it dynamic"
                )
