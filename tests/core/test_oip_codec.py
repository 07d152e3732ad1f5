"""The codec on its own: every datatype both ways (JSON and the binary extension), the limits
that keep a hostile body from recursing or allocating, and the response side. The same rules
seen through the router, batch and the model server: ``tests/api/test_codec_agreement.py``."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest

from functions.core import oip
from functions.core.oip import (
    Limits,
    NestedTooDeep,
    OutputTensor,
    ProtocolError,
    TensorError,
    TensorTooLarge,
)

VALUES: dict[str, list[Any]] = {
    "BOOL": [True, False, True],
    "UINT8": [0, 7, 255],
    "UINT16": [0, 7, 65535],
    "UINT32": [0, 7, 2**32 - 1],
    "UINT64": [0, 7, 2**64 - 1],
    "INT8": [-128, 0, 127],
    "INT16": [-(2**15), 0, 2**15 - 1],
    "INT32": [-(2**31), 0, 2**31 - 1],
    "INT64": [-(2**63), 0, 2**63 - 1],
    "FP16": [-65504.0, 0.5, 65504.0],
    "FP32": [-3.4028234663852886e38, 0.25, 1.5],
    "FP64": [-1e308, 0.1, 1e308],
    "BYTES": ["", "héllo", "日本語"],
}


def _signature(datatype: str) -> oip.Signature:
    return oip.Signature.from_dict(
        {
            "inputs": [{"name": "t", "datatype": datatype, "shape": [-1]}],
            "outputs": [{"name": "y", "datatype": datatype, "shape": [-1]}],
        }
    )


def _values(tensor: oip.Tensor) -> list[Any]:
    if tensor.values is not None:
        return tensor.values
    assert tensor.raw is not None
    code = oip.DATATYPES[tensor.datatype].code
    return [v for (v,) in struct.iter_unpack(f"<{code}", tensor.raw)]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", list(VALUES))
def test_every_datatype_round_trips(datatype: str, binary: bool) -> None:
    sent = VALUES[datatype]
    tensor = OutputTensor(name="t", datatype=datatype, shape=(3,), values=sent, binary=binary)
    encoded = oip.encode_request(inputs=[tensor], request_id="r")
    request = oip.decode_request(
        encoded.body, json_length=encoded.json_length, signature=_signature(datatype)
    )
    (decoded,) = request.inputs
    assert (decoded.name, decoded.datatype, decoded.shape, request.id) == ("t", datatype, (3,), "r")
    assert _values(decoded) == sent
    assert (decoded.raw is not None) == (binary and datatype != "BYTES")
    # and back out, as a response
    response = oip.encode_response(
        model_name="m", model_version="1", request_id=None,
        outputs=[OutputTensor(name="y", datatype=datatype, shape=(3,), values=sent, binary=binary)],
    )  # fmt: skip
    (out,) = oip.decode_response(response.body, json_length=response.json_length).outputs
    assert _values(out) == sent


def _request(datatype: str, data: Any, shape: list[int] | None = None) -> bytes:
    tensor = {"name": "t", "datatype": datatype, "shape": shape or [len(data)], "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


def test_nesting_is_refused_past_the_limit_and_not_before() -> None:
    limits = Limits(max_depth=8)
    # {inputs:[{data:[...]}]} is 3 levels before the data's own.
    ok = b'{"inputs":[{"name":"t","datatype":"INT8","shape":[1,1,1,1,1],"data":[[[[[1]]]]]}]}'
    oip.decode_request(ok, limits=limits)
    deeper = ok.replace(b"[[[[[1]]]]]", b"[[[[[[1]]]]]]")
    with pytest.raises(NestedTooDeep, match="more than 8 levels deep"):
        oip.decode_request(deeper, limits=limits)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = "[" * 500 + '"{' * 100  # escaped quotes inside the JSON string, too
    body = _request("BYTES", [text])
    assert b'\\"{' in body
    (tensor,) = oip.decode_request(body).inputs
    assert tensor.values == [text]


@pytest.mark.parametrize(
    "body", [b"[" * 100_000, b"{" * 100_000 + b"}", b'{"a":' * 10_000 + b"1" + b"}" * 10_000]
)
def test_runaway_or_unbalanced_nesting_is_a_400_not_a_recursion_error(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        oip.decode_request(body)


def test_the_element_limit_is_checked_before_the_data() -> None:
    limits = Limits(max_elements=1000)
    oip.decode_request(_request("FP32", [0.0] * 1000), limits=limits)
    with pytest.raises(TensorTooLarge, match="declares more than 1000 elements"):
        oip.decode_request(_request("FP32", [0.0], shape=[10, 10, 11]), limits=limits)
    # A product far past any integer type stops at the limit, whatever the rank.
    with pytest.raises(TensorTooLarge):
        oip.decode_request(_request("FP32", [0.0], shape=[2**62] * 32))


def test_strings_over_the_global_cap_are_413_and_over_the_signature_422() -> None:
    limits = Limits(max_bytes_element=1000)
    oip.decode_request(_request("BYTES", ["é" * 500]), limits=limits)  # 1000 bytes
    with pytest.raises(TensorTooLarge, match="1002 bytes of UTF-8, more than the 1000 allowed"):
        oip.decode_request(_request("BYTES", ["é" * 501]), limits=limits)
    signature = oip.Signature.from_dict(
        {
            "inputs": [{"name": "t", "datatype": "BYTES", "shape": [-1], "max_bytes": 10}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
        }
    )
    with pytest.raises(TensorError, match="11 bytes of UTF-8, more than the 10 allowed"):
        oip.decode_request(_request("BYTES", ["x" * 11]), signature=signature, limits=limits)


def _binary(datatype: str, payload: bytes, count: int) -> tuple[bytes, int]:
    header = json.dumps({"inputs": [{"name": "t", "datatype": datatype, "shape": [count],
                         "parameters": {"binary_data_size": len(payload)}}]}).encode()  # fmt: skip
    return header + payload, len(header)


@pytest.mark.parametrize(
    ("datatype", "payload"),
    [
        ("FP16", struct.pack("<2e", 1.0, math.nan)),
        ("FP16", struct.pack("<2e", -math.inf, 1.0)),
        ("FP32", struct.pack("<2f", 1.0, math.inf)),
        ("FP64", struct.pack("<2d", math.nan, 1.0)),
    ],
)
def test_non_finite_floats_are_refused_in_binary_as_in_json(datatype: str, payload: bytes) -> None:
    body, length = _binary(datatype, payload, 2)
    with pytest.raises(TensorError, match="finite numbers"):
        oip.decode_request(body, json_length=length)
    with pytest.raises(ProtocolError, match="not valid JSON"):
        oip.decode_request(_request(datatype, [1.0, 2.0]).replace(b"2.0", b"NaN"))


def test_finite_binary_floats_whose_sum_overflows_are_accepted() -> None:
    body, length = _binary("FP64", struct.pack("<2d", 1.7e308, 1.7e308), 2)
    (tensor,) = oip.decode_request(body, json_length=length).inputs
    assert tensor.raw is not None


@pytest.mark.parametrize(
    ("payload", "count", "message"),
    [
        (struct.pack("<I", 5) + b"abc", 1, "claims 5 bytes"),
        (struct.pack("<I", 2**32 - 1), 1, "claims 4294967295 bytes"),
        (b"\0\0", 1, "fewer than 1"),
        (struct.pack("<I", 0) * 3, 2, "exactly 2"),
        (struct.pack("<I", 2) + b"\xff\xfe", 1, "not valid UTF-8"),
        (b"", 2**20, "fewer than 1048576"),  # a count the bytes cannot hold: refused at once
    ],
)
def test_binary_bytes_that_lie_are_refused(payload: bytes, count: int, message: str) -> None:
    body, length = _binary("BYTES", payload, count)
    with pytest.raises(TensorError, match=message):
        oip.decode_request(body, json_length=length)


@pytest.mark.parametrize(
    ("content_type", "header", "expected"),
    [
        (None, None, None),
        ("application/json", None, None),
        (f"{oip.BINARY_CONTENT_TYPE};json-header-size=42", None, 42),
        (f"{oip.BINARY_CONTENT_TYPE}; Json-Header-Size = 7 ", None, 7),
        ("application/octet-stream", "13", 13),
        (f"{oip.BINARY_CONTENT_TYPE};json-header-size=42", "9", 9),
    ],
)
def test_header_length_sources(content_type: str | None, header: str | None, expected: int) -> None:
    assert oip.header_length(content_type=content_type, header=header) == expected


@pytest.mark.parametrize("bad", ["-1", "abc", "1e3", "٣", "9" * 13, ""])
def test_header_lengths_that_are_not_byte_counts_are_400(bad: str) -> None:
    with pytest.raises(ProtocolError, match="must be an integer"):
        oip.header_length(content_type=None, header=bad)


def test_non_finite_results_are_spelled_and_read_back() -> None:
    values = [math.nan, math.inf, 1.0]
    encoded = oip.encode_response(
        model_name="m", model_version="1", request_id="x",
        outputs=[OutputTensor(name="y", datatype="FP32", shape=(3,), values=values)],
    )  # fmt: skip
    document = json.loads(encoded.body)
    assert document["outputs"][0]["data"] == ["NaN", "Infinity", 1.0]
    (out,) = oip.decode_response(encoded.body).outputs
    assert out.values is not None
    assert math.isnan(out.values[0])
    assert out.values[1:] == [math.inf, 1.0]
