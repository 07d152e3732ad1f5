"""Requests are checked against the version's signature before any dispatch: each kind of bad
body gets its own status and a message naming the tensor, and nothing reaches the model."""

from __future__ import annotations

import json
import random
import struct
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.core.exceptions import InvalidInput
from functions.core.manifest import Signature, TensorSpec
from functions.core.oip import decode_document
from functions.core.registry.base import ModelVersion
from functions.core.registry.sqlite import SqliteRegistry
from functions.core.runtime.base import BINARY_JSON, RuntimeResponse
from functions.core.settings import Settings
from tests.api.api_testkit import (
    MODEL,
    PAYLOAD_LIMIT,
    FakeClock,
    add_version,
    build_app,
    digit_request,
    make_key,
)
from tests.runtime_testkit import FakeRuntime

INFER = f"/v2/models/{MODEL}/infer"


def with_input(**changes: Any) -> dict[str, Any]:
    request = digit_request()
    request["inputs"][0].update(changes)
    return request


def nested(batch: int = 1) -> list[Any]:
    return [[[[float(r * 8 + c) for c in range(8)] for r in range(8)]] for _ in range(batch)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2, 3]", "must be a JSON object"),
        (b'"inputs"', "must be a JSON object"),
        (b'{"inputs": [{"data": NaN}]}', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_a_body_that_is_not_a_request_is_400(
    client: TestClient,
    digits_v1: ModelVersion,
    user_key: str,
    runtime: FakeRuntime,
    body: bytes,
    message: str,
) -> None:
    response = client.post(
        INFER, content=body, headers={"x-api-key": user_key, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert message in response.json()["error"]
    assert runtime.calls == []


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({}, "non-empty 'inputs'"),
        ({"inputs": []}, "non-empty 'inputs'"),
        ({"inputs": "pixels"}, "non-empty 'inputs'"),
        ({"inputs": [7]}, "inputs[0] must be an object"),
        ({"inputs": [{"shape": [1, 1, 8, 8]}]}, "inputs[0] has no 'name'"),
        (
            {"inputs": [{"name": "pixels", "shape": [1], "datatype": "FP32", "data": [1]}]},
            "unknown input 'pixels'",
        ),
        (
            {"inputs": digit_request()["inputs"] * 2},
            "input 'input' appears more than once",
        ),
        (with_input(datatype="FP64"), "input 'input': datatype must be FP32"),
        (with_input(datatype=None), "input 'input': datatype must be FP32"),
        (with_input(shape=[1, 64], data=[1.0] * 64), "rank 2"),
        (with_input(shape=[1, 2, 8, 8], data=[1.0] * 128), "at axis 1"),
        (with_input(shape=[1, 1, 8, "8"]), "shape must be an array of integers"),
        (with_input(shape=[1, 1, 8, 8.0]), "shape must be an array of integers"),
        (with_input(shape=[0, 1, 8, 8], data=[]), "must be positive"),
        (with_input(data=[1.0] * 63), "holds 64 elements but data has 63"),
        (with_input(shape=[2, 1, 8, 8]), "holds 128 elements but data has 64"),
        (with_input(data=["1.0"] * 64), "FP32 data must be numbers, got '1.0'"),
        (with_input(data=[True] * 64), "FP32 data must be numbers, got True"),
        (with_input(data=[None] * 64), "FP32 data must be numbers, got None"),
        (with_input(data=[{"v": 1}] * 64), "FP32 data must be numbers"),
        (with_input(data=[1e39] + [0.0] * 63), "out of range for FP32"),
        (with_input(data=1.0), "data must be an array"),
        (with_input(data=None), "data must be an array"),
        (
            {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32"}]},
            "has no 'data'",
        ),
        (with_input(data=[[[[1.0] * 8] * 7]]), "nested data does not match shape"),
        (with_input(data=[[[[1.0] * 7] * 8]]), "nested data does not match shape"),
        (with_input(data=[[[[[1.0]] * 8] * 8]]), "nested deeper than shape"),
        (with_input(data=[[[[1.0] * 8] * 8], 1.0]), "nested data does not match shape"),
        ({**digit_request(), "outputs": [{"name": "probabilities"}]}, "unknown output"),
    ],
)
def test_a_request_that_does_not_fit_the_signature_is_named(
    client: TestClient,
    digits_v1: ModelVersion,
    user_key: str,
    runtime: FakeRuntime,
    request_body: dict[str, Any],
    message: str,
) -> None:
    response = client.post(INFER, json=request_body, headers={"x-api-key": user_key})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_tensor"
    assert message in response.json()["error"]
    assert runtime.calls == []


def test_binary_sizes_without_the_binary_header_are_400(
    client: TestClient, digits_v1: ModelVersion, user_key: str
) -> None:
    request = with_input(parameters={"binary_data_size": 256})
    del request["inputs"][0]["data"]
    response = client.post(INFER, json=request, headers={"x-api-key": user_key})
    assert response.status_code == 400
    assert "no Inference-Header-Content-Length" in response.json()["error"]


def test_missing_required_input_is_named(client: TestClient, registry: SqliteRegistry) -> None:
    two_inputs = Signature(
        inputs=[
            TensorSpec(name="image", datatype="FP32", shape=[-1, 4]),
            TensorSpec(name="mask", datatype="BOOL", shape=[-1, 4]),
        ],
        outputs=[TensorSpec(name="y", datatype="FP32", shape=[-1])],
    )
    add_version(registry, model="masked", signature=two_inputs)
    key = make_key(registry, models=["masked"])
    request = {"inputs": [{"name": "image", "shape": [1, 4], "datatype": "FP32", "data": [1] * 4}]}
    response = client.post("/v2/models/masked/infer", json=request, headers={"x-api-key": key})
    assert response.status_code == 422
    assert response.json() == {"error": "missing required input 'mask'", "code": "invalid_tensor"}
    request["inputs"].append(
        {"name": "mask", "shape": [1, 4], "datatype": "BOOL", "data": [1, 0, 1, 0]}
    )
    response = client.post("/v2/models/masked/infer", json=request, headers={"x-api-key": key})
    assert response.json()["error"] == "input 'mask': BOOL data must be true/false, got 1"
    request["inputs"][1]["data"] = [True, False, True, False]
    response = client.post("/v2/models/masked/infer", json=request, headers={"x-api-key": key})
    assert response.status_code == 200


def test_nested_data_matching_the_shape_is_accepted(
    client: TestClient, digits_v1: ModelVersion, user_key: str, runtime: FakeRuntime
) -> None:
    request = with_input(shape=[2, 1, 8, 8], data=nested(batch=2))
    response = client.post(INFER, json=request, headers={"x-api-key": user_key})
    assert response.status_code == 200
    assert json.loads(runtime.calls[0].body) == request


def test_integer_tensors_are_range_checked() -> None:
    signature = Signature(
        inputs=[TensorSpec(name="ids", datatype="UINT8", shape=[-1])],
        outputs=[TensorSpec(name="y", datatype="FP32", shape=[-1])],
    )

    def request(data: list[Any]) -> dict[str, Any]:
        return {"inputs": [{"name": "ids", "shape": [3], "datatype": "UINT8", "data": data}]}

    decode_document(request([0, 7, 255]), signature=signature.to_codec())
    with pytest.raises(InvalidInput, match="out of range for UINT8"):
        decode_document(request([0, 7, 256]), signature=signature.to_codec())
    with pytest.raises(InvalidInput, match=r"must be integers, got 1\.5"):
        decode_document(request([0, 1.5, 2]), signature=signature.to_codec())


def test_payload_over_the_limit_is_413_before_parsing(
    client: TestClient, digits_v1: ModelVersion, user_key: str, runtime: FakeRuntime
) -> None:
    body = b"x" * (PAYLOAD_LIMIT + 1)  # not even JSON: the size is refused first
    response = client.post(
        INFER, content=body, headers={"x-api-key": user_key, "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert runtime.calls == []


def test_payload_over_the_limit_without_content_length_is_413(
    client: TestClient, digits_v1: ModelVersion, user_key: str
) -> None:
    def chunks() -> Any:
        for _ in range(PAYLOAD_LIMIT // 1024 + 2):
            yield b"x" * 1024

    response = client.post(INFER, content=chunks(), headers={"x-api-key": user_key})
    assert response.status_code == 413


def test_binary_bodies_have_their_own_lower_limit(
    settings: Settings,
    registry: SqliteRegistry,
    runtime: FakeRuntime,
    clock: FakeClock,
    digits_v1: ModelVersion,
    user_key: str,
) -> None:
    """On AWS binary bodies reach the router base64-encoded (a third larger) inside Lambda's
    6 MB payload, so they get a lower limit: over it, the router's own 413."""
    limit = PAYLOAD_LIMIT // 4
    app = build_app(
        settings=settings.model_copy(update={"max_binary_payload_bytes": limit}),
        registry=registry,
        runtime=runtime,
        clock=clock,
        rng=random.Random(0),
    )
    body = b"x" * (limit + 1)
    with TestClient(app, raise_server_exceptions=False) as client:
        binary = client.post(
            INFER,
            content=body,
            headers={"x-api-key": user_key, "content-type": "application/octet-stream"},
        )
        text = client.post(
            INFER, content=body, headers={"x-api-key": user_key, "content-type": "application/json"}
        )
    assert binary.status_code == 413
    assert binary.json()["code"] == "payload_too_large"
    assert text.status_code == 400  # under the JSON limit: parsed, and refused as not JSON
    assert runtime.calls == []


def test_the_key_is_checked_before_the_body(client: TestClient, digits_v1: ModelVersion) -> None:
    response = client.post(INFER, content=b"x" * (PAYLOAD_LIMIT + 1))
    assert response.status_code == 401


# Binary tensor extension ------------------------------------------------------------------
def binary_request(
    pixels: list[float], *, declared_size: int | None = None, extra: bytes = b""
) -> tuple[bytes, int]:
    data = struct.pack(f"<{len(pixels)}f", *pixels)
    header = {
        "inputs": [
            {
                "name": "input",
                "shape": [len(pixels) // 64, 1, 8, 8],
                "datatype": "FP32",
                "parameters": {"binary_data_size": declared_size or len(data)},
            }
        ],
        "outputs": [{"name": "label", "parameters": {"binary_data": True}}],
    }
    head = json.dumps(header).encode()
    return head + data + extra, len(head)


def test_binary_extension_round_trip(
    client: TestClient, digits_v1: ModelVersion, user_key: str, runtime: FakeRuntime
) -> None:
    answer_head = json.dumps(
        {
            "model_name": MODEL,
            "outputs": [
                {
                    "name": "label",
                    "datatype": "INT64",
                    "shape": [2],
                    "parameters": {"binary_data_size": 16},
                }
            ],
        }
    ).encode()
    answer = answer_head + struct.pack("<2q", 3, 7)
    runtime.answer = lambda call: RuntimeResponse(
        body=answer,
        content_type=f"{BINARY_JSON};json-header-size={len(answer_head)}",
        variant=call.variant,
    )
    body, header_size = binary_request([float(i % 17) for i in range(128)])
    response = client.post(
        INFER,
        content=body,
        headers={
            "x-api-key": user_key,
            "inference-header-content-length": str(header_size),
            "content-type": "application/octet-stream",
        },
    )
    assert response.status_code == 200, response.text
    [call] = runtime.calls
    assert call.body == body  # the same bytes, untouched
    assert call.content_type == f"{BINARY_JSON};json-header-size={header_size}"
    assert response.headers["inference-header-content-length"] == str(len(answer_head))
    assert response.headers["x-model-version"] == "1"
    assert response.content == answer
    labels = struct.unpack("<2q", response.content[len(answer_head) :])
    assert labels == (3, 7)


@pytest.mark.parametrize(
    ("declared", "extra", "header_length", "status", "message"),
    [
        (255, b"", None, 422, "binary_data_size is 255 bytes but 64 FP32 elements take 256"),
        (None, b"\x00" * 4, None, 400, "the binary data is 260 bytes but the inputs declare 256"),
        (None, b"", "abc", 400, "must be an integer"),
        (None, b"", "999999", 400, "does not fit"),
        (None, b"", "5", 400, "not valid JSON"),
    ],
)
def test_binary_extension_sizes_are_checked(
    client: TestClient,
    digits_v1: ModelVersion,
    user_key: str,
    runtime: FakeRuntime,
    declared: int | None,
    extra: bytes,
    header_length: str | None,
    status: int,
    message: str,
) -> None:
    body, header_size = binary_request([1.0] * 64, declared_size=declared, extra=extra)
    if declared is not None:  # declared smaller than the data: the tail is the mismatch too
        body = body[: len(body) - (256 - declared)]
    response = client.post(
        INFER,
        content=body,
        headers={
            "x-api-key": user_key,
            "inference-header-content-length": header_length or str(header_size),
        },
    )
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert runtime.calls == []


def test_binary_bytes_elements_are_walked() -> None:
    signature = Signature(
        inputs=[TensorSpec(name="text", datatype="BYTES", shape=[-1])],
        outputs=[TensorSpec(name="y", datatype="FP32", shape=[-1])],
    )
    chunk = b"".join(struct.pack("<I", len(s)) + s for s in (b"hello", b"", b"world!"))
    request = {
        "inputs": [
            {
                "name": "text",
                "shape": [3],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": len(chunk)},
            }
        ]
    }
    decode_document(request, signature=signature.to_codec(), binary=chunk)
    request["inputs"][0]["shape"] = [4]
    with pytest.raises(InvalidInput, match="fewer than 4"):
        decode_document(request, signature=signature.to_codec(), binary=chunk)
    request["inputs"][0]["shape"] = [2]
    with pytest.raises(InvalidInput, match="exactly 2"):
        decode_document(request, signature=signature.to_codec(), binary=chunk)
