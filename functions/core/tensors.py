"""Open Inference Protocol requests checked against a version's tensor signature.

Pure python (``json`` + ``struct``, no numpy) so the router can refuse a bad request in
milliseconds instead of spending GPU time on it, and batch jobs can check each record alike.
Errors name the tensor at fault: ``InvalidRequest`` (400) when the body is not a request at all,
``InvalidInput`` (422) when a well-formed request does not fit the signature.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from functions.core.errors import InvalidInput, InvalidRequest
from functions.core.manifest import DATATYPE_SIZES, Signature, TensorSpec
from functions.core.runtime.base import BINARY_JSON, JSON

# Largest finite magnitude per float type: anything above would overflow to inf in the model.
_FLOAT_LIMITS = {"FP16": 65504.0, "FP32": 3.4028234663852886e38, "FP64": 1.7976931348623157e308}
_INT_LIMITS = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
_NUMBER_TYPES = (int, float)  # compared with ``type(x) in``: bool is an int subclass, excluded
_BYTES_LENGTH = struct.Struct("<I")  # binary BYTES elements: 4-byte little-endian length prefix


@dataclass(frozen=True)
class InferenceRequest:
    """A request that fits its signature, ready to forward unchanged."""

    document: dict[str, Any]
    body: bytes
    content_type: str


def parse_inference_request(
    *, body: bytes, signature: Signature, json_header_length: str | None = None
) -> InferenceRequest:
    """Decode and check one request (JSON, or the binary tensor extension when
    ``json_header_length`` carries the ``Inference-Header-Content-Length`` header)."""
    if json_header_length is None:
        document = decode_json_document(body)
        validate_request(request=document, signature=signature)
        return InferenceRequest(document=document, body=body, content_type=JSON)
    header_size = _header_size(json_header_length, body_size=len(body))
    document = decode_json_document(body[:header_size])
    validate_request(request=document, signature=signature, binary=body[header_size:])
    return InferenceRequest(
        document=document,
        body=body,
        content_type=f"{BINARY_JSON};json-header-size={header_size}",
    )


def decode_json_document(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise InvalidRequest("the request body is empty")
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return document


def validate_request(
    *, request: dict[str, Any], signature: Signature, binary: bytes | None = None
) -> None:
    """Raise unless every input of ``signature`` is present once and fits its spec.

    ``binary`` is the data after the JSON header of a binary-extension request (``None`` for
    plain JSON); inputs declaring ``binary_data_size`` take their bytes from it in order.
    """
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("the request must carry a non-empty 'inputs' array")
    seen: set[str] = set()
    offset = 0
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise InvalidInput(f"inputs[{index}] must be an object")
        name = tensor.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"inputs[{index}] has no 'name'")
        spec = signature.input(name)
        if spec is None:
            expected = ", ".join(repr(t.name) for t in signature.inputs)
            raise InvalidInput(f"unknown input {name!r}: the model takes {expected}")
        if name in seen:
            raise InvalidInput(f"input {name!r} appears more than once")
        seen.add(name)
        offset += _validate_input(tensor, spec, binary=binary, offset=offset)
    missing = [t.name for t in signature.inputs if t.name not in seen]
    if missing:
        raise InvalidInput(f"missing required input {missing[0]!r}")
    if binary is not None and offset != len(binary):
        raise InvalidRequest(
            f"the binary data is {len(binary)} bytes but the inputs declare {offset}"
        )
    _validate_outputs(request.get("outputs"), signature)


def element_count(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _validate_input(
    tensor: dict[str, Any], spec: TensorSpec, *, binary: bytes | None, offset: int
) -> int:
    """Check one input; returns how many bytes of ``binary`` it takes."""
    name = spec.name
    datatype = tensor.get("datatype")
    if datatype != spec.datatype:
        raise InvalidInput(f"input {name!r}: datatype must be {spec.datatype}, got {datatype!r}")
    shape = _validate_shape(tensor.get("shape"), spec)
    count = element_count(shape)
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput(f"input {name!r}: 'parameters' must be an object")
    if "binary_data_size" in parameters:
        if binary is None:
            raise InvalidRequest(
                f"input {name!r} declares binary_data_size but the request has no "
                "Inference-Header-Content-Length header"
            )
        if "data" in tensor:
            raise InvalidInput(f"input {name!r}: give either 'data' or binary_data_size, not both")
        return _validate_binary(parameters["binary_data_size"], spec, count, binary, offset)
    if "data" not in tensor:
        raise InvalidInput(f"input {name!r} has no 'data'")
    values = _flatten(tensor["data"], shape, name)
    if len(values) != count:
        raise InvalidInput(
            f"input {name!r}: shape {shape} holds {count} elements but data has {len(values)}"
        )
    _check_values(values, spec)
    return 0


def _validate_shape(shape: Any, spec: TensorSpec) -> list[int]:
    name = spec.name
    if not isinstance(shape, list) or any(type(d) is not int for d in shape):
        raise InvalidInput(f"input {name!r}: shape must be an array of integers, got {shape!r}")
    if len(shape) != len(spec.shape):
        raise InvalidInput(
            f"input {name!r}: shape {shape} has rank {len(shape)}, the model expects "
            f"rank {len(spec.shape)} {spec.shape}"
        )
    if any(d < 1 for d in shape):
        raise InvalidInput(f"input {name!r}: shape dimensions must be positive, got {shape}")
    for axis, (got, want) in enumerate(zip(shape, spec.shape, strict=True)):
        if want != -1 and got != want:
            raise InvalidInput(
                f"input {name!r}: shape {shape} does not match {spec.shape} at axis {axis}"
            )
    return shape


def _flatten(data: Any, shape: list[int], name: str) -> list[Any]:
    """Row-major elements of flat or fully nested ``data``; nesting must follow ``shape``."""
    if not isinstance(data, list):
        raise InvalidInput(f"input {name!r}: data must be an array")
    if not any(isinstance(item, list) for item in data):
        return data
    if not shape:
        raise InvalidInput(f"input {name!r}: a scalar cannot hold nested data")
    flat: list[Any] = []
    _walk(data, shape, 0, flat, name)
    return flat


def _walk(node: Any, shape: list[int], depth: int, out: list[Any], name: str) -> None:
    if not isinstance(node, list) or len(node) != shape[depth]:
        raise InvalidInput(
            f"input {name!r}: nested data does not match shape {shape} at depth {depth}"
        )
    if depth == len(shape) - 1:
        if any(isinstance(item, list) for item in node):
            raise InvalidInput(f"input {name!r}: data is nested deeper than shape {shape}")
        out.extend(node)
        return
    for child in node:
        _walk(child, shape, depth + 1, out, name)


def _check_values(values: list[Any], spec: TensorSpec) -> None:
    name, datatype = spec.name, spec.datatype
    if datatype in _FLOAT_LIMITS:
        if any(type(v) not in _NUMBER_TYPES for v in values):
            bad = next(v for v in values if type(v) not in _NUMBER_TYPES)
            raise InvalidInput(f"input {name!r}: {datatype} data must be numbers, got {bad!r}")
        if values and max(map(abs, values)) > _FLOAT_LIMITS[datatype]:
            raise InvalidInput(f"input {name!r}: a value is out of range for {datatype}")
    elif datatype in _INT_LIMITS:
        if any(type(v) is not int for v in values):
            bad = next(v for v in values if type(v) is not int)
            raise InvalidInput(f"input {name!r}: {datatype} data must be integers, got {bad!r}")
        low, high = _INT_LIMITS[datatype]
        if values and (min(values) < low or max(values) > high):
            raise InvalidInput(f"input {name!r}: a value is out of range for {datatype}")
    elif datatype == "BOOL":
        if any(type(v) is not bool for v in values):
            bad = next(v for v in values if type(v) is not bool)
            raise InvalidInput(f"input {name!r}: BOOL data must be true/false, got {bad!r}")
    elif any(type(v) is not str for v in values):  # BYTES travel as strings in JSON
        bad = next(v for v in values if type(v) is not str)
        raise InvalidInput(f"input {name!r}: BYTES data must be strings, got {bad!r}")


def _validate_binary(size: Any, spec: TensorSpec, count: int, binary: bytes, offset: int) -> int:
    name = spec.name
    if type(size) is not int or size < 0:
        raise InvalidInput(f"input {name!r}: binary_data_size must be a non-negative integer")
    if offset + size > len(binary):
        raise InvalidRequest(
            f"input {name!r}: binary_data_size {size} runs past the end of the body"
        )
    if spec.datatype == "BYTES":
        _check_binary_bytes(binary[offset : offset + size], count, name)
        return size
    expected = count * DATATYPE_SIZES[spec.datatype]
    if size != expected:
        raise InvalidInput(
            f"input {name!r}: binary_data_size is {size} bytes but {count} {spec.datatype} "
            f"elements take {expected}"
        )
    return size


def _check_binary_bytes(chunk: bytes, count: int, name: str) -> None:
    """BYTES elements are each a 4-byte length then that many bytes; they must fill ``chunk``."""
    position = 0
    for _ in range(count):
        if position + _BYTES_LENGTH.size > len(chunk):
            raise InvalidInput(f"input {name!r}: binary BYTES data holds fewer than {count} items")
        (length,) = _BYTES_LENGTH.unpack_from(chunk, position)
        position += _BYTES_LENGTH.size + length
    if position != len(chunk):
        raise InvalidInput(
            f"input {name!r}: binary BYTES data does not hold exactly {count} elements"
        )


def _validate_outputs(outputs: Any, signature: Signature) -> None:
    if outputs is None:
        return
    if not isinstance(outputs, list):
        raise InvalidInput("'outputs' must be an array")
    known = {t.name for t in signature.outputs}
    for index, output in enumerate(outputs):
        name = output.get("name") if isinstance(output, dict) else None
        if not isinstance(name, str):
            raise InvalidInput(f"outputs[{index}] has no 'name'")
        if name not in known:
            raise InvalidInput(f"unknown output {name!r}")


def _header_size(value: str, *, body_size: int) -> int:
    try:
        size = int(value)
    except ValueError:
        raise InvalidRequest("Inference-Header-Content-Length must be an integer") from None
    if not 0 < size <= body_size:
        raise InvalidRequest(
            f"Inference-Header-Content-Length {size} does not fit a {body_size}-byte body"
        )
    return size


def _reject_constant(value: str) -> Any:
    raise ValueError(f"{value} is not valid JSON")
