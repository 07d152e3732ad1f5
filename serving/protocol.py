"""The Open Inference Protocol (KServe/Triton "v2") on the wire: JSON tensors and the binary
tensor extension, decoded into numpy and encoded back.

Decoding checks only that a request is internally consistent (shape vs data, datatype vs
values, binary sizes); whether it fits the model is ``model.OnnxModel.preprocess``'s job.
Nothing here allocates from a size the client merely claims: element counts are checked
against the bytes actually sent before any array is built.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from serving.errors import InvalidRequest, InvalidTensor
from serving.signature import NUMPY_DTYPES

JSON_CONTENT_TYPE = "application/json"
# SageMaker strips custom headers, so its binary form carries the JSON length in the type.
SAGEMAKER_BINARY = "application/vnd.sagemaker-triton.binary+json"
HEADER_LENGTH = "inference-header-content-length"

_MAX_RANK = 32
# JSON value kinds (numpy dtype.kind) accepted for each target kind: no strings, no objects,
# no silent bool<->number conversion, no floats truncated into integers.
_ACCEPTED_KINDS = {"f": "fiu", "i": "iu", "u": "iu", "b": "b"}


@dataclass(frozen=True)
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    # None: follow the request-level ``binary_data_output``.
    binary: bool | None = None


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: tuple[InputTensor, ...]
    # None: every output of the model.
    outputs: tuple[RequestedOutput, ...] | None
    binary_output: bool = False


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    array: np.ndarray
    binary: bool = False


@dataclass(frozen=True)
class EncodedResponse:
    body: bytes
    content_type: str
    # Length of the JSON part when binary tensors follow it (``Inference-Header-Content-Length``).
    json_length: int | None = None


def json_header_length(*, content_type: str | None, header: str | None) -> int | None:
    """Where the JSON part of a binary request ends, or None for a pure JSON body.

    The header wins when both are present; SageMaker clients can only use the content type.
    """
    raw = header
    if raw is None and content_type:
        media, *params = (p.strip() for p in content_type.split(";"))
        if media.lower() == SAGEMAKER_BINARY:
            for param in params:
                key, _, value = param.partition("=")
                if key.strip().lower() == "json-header-size":
                    raw = value.strip().strip('"')
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 12:
        raise InvalidRequest(f"JSON header length must be a non-negative integer, got {raw!r}")
    return int(raw)


def _reject_constant(token: str) -> NoReturn:
    raise InvalidRequest(f"{token} is not valid JSON; send finite numbers")


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except InvalidRequest:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidRequest(f"body is not valid JSON: {exc}") from None


def _where(index: int, name: str | None) -> str:
    return f"input {name!r}" if name else f"inputs[{index}]"


def _check_shape(raw: Any, where: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or len(raw) > _MAX_RANK:
        raise InvalidRequest(f"{where}: shape must be a list of at most {_MAX_RANK} integers")
    if not all(type(d) is int and d >= 1 for d in raw):
        raise InvalidRequest(f"{where}: shape dimensions must be positive integers, got {raw}")
    return tuple(raw)


def _array_from_json(
    data: Any, *, dtype: np.dtype[Any], shape: tuple[int, ...], where: str
) -> np.ndarray:
    if not isinstance(data, list):
        raise InvalidRequest(f"{where}: data must be a list")
    count = math.prod(shape)
    try:
        values = np.asarray(data)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise InvalidTensor(f"{where}: data must be numbers in lists of equal length") from None
    if values.size != count:
        raise InvalidTensor(
            f"{where}: shape {list(shape)} holds {count} elements, data has {values.size}"
        )
    kind = values.dtype.kind
    if kind not in _ACCEPTED_KINDS[dtype.kind]:
        expected = {"f": "numbers", "i": "integers", "u": "integers", "b": "booleans"}
        raise InvalidTensor(f"{where}: data must be {expected[dtype.kind]}")
    if kind == "f" and not np.isfinite(values).all():
        raise InvalidTensor(f"{where}: data must be finite numbers")
    narrower = dtype.kind == "f" and kind == "f" and dtype.itemsize < values.dtype.itemsize
    if narrower and np.abs(values).max() > np.finfo(dtype).max:
        raise InvalidTensor(f"{where}: values out of range for {dtype.name}")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if values.min() < info.min or values.max() > info.max:
            raise InvalidTensor(f"{where}: values out of range for {dtype.name}")
    return values.astype(dtype, copy=False).reshape(shape)


def _decode_input(
    raw: Any, index: int, *, binary: memoryview, offset: int
) -> tuple[InputTensor, int]:
    if not isinstance(raw, dict):
        raise InvalidRequest(f"inputs[{index}] must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"inputs[{index}] needs a non-empty string name")
    where = _where(index, name)
    datatype = raw.get("datatype")
    if datatype == "BYTES":
        raise InvalidTensor(f"{where}: BYTES tensors are not supported by this server")
    if not isinstance(datatype, str) or datatype not in NUMPY_DTYPES:
        raise InvalidRequest(f"{where}: unknown datatype {datatype!r}")
    dtype = NUMPY_DTYPES[datatype]
    shape = _check_shape(raw.get("shape"), where)
    params = raw.get("parameters")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise InvalidRequest(f"{where}: parameters must be an object")
    size = params.get("binary_data_size")
    if size is None:
        if "data" not in raw:
            raise InvalidRequest(f"{where}: needs data (or parameters.binary_data_size)")
        array = _array_from_json(raw["data"], dtype=dtype, shape=shape, where=where)
        return InputTensor(name=name, datatype=datatype, shape=shape, array=array), offset
    if type(size) is not int or size < 0:
        raise InvalidRequest(f"{where}: binary_data_size must be a non-negative integer")
    if "data" in raw:
        raise InvalidRequest(f"{where}: has both data and binary_data_size")
    count = math.prod(shape)
    if size != count * dtype.itemsize:
        raise InvalidTensor(
            f"{where}: shape {list(shape)} of {datatype} is {count * dtype.itemsize} bytes, "
            f"binary_data_size says {size}"
        )
    if offset + size > len(binary):
        raise InvalidRequest(f"{where}: binary data ends after the body does")
    # The wire format is little-endian whatever the host; read-only view, no copy.
    array = np.frombuffer(binary, dtype=dtype.newbyteorder("<"), count=count, offset=offset)
    if not array.flags.aligned or array.dtype != dtype:
        array = array.astype(dtype)
    return (
        InputTensor(name=name, datatype=datatype, shape=shape, array=array.reshape(shape)),
        offset + size,
    )


def _decode_outputs(raw: Any) -> tuple[RequestedOutput, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("outputs must be a non-empty list")
    requested: list[RequestedOutput] = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InvalidRequest(f"outputs[{index}] must be an object with a string name")
        params = entry.get("parameters") or {}
        if not isinstance(params, dict):
            raise InvalidRequest(f"outputs[{index}]: parameters must be an object")
        binary = params.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise InvalidRequest(f"outputs[{index}]: binary_data must be a boolean")
        requested.append(RequestedOutput(name=entry["name"], binary=binary))
    if len({r.name for r in requested}) != len(requested):
        raise InvalidRequest("outputs names the same tensor twice")
    return tuple(requested)


def decode_request(body: bytes, *, json_length: int | None = None) -> InferRequest:
    """``json_length`` splits a binary-extension body into its JSON header and tensor bytes."""
    if json_length is None:
        header, binary = body, memoryview(b"")
    else:
        if json_length > len(body):
            raise InvalidRequest(
                f"JSON header length {json_length} exceeds the body ({len(body)} bytes)"
            )
        view = memoryview(body)
        header, binary = bytes(view[:json_length]), view[json_length:]
    if not header.strip():
        raise InvalidRequest("empty request body")
    doc = _parse_json(header)
    if not isinstance(doc, dict):
        raise InvalidRequest("request must be a JSON object")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequest("id must be a string")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidRequest("inputs must be a non-empty list")
    params = doc.get("parameters")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise InvalidRequest("parameters must be an object")
    binary_output = params.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise InvalidRequest("parameters.binary_data_output must be a boolean")

    inputs: list[InputTensor] = []
    offset = 0
    for index, raw in enumerate(raw_inputs):
        tensor, offset = _decode_input(raw, index, binary=binary, offset=offset)
        inputs.append(tensor)
    if offset != len(binary):
        raise InvalidRequest(f"{len(binary) - offset} bytes of binary data belong to no input")
    if len({t.name for t in inputs}) != len(inputs):
        raise InvalidRequest("inputs names the same tensor twice")
    return InferRequest(
        id=request_id,
        inputs=tuple(inputs),
        outputs=_decode_outputs(doc.get("outputs")),
        binary_output=binary_output,
    )


def _non_finite(value: float) -> str:
    # JSON has no NaN/Infinity: spell them as protobuf's JSON mapping does.
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _json_data(array: np.ndarray) -> list[Any]:
    flat = array.ravel()
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        return [v if math.isfinite(v) else _non_finite(v) for v in flat.tolist()]
    return flat.tolist()


def encode_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[OutputTensor],
) -> EncodedResponse:
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for out in outputs:
        entry: dict[str, Any] = {
            "name": out.name,
            "datatype": out.datatype,
            "shape": list(out.array.shape),
        }
        if out.binary:
            raw = np.ascontiguousarray(out.array, dtype=out.array.dtype.newbyteorder("<"))
            chunk = raw.tobytes()
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            entry["data"] = _json_data(out.array)
        entries.append(entry)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        doc["id"] = request_id
    doc["outputs"] = entries
    header = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if not chunks:
        return EncodedResponse(body=header, content_type=JSON_CONTENT_TYPE)
    return EncodedResponse(
        body=header + b"".join(chunks),
        content_type=f"{SAGEMAKER_BINARY};json-header-size={len(header)}",
        json_length=len(header),
    )
