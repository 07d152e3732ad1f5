"""Reading a v2 signature out of an ONNX graph."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from functions.core.exceptions import InvalidArtifact
from functions.core.manifest import DATATYPE_SIZES
from model_build.verify import ONNX_TO_V2_DATATYPE, signature_from_onnx


def _identity_model(path: Path, *, elem_type: int, shape: list[str | int | None]) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", elem_type, shape)],
        [helper.make_tensor_value_info("y", elem_type, shape)],
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_every_mapped_datatype_is_a_v2_datatype() -> None:
    assert ONNX_TO_V2_DATATYPE["FLOAT"] == "FP32"
    assert ONNX_TO_V2_DATATYPE["INT64"] == "INT64"
    assert ONNX_TO_V2_DATATYPE["STRING"] == "BYTES"
    assert set(ONNX_TO_V2_DATATYPE.values()) <= {*DATATYPE_SIZES, "BYTES"}
    # Every name is a real ONNX type name.
    for name in ONNX_TO_V2_DATATYPE:
        TensorProto.DataType.Value(name)


def test_symbolic_and_unknown_dims_become_minus_one(tmp_path: Path) -> None:
    path = _identity_model(tmp_path / "m.onnx", elem_type=TensorProto.FLOAT16, shape=["n", None, 3])
    signature = signature_from_onnx(path)
    assert signature.inputs[0].model_dump() == {
        "name": "x",
        "datatype": "FP16",
        "shape": [-1, -1, 3],
    }
    assert signature.outputs[0].name == "y"


def test_a_type_v2_cannot_carry_is_refused(tmp_path: Path) -> None:
    path = _identity_model(tmp_path / "m.onnx", elem_type=TensorProto.BFLOAT16, shape=[2])
    with pytest.raises(InvalidArtifact, match="BFLOAT16"):
        signature_from_onnx(path)


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\xff\xfe not onnx")
    with pytest.raises(InvalidArtifact, match="not a readable ONNX model"):
        signature_from_onnx(path)
