"""Read a tensor signature (v2 vocabulary) straight from an ONNX graph.

The build writes the manifest's signature with this and verification recomputes it with this,
so the two can only disagree when the manifest was edited or the model swapped.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from functions.core.exceptions import InvalidArtifact
from functions.core.manifest import Signature, TensorSpec
from model_build.exceptions import NoBatchAxis, UnsupportedDatatype

if TYPE_CHECKING:
    import onnx

# ONNX ``TensorProto.DataType`` names → Open Inference Protocol datatypes. Keyed by name, not
# enum value, so the table reads like the two specs and needs no onnx import.
ONNX_TO_V2_DATATYPE: dict[str, str] = {
    "BOOL": "BOOL",
    "UINT8": "UINT8",
    "UINT16": "UINT16",
    "UINT32": "UINT32",
    "UINT64": "UINT64",
    "INT8": "INT8",
    "INT16": "INT16",
    "INT32": "INT32",
    "INT64": "INT64",
    "FLOAT16": "FP16",
    "FLOAT": "FP32",
    "DOUBLE": "FP64",
    "STRING": "BYTES",
}


def signature_from_onnx(model_path: Path) -> Signature:
    """The signature of the ONNX model file at ``model_path``."""
    import onnx

    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ... for a bad file
        raise InvalidArtifact(f"{model_path.name} is not a readable ONNX model: {exc}") from exc
    return signature_from_model(model)


def signature_from_model(model: onnx.ModelProto) -> Signature:
    """The signature of a loaded graph: its real inputs (not initializers) and its outputs."""
    graph = model.graph
    # Older IR versions list initializers among the inputs; those are weights, not inputs.
    initializers = {init.name for init in graph.initializer}
    values = [value for value in graph.input if value.name not in initializers]
    inputs = _with_shared_dim_names([_tensor_spec(value) for value in values], values)
    outputs = [_tensor_spec(value) for value in graph.output]
    if not inputs or not outputs:
        raise InvalidArtifact("the ONNX graph must have at least one input and one output")
    return Signature(inputs=inputs, outputs=outputs)


def _with_shared_dim_names(
    specs: list[TensorSpec], values: list[onnx.ValueInfoProto]
) -> list[TensorSpec]:
    """Name the dynamic axes that several inputs share (the graph's ``dim_param``), so that the
    router refuses e.g. an ``attention_mask`` longer than its ``input_ids`` (422) instead of the
    model failing on it. Names no other input uses constrain nothing and are left out."""
    names = [
        [
            dim.dim_param
            if dim.HasField("dim_param") and spec.shape[axis] == -1 and len(dim.dim_param) <= 256
            else None
            for axis, dim in enumerate(value.type.tensor_type.shape.dim)
        ]
        for spec, value in zip(specs, values, strict=True)
    ]
    users: dict[str, set[str]] = {}
    for spec, axes in zip(specs, names, strict=True):
        for name in axes:
            if name:
                users.setdefault(name, set()).add(spec.name)
    shared = {name for name, inputs in users.items() if len(inputs) > 1}
    result = []
    for spec, axes in zip(specs, names, strict=True):
        kept = [name if name in shared else None for name in axes]
        result.append(spec.model_copy(update={"dim_names": kept}) if any(kept) else spec)
    return result


def require_batch_axis(signature: Signature) -> None:
    """Refuse a signature whose inputs do not all start with a dynamic axis.

    The protocol's requests carry rows along axis 0, and the model server stacks requests
    along it; a fixed first axis (or a scalar input) allows neither."""
    for spec in signature.inputs:
        if not spec.shape or spec.shape[0] != -1:
            raise NoBatchAxis(
                f"input {spec.name!r} has shape {spec.shape}: its first axis is not a dynamic "
                "batch axis; export the model with a dynamic first axis (torch: dynamic_shapes "
                "or --dynamic; skl2onnx: initial_types=[(name, FloatTensorType([None, ...]))])"
            )


def _tensor_spec(value: onnx.ValueInfoProto) -> TensorSpec:
    import onnx

    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise UnsupportedDatatype(_not_a_tensor(value, kind))
    tensor_type = value.type.tensor_type
    onnx_name = onnx.TensorProto.DataType.Name(tensor_type.elem_type)
    datatype = ONNX_TO_V2_DATATYPE.get(onnx_name)
    if datatype is None:
        raise UnsupportedDatatype(
            f"graph value {value.name!r} has ONNX type {onnx_name}, "
            "which the Open Inference Protocol cannot carry; cast it in the graph "
            "(e.g. to FLOAT or FLOAT16)"
        )
    if not tensor_type.HasField("shape"):
        raise InvalidArtifact(f"graph value {value.name!r} has no shape (rank unknown)")
    # A dim with a symbolic name (dim_param) or no value at all is dynamic: -1 in v2.
    shape = [
        dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else -1
        for dim in tensor_type.shape.dim
    ]
    return TensorSpec(name=value.name, datatype=datatype, shape=shape)


def _not_a_tensor(value: onnx.ValueInfoProto, kind: str | None) -> str:
    described = {"sequence_type": "a sequence", "map_type": "a map", "optional_type": "an optional"}
    what = described.get(kind or "", "not a tensor")
    if kind == "sequence_type" and value.type.sequence_type.elem_type.WhichOneof("value") == (
        "map_type"
    ):
        # What scikit-learn converters emit by default for a classifier's probabilities.
        return (
            f"graph value {value.name!r} is a sequence of maps (scikit-learn's ZipMap), which "
            "the Open Inference Protocol cannot carry; convert without it to get a "
            "[batch, classes] tensor: skl2onnx.to_onnx(clf, X, "
            "options={id(clf): {'zipmap': False}})"
        )
    return (
        f"graph value {value.name!r} is {what}, not a tensor: the Open Inference Protocol "
        "carries only tensors"
    )
