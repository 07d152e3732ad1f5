"""The SageMaker hosting contract (``/ping``, ``/invocations``) over HTTP, JSON and binary."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from serving.app import create_hosting_app
from serving.config import ServingConfig
from serving.protocol import SAGEMAKER_BINARY
from tests.serving.serving_testkit import (
    binary_body,
    expected_logits,
    infer_body,
    running_server,
    split_binary_response,
)

CONFIG = ServingConfig(ort_threads=1, max_request_bytes=64 * 1024)


@pytest.fixture
def client(classifier_tar: Path) -> Iterator[httpx.Client]:
    app = create_hosting_app(model_dir=classifier_tar.parent, config=CONFIG)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def test_ping_once_loaded(client: httpx.Client) -> None:
    response = client.get("/ping")
    assert response.status_code == 200
    assert response.json()["version"] == "3"


def test_json_inference(client: httpx.Client, batch: np.ndarray) -> None:
    response = client.post("/invocations", json=infer_body(batch, id="r1"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["model_name"] == "digits"
    assert doc["model_version"] == "3"
    assert doc["id"] == "r1"
    logits, label = doc["outputs"]
    assert (logits["name"], logits["datatype"], logits["shape"]) == ("logits", "FP32", [2, 10])
    assert (label["name"], label["datatype"], label["shape"]) == ("label", "INT64", [2])
    want = expected_logits(batch, seed=1)
    np.testing.assert_allclose(np.array(logits["data"]).reshape(2, 10), want, rtol=1e-5, atol=1e-5)
    assert label["data"] == want.argmax(axis=1).tolist()


def test_nested_data_and_output_selection(client: httpx.Client, batch: np.ndarray) -> None:
    body = {
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": [2, 1, 8, 8], "data": batch.tolist()}
        ],
        "outputs": [{"name": "label"}],
    }
    doc = client.post("/invocations", json=body).json()
    assert [o["name"] for o in doc["outputs"]] == ["label"]
    assert doc["outputs"][0]["data"] == expected_logits(batch, seed=1).argmax(axis=1).tolist()


@pytest.mark.parametrize("via", ["header", "content-type"])
def test_binary_request_and_binary_response(
    client: httpx.Client, batch: np.ndarray, via: str
) -> None:
    body, length = binary_body([("input", "FP32", batch)], parameters={"binary_data_output": True})
    if via == "header":
        headers = {"Inference-Header-Content-Length": str(length)}
    else:  # what SageMaker clients send: custom headers do not survive its front end
        headers = {"Content-Type": f"{SAGEMAKER_BINARY};json-header-size={length}"}
    response = client.post("/invocations", content=body, headers=headers)
    assert response.status_code == 200, response.text
    out_length = int(response.headers["Inference-Header-Content-Length"])
    assert response.headers["content-type"] == f"{SAGEMAKER_BINARY};json-header-size={out_length}"
    header, chunks = split_binary_response(response.content, out_length)
    assert header["model_version"] == "3"
    logits = np.frombuffer(chunks["logits"], dtype=np.float32).reshape(2, 10)
    np.testing.assert_allclose(logits, expected_logits(batch, seed=1), rtol=1e-5, atol=1e-5)
    assert np.frombuffer(chunks["label"], dtype=np.int64).tolist() == logits.argmax(1).tolist()


def test_binary_request_with_per_output_choice(client: httpx.Client, batch: np.ndarray) -> None:
    body, length = binary_body(
        [("input", "FP32", batch)],
        outputs=[{"name": "label", "parameters": {"binary_data": False}}, {"name": "logits"}],
    )
    response = client.post(
        "/invocations", content=body, headers={"Inference-Header-Content-Length": str(length)}
    )
    assert response.headers["content-type"] == "application/json"  # nothing asked as binary
    assert [o["name"] for o in response.json()["outputs"]] == ["label", "logits"]


def _tensor(**change: Any) -> dict[str, Any]:
    tensor = {"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0.5] * 64}
    tensor.update(change)
    return {"inputs": [tensor]}


BAD_REQUESTS: dict[str, tuple[bytes | dict[str, Any], str]] = {
    "malformed JSON": (b'{"inputs": [', "invalid_request"),
    "not an object": (b'"hello"', "invalid_request"),
    "empty body": (b"", "invalid_request"),
    "binary junk": (bytes(range(256)), "invalid_request"),
    "unknown input": (_tensor(name="pixels"), "invalid_tensor"),
    "missing input": (
        {"inputs": [{"name": "other", "datatype": "FP32", "shape": [1], "data": [1]}]},
        "invalid_tensor",
    ),
    "wrong datatype": (_tensor(datatype="FP64"), "invalid_tensor"),
    "int data for float": (_tensor(datatype="INT64", data=[1] * 64), "invalid_tensor"),
    "wrong rank": (_tensor(shape=[1, 64], data=[0.5] * 64), "invalid_tensor"),
    "wrong fixed dim": (_tensor(shape=[1, 1, 4, 16]), "invalid_tensor"),
    "huge shape": (_tensor(shape=[10**9, 1, 8, 8]), "payload_too_large"),
    "element count mismatch": (_tensor(data=[0.5] * 63), "invalid_tensor"),
    "NaN strings": (_tensor(data=["NaN"] * 64), "invalid_tensor"),
    "NaN literal": (json.dumps(_tensor(data=[float("nan")] * 64)).encode(), "invalid_request"),
    "null data": (_tensor(data=[None] * 64), "invalid_tensor"),
    "ragged data": (_tensor(data=[[0.5] * 32, [0.5] * 31]), "invalid_tensor"),
    "unknown output": ({**_tensor(), "outputs": [{"name": "probs"}]}, "invalid_tensor"),
    "BYTES": (_tensor(datatype="BYTES", data=["x"] * 64), "invalid_tensor"),
}


@pytest.mark.parametrize(("body", "code"), BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_input_is_a_4xx_and_the_server_keeps_serving(
    client: httpx.Client, batch: np.ndarray, body: bytes | dict[str, Any], code: str
) -> None:
    if isinstance(body, dict):
        response = client.post("/invocations", json=body)
    else:
        response = client.post(
            "/invocations", content=body, headers={"Content-Type": "application/json"}
        )
    # The router's statuses: the model server runs the same codec.
    assert (
        response.status_code
        == {"invalid_request": 400, "invalid_tensor": 422, "payload_too_large": 413}[code]
    )
    assert response.json()["code"] == code, response.text
    assert set(response.json()) == {"error", "code"}
    assert client.post("/invocations", json=infer_body(batch)).status_code == 200


def test_bad_binary_input_is_a_400(client: httpx.Client, batch: np.ndarray) -> None:
    body, length = binary_body([("input", "FP32", batch)])
    for headers in (
        {"Inference-Header-Content-Length": str(len(body) + 1)},
        {"Inference-Header-Content-Length": "-3"},
        {"Content-Type": f"{SAGEMAKER_BINARY};json-header-size=abc"},
    ):
        response = client.post("/invocations", content=body, headers=headers)
        assert response.status_code == 400, headers
    truncated = client.post(
        "/invocations", content=body[:-4], headers={"Inference-Header-Content-Length": str(length)}
    )
    assert truncated.status_code == 400
    assert truncated.json()["code"] == "invalid_request"


def test_oversized_body_is_a_413(client: httpx.Client) -> None:
    response = client.post("/invocations", content=b"x" * (CONFIG.max_request_bytes + 1))
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_unknown_route_answers_in_the_error_shape(client: httpx.Client) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found", "code": "not_found"}
    assert client.get("/invocations").status_code == 405


def test_a_model_that_cannot_load_stops_startup(tmp_path: Path) -> None:
    (tmp_path / "modelway.json").write_text("{not json")
    app = create_hosting_app(model_dir=tmp_path, config=CONFIG)
    with pytest.raises(RuntimeError, match="failed to start"), running_server(app):
        pass
