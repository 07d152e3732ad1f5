"""Inputs whose graph names an axis alike (``dim_param``) must agree on its size: a request that
breaks it is the client's 422, not ONNX Runtime failing as a 500, even when the manifest (an
older one) names no axes: the model server takes the names from the graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from starlette.testclient import TestClient

from serving.app import create_hosting_app
from serving.config import ServingConfig
from tests.serving.serving_testkit import OPSET, package

SIGNATURE = {  # as a manifest written before dim_names existed
    "inputs": [
        {"name": "a", "datatype": "FP32", "shape": [-1, -1]},
        {"name": "b", "datatype": "FP32", "shape": [-1, -1]},
    ],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, -1]}],
}


def _adder() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "adder",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", "sequence"]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    package(tmp_path / "model.tar.gz", _adder(), name="adder", version=1, signature=SIGNATURE)
    return TestClient(create_hosting_app(model_dir=tmp_path, config=ServingConfig(ort_threads=1)))


def _request(a: np.ndarray, b: np.ndarray) -> dict[str, object]:
    return {
        "inputs": [
            {"name": name, "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}
            for name, x in (("a", a), ("b", b))
        ]
    }


def test_sequence_lengths_that_differ_are_a_422_and_equal_ones_run(client: TestClient) -> None:
    with client:
        response = client.post("/invocations", json=_request(np.ones((1, 3)), np.ones((1, 4))))
        assert response.status_code == 422, response.text
        assert response.json() == {
            "error": "input 'b' axis 1 ('sequence') is 4, but input 'a' axis 1 is 3: the model "
            "needs them equal",
            "code": "invalid_tensor",
        }
        ok = client.post("/invocations", json=_request(np.ones((1, 4)), np.ones((1, 4))))
        assert ok.status_code == 200, ok.text
        assert ok.json()["outputs"][0]["data"] == [2.0] * 4
