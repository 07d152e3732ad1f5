"""The v2 wire format: decoding JSON and binary requests, encoding responses, refusing junk."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from serving.exceptions import InvalidRequest, InvalidTensor, PayloadTooLarge, ServingError
from serving.protocol import (
    SAGEMAKER_BINARY,
    OutputTensor,
    decode_request,
    encode_response,
    json_header_length,
)
from tests.serving.serving_testkit import binary_body, split_binary_response


def _doc(**tensor: Any) -> bytes:
    base = {"name": "input", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]}
    base.update(tensor)
    return json.dumps({"inputs": [base]}).encode()


def test_flat_and_nested_data_decode_to_the_declared_shape_and_dtype() -> None:
    flat = decode_request(_doc())
    nested = decode_request(_doc(data=[[1.5, 2], [3, 4]]))
    assert flat.inputs[0].array.dtype == np.float32
    assert flat.inputs[0].array.shape == (2, 2)
    np.testing.assert_array_equal(nested.inputs[0].array, [[1.5, 2], [3, 4]])


def test_request_options_are_read() -> None:
    body = json.dumps(
        {
            "id": "req-1",
            "inputs": [{"name": "a", "datatype": "INT64", "shape": [3], "data": [1, 2, 3]}],
            "outputs": [{"name": "label", "parameters": {"binary_data": True}}],
            "parameters": {"binary_data_output": False},
        }
    ).encode()
    request = decode_request(body)
    assert request.id == "req-1"
    assert request.inputs[0].array.dtype == np.int64
    assert request.outputs is not None
    assert request.outputs[0].name == "label"
    assert request.outputs[0].binary is True
    assert request.binary_output is False


def test_binary_inputs_are_read_from_after_the_json_header() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([7, 8], dtype=np.int64)
    body, length = binary_body([("a", "FP32", a), ("b", "INT64", b)])
    request = decode_request(body, json_length=length)
    np.testing.assert_array_equal(request.inputs[0].array, a)
    np.testing.assert_array_equal(request.inputs[1].array, b)


def test_mixed_binary_and_json_inputs() -> None:
    a = np.ones((1, 2), dtype=np.float32)
    header = {
        "inputs": [
            {"name": "j", "datatype": "INT32", "shape": [1], "data": [5]},
            {
                "name": "a",
                "datatype": "FP32",
                "shape": [1, 2],
                "parameters": {"binary_data_size": 8},
            },
        ]
    }
    raw = json.dumps(header).encode()
    request = decode_request(raw + a.tobytes(), json_length=len(raw))
    assert request.inputs[0].array.tolist() == [5]
    assert request.inputs[1].array.tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize(
    ("content_type", "header", "expected"),
    [
        ("application/json", None, None),
        (None, None, None),
        (f"{SAGEMAKER_BINARY};json-header-size=42", None, 42),
        (f"{SAGEMAKER_BINARY}; Json-Header-Size = 7 ", None, 7),
        (SAGEMAKER_BINARY, None, None),
        ("application/octet-stream", "13", 13),
        (f"{SAGEMAKER_BINARY};json-header-size=42", "9", 9),
    ],
)
def test_json_header_length_sources(
    content_type: str | None, header: str | None, expected: int | None
) -> None:
    assert json_header_length(content_type=content_type, header=header) == expected


@pytest.mark.parametrize("bad", ["-1", "abc", "1e3", "99999999999999999999"])
def test_bad_json_header_length_is_a_400(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        json_header_length(content_type=None, header=bad)


_HUGE = [10**6, 10**6, 10**6]
_ONE = {"name": "a", "datatype": "FP32", "shape": [1], "data": [1]}


def _req(**doc: Any) -> bytes:
    return json.dumps({"inputs": [_ONE], **doc}).encode()


BAD_JSON_BODIES: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b"   ",
    "not json": b"hello",
    "truncated": b'{"inputs": [',
    "invalid utf-8": b'{"inputs": "\xff"}',
    "array document": b"[1, 2]",
    "id not a string": _req(id=5),
    "deep nesting": b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "NaN literal": _doc(data=[1, 2, 3, float("nan")]),
    "Infinity literal": _doc(data=[1, 2, 3, float("inf")]),
    "request parameters not an object": _req(parameters="x"),
    "binary_data_output not bool": _req(parameters={"binary_data_output": "yes"}),
    "binary size without binary body": _doc(data=None, parameters={"binary_data_size": 16}).replace(
        b', "data": null', b""
    ),
}

BAD_TENSORS: dict[str, bytes] = {
    "no inputs": b"{}",
    "inputs not a list": b'{"inputs": {"name": "x"}}',
    "empty inputs": b'{"inputs": []}',
    "input not an object": b'{"inputs": [3]}',
    "no name": _doc(name=""),
    "name not a string": _doc(name=3),
    "unknown datatype": _doc(datatype="FP8"),
    "datatype missing": _doc(datatype=None),
    "shape not a list": _doc(shape="2x2"),
    "shape with zero": _doc(shape=[0, 2]),
    "shape negative": _doc(shape=[-1, 4]),
    "shape float": _doc(shape=[2.0, 2]),
    "shape bool": _doc(shape=[True, 4]),
    "rank too high": _doc(shape=[1] * 40, data=[1]),
    "no data": _doc(data=None).replace(b', "data": null', b""),
    "data not a list": _doc(data=4),
    "parameters not an object": _doc(parameters=[1]),
    "outputs not a list": _req(outputs="x"),
    "empty outputs": _req(outputs=[]),
    "output without name": _req(outputs=[{"parameters": {}}]),
    "output binary_data not bool": _req(outputs=[{"name": "y", "parameters": {"binary_data": 1}}]),
    "duplicate outputs": _req(outputs=[{"name": "y"}, {"name": "y"}]),
    "duplicate inputs": json.dumps({"inputs": [_ONE, _ONE]}).encode(),
    "too few elements": _doc(data=[1, 2, 3]),
    "too many elements": _doc(data=[1, 2, 3, 4, 5]),
    "ragged nesting": _doc(data=[[1, 2], [3]]),
    "string numbers": _doc(data=["1", "2", "3", "4"]),
    "NaN strings": _doc(data=["NaN", "NaN", "NaN", "NaN"]),
    "nulls": _doc(data=[None, None, None, None]),
    "objects": _doc(data=[{}, {}, {}, {}]),
    "booleans for floats": _doc(data=[True, False, True, False]),
    "floats for ints": _doc(datatype="INT64", data=[1.5, 2, 3, 4]),
    "int out of range": _doc(datatype="INT8", data=[1, 2, 3, 300]),
    "negative for unsigned": _doc(datatype="UINT8", data=[1, 2, 3, -1]),
    "beyond int64": _doc(datatype="INT64", data=[1, 2, 3, 2**70]),
    "overflows float": _doc(datatype="FP16", data=[1, 2, 3, 1e10]),
    "1e400 is infinite": b'{"inputs":[{"name":"a","datatype":"FP64","shape":[1],"data":[1e400]}]}',
}


@pytest.mark.parametrize("body", BAD_JSON_BODIES.values(), ids=BAD_JSON_BODIES.keys())
def test_malformed_requests_are_invalid_request(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_request(body)
    assert (info.value.status, info.value.code) == (400, "invalid_request")


@pytest.mark.parametrize("body", BAD_TENSORS.values(), ids=BAD_TENSORS.keys())
def test_inconsistent_tensors_are_invalid_tensor(body: bytes) -> None:
    with pytest.raises(InvalidTensor) as info:
        decode_request(body)
    # 422, as the router answers: both run the shared codec.
    assert (info.value.status, info.value.code) == (422, "invalid_tensor")


def test_a_shape_past_the_element_limit_is_413_before_any_data_is_read() -> None:
    with pytest.raises(PayloadTooLarge) as info:
        decode_request(_doc(shape=_HUGE))
    assert (info.value.status, info.value.code) == (413, "payload_too_large")


def test_bytes_decode_to_object_arrays_of_str() -> None:
    request = decode_request(_doc(datatype="BYTES", data=[["a", "bé"], ["", "日本"]]))
    array = request.inputs[0].array
    assert array.dtype == object
    assert array.shape == (2, 2)
    assert array.tolist() == [["a", "bé"], ["", "日本"]]


def _binary_case(size: int, payload: bytes, shape: list[int] | None = None) -> tuple[bytes, int]:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "a",
                    "datatype": "FP32",
                    "shape": shape or [2],
                    "parameters": {"binary_data_size": size},
                }
            ]
        }
    ).encode()
    return header + payload, len(header)


@pytest.mark.parametrize(
    ("body", "length", "status"),
    [
        (*_binary_case(8, b"\0" * 4), 400),  # body shorter than declared
        (*_binary_case(8, b"\0" * 12), 400),  # trailing bytes that belong to nobody
        (*_binary_case(4, b"\0" * 4), 422),  # size does not match shape
        (*_binary_case(8 * 10**12, b"\0" * 8, shape=[2 * 10**12]), 413),  # huge claimed shape
        (*_binary_case(-8, b"\0" * 8), 400),
        (b'{"inputs": []}', 10**6, 400),  # header length beyond the body
        (b"\0\0\0\0", 4, 400),  # header is not JSON
    ],
)
def test_bad_binary_requests_are_refused(body: bytes, length: int, status: int) -> None:
    with pytest.raises(ServingError) as info:
        decode_request(body, json_length=length)
    assert info.value.status == status


def test_json_response_has_model_version_id_and_flat_data() -> None:
    encoded = encode_response(
        model_name="digits",
        model_version="3",
        request_id="abc",
        outputs=[
            OutputTensor(name="logits", datatype="FP32", array=np.ones((2, 2), np.float32)),
            OutputTensor(name="label", datatype="INT64", array=np.array([1, 0])),
        ],
    )
    assert encoded.content_type == "application/json"
    assert encoded.json_length is None
    doc = json.loads(encoded.body)
    assert doc == {
        "model_name": "digits",
        "model_version": "3",
        "id": "abc",
        "outputs": [
            {"name": "logits", "datatype": "FP32", "shape": [2, 2], "data": [1.0] * 4},
            {"name": "label", "datatype": "INT64", "shape": [2], "data": [1, 0]},
        ],
    }


def test_binary_response_puts_tensor_bytes_after_the_header() -> None:
    logits = np.arange(4, dtype=np.float32).reshape(2, 2)
    encoded = encode_response(
        model_name="m",
        model_version="1",
        request_id=None,
        outputs=[
            OutputTensor(name="logits", datatype="FP32", array=logits, binary=True),
            OutputTensor(name="label", datatype="INT64", array=np.array([1, 0])),
        ],
    )
    assert encoded.json_length is not None
    assert encoded.content_type == f"{SAGEMAKER_BINARY};json-header-size={encoded.json_length}"
    header, chunks = split_binary_response(encoded.body, encoded.json_length)
    assert "id" not in header
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert "data" not in header["outputs"][0]
    assert header["outputs"][1]["data"] == [1, 0]
    np.testing.assert_array_equal(np.frombuffer(chunks["logits"], np.float32).reshape(2, 2), logits)


def test_non_finite_results_stay_valid_json() -> None:
    encoded = encode_response(
        model_name="m",
        model_version="1",
        request_id=None,
        outputs=[
            OutputTensor(
                name="y",
                datatype="FP32",
                array=np.array([np.nan, np.inf, -np.inf, 1.0], np.float32),
            )
        ],
    )
    doc = json.loads(encoded.body, parse_constant=lambda c: pytest.fail(f"emitted {c}"))
    assert doc["outputs"][0]["data"] == ["NaN", "Infinity", "-Infinity", 1.0]
