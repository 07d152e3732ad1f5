"""Packaging records the axes several inputs share (the graph's ``dim_param``) as ``dim_names``,
so the router refuses inputs that disagree on them before the model would fail."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from functions.core import oip
from model_build.signature import signature_from_model


def _model(inputs: dict[str, list[str | int]]) -> onnx.ModelProto:
    names = list(inputs)
    nodes = [helper.make_node("Identity", [names[0]], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.INT64, dims) for n, dims in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.INT64, inputs[names[0]])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_shared_axis_names_are_recorded_and_enforced() -> None:
    signature = signature_from_model(
        _model(
            {
                "input_ids": ["batch", "sequence"],
                "attention_mask": ["batch", "sequence"],
                "token_type": ["batch", "own_axis"],
            }
        )
    )
    assert [t.dim_names for t in signature.inputs] == [
        ["batch", "sequence"], ["batch", "sequence"], ["batch", None]
    ]  # fmt: skip
    codec = signature.to_codec()
    request = {
        "inputs": [
            {"name": "input_ids", "datatype": "INT64", "shape": [1, 3], "data": [1, 2, 3]},
            {"name": "attention_mask", "datatype": "INT64", "shape": [1, 2], "data": [1, 1]},
            {"name": "token_type", "datatype": "INT64", "shape": [1, 5], "data": [0] * 5},
        ]
    }
    with pytest.raises(oip.TensorError, match=r"'attention_mask' axis 1 \('sequence'\) is 2"):
        oip.decode_document(request, signature=codec)


def test_a_single_input_model_names_nothing() -> None:
    (spec,) = signature_from_model(_model({"input": ["N", 1, 8, 8]})).inputs
    assert spec.dim_names is None
    assert "dim_names" not in spec.model_dump()
