"""Read a tensor signature (v2 vocabulary) straight from an ONNX graph.

The build writes the manifest's signature with this and verification recomputes it with this,
so the two can only disagree when the manifest was edited or the model swapped.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from functions.core.errors import InvalidArtifact
from functions.core.manifest import Signature, TensorSpec

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
    inputs = [_tensor_spec(value) for value in graph.input if value.name not in initializers]
    outputs = [_tensor_spec(value) for value in graph.output]
    if not inputs or not outputs:
        raise InvalidArtifact("the ONNX graph must have at least one input and one output")
    return Signature(inputs=inputs, outputs=outputs)


def _tensor_spec(value: onnx.ValueInfoProto) -> TensorSpec:
    import onnx

    if value.type.WhichOneof("value") != "tensor_type":
        raise InvalidArtifact(f"graph value {value.name!r} is not a tensor")
    tensor_type = value.type.tensor_type
    onnx_name = onnx.TensorProto.DataType.Name(tensor_type.elem_type)
    datatype = ONNX_TO_V2_DATATYPE.get(onnx_name)
    if datatype is None:
        raise InvalidArtifact(
            f"graph value {value.name!r} has ONNX type {onnx_name}, "
            "which the Open Inference Protocol cannot carry"
        )
    if not tensor_type.HasField("shape"):
        raise InvalidArtifact(f"graph value {value.name!r} has no shape (rank unknown)")
    # A dim with a symbolic name (dim_param) or no value at all is dynamic: -1 in v2.
    shape = [
        dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else -1
        for dim in tensor_type.shape.dim
    ]
    return TensorSpec(name=value.name, datatype=datatype, shape=shape)
