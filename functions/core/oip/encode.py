"""Encoding Open Inference Protocol messages: responses (the model server) and requests (clients,
tests), in JSON or with tensors in the binary extension.

Tensors come in as flat row-major Python values or, for fixed-size datatypes, as their
little-endian bytes (what numpy's ``tobytes`` gives the model server without a copy per
element). BYTES elements may be ``str`` or ``bytes``; they go out as UTF-8.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from functions.core.oip.datatypes import DATATYPES
from functions.core.oip.framing import BINARY_CONTENT_TYPE, BYTES_LENGTH, JSON_CONTENT_TYPE

_COMPACT = (",", ":")


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    # Flat, row-major values; or ``raw``: the little-endian bytes of a fixed-size datatype.
    values: Sequence[Any] | None = None
    raw: bytes | None = None
    binary: bool = False
    parameters: dict[str, Any] | None = None


@dataclass(frozen=True)
class Encoded:
    body: bytes
    content_type: str
    # Length of the JSON part when binary tensors follow it (``Inference-Header-Content-Length``).
    json_length: int | None = None


def encode_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[OutputTensor],
    parameters: dict[str, Any] | None = None,
) -> Encoded:
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        doc["id"] = request_id
    if parameters:
        doc["parameters"] = parameters
    return _encode(doc, "outputs", outputs)


def encode_request(
    *,
    inputs: Sequence[OutputTensor],
    request_id: str | None = None,
    outputs: Sequence[str] | None = None,
    binary_output: bool = False,
) -> Encoded:
    """A request body; inputs with ``binary=True`` travel in the binary extension."""
    doc: dict[str, Any] = {}
    if request_id is not None:
        doc["id"] = request_id
    if binary_output:
        doc["parameters"] = {"binary_data_output": True}
    if outputs is not None:
        doc["outputs"] = [{"name": name} for name in outputs]
    return _encode(doc, "inputs", inputs)


def _encode(doc: dict[str, Any], key: str, tensors: Sequence[OutputTensor]) -> Encoded:
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for tensor in tensors:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        parameters = dict(tensor.parameters or {})
        if tensor.binary:
            chunk = _binary(tensor)
            parameters["binary_data_size"] = len(chunk)
            chunks.append(chunk)
        else:
            entry["data"] = _json_values(tensor)
        if parameters:
            entry["parameters"] = parameters
        entries.append(entry)
    doc[key] = entries
    header = json.dumps(doc, separators=_COMPACT, allow_nan=False).encode("utf-8")
    if not chunks:
        return Encoded(body=header, content_type=JSON_CONTENT_TYPE)
    return Encoded(
        body=header + b"".join(chunks),
        content_type=f"{BINARY_CONTENT_TYPE};json-header-size={len(header)}",
        json_length=len(header),
    )


def _non_finite(value: float) -> str:
    # JSON has no NaN/Infinity: spell them as protobuf's JSON mapping does.
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _json_values(tensor: OutputTensor) -> list[Any]:
    dtype = DATATYPES[tensor.datatype]
    values = _values(tensor)
    if dtype.kind == "bytes":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
    if dtype.kind == "float" and not all(map(math.isfinite, values)):
        return [v if math.isfinite(v) else _non_finite(v) for v in values]
    return values


def _values(tensor: OutputTensor) -> list[Any]:
    if tensor.values is not None:
        return list(tensor.values)
    if tensor.raw is None:
        raise ValueError(f"output {tensor.name!r} has neither values nor raw bytes")
    dtype = DATATYPES[tensor.datatype]
    return [v for (v,) in struct.iter_unpack(f"<{dtype.code}", tensor.raw)]


def _binary(tensor: OutputTensor) -> bytes:
    dtype = DATATYPES[tensor.datatype]
    if dtype.kind == "bytes":
        parts: list[bytes] = []
        for value in _values(tensor):
            data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            parts.append(BYTES_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    if tensor.raw is not None:
        return bytes(tensor.raw)
    values = list(tensor.values or ())
    return struct.pack(f"<{len(values)}{dtype.code}", *values)
