"""Decoding Open Inference Protocol requests, JSON and binary, checked against a signature.

The one decoder the router, batch scoring and the model server run, so the three agree on what
a valid request is. It cannot be driven into recursion or memory blow-up:

- JSON nesting deeper than ``Limits.max_depth`` is refused before ``json`` recurses into it;
- a tensor's element count comes from its declared shape, capped (``Limits.max_elements``)
  before anything is read, and must match the data actually sent: nothing is allocated from a
  size the client merely claims;
- binary sizes (``Inference-Header-Content-Length``, ``binary_data_size``, BYTES length
  prefixes) must fit the bytes that really follow;
- floating-point inputs must be finite in JSON *and* binary form: JSON cannot spell NaN or
  Infinity, so the binary form does not get to either (one rule; a NaN input is a client bug);
- BYTES elements are UTF-8, each at most ``TensorSpec.max_bytes`` (else ``Limits``) long.

Statuses: 400 ``invalid_request`` when the body is not a request (not JSON, too deep, binary
framing that lies), 422 ``invalid_tensor`` when a request's tensors do not fit, 413
``payload_too_large`` when a tensor is beyond the limits.

Decoded tensors hold plain Python values (a flat row-major list) or, for fixed-size datatypes
sent in binary, the raw little-endian bytes; the model server turns either into numpy.
"""

from __future__ import annotations

import array
import json
import math
import re
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any, NoReturn

from functions.core.oip.datatypes import DATATYPES, Datatype
from functions.core.oip.exceptions import NestedTooDeep, ProtocolError, TensorError, TensorTooLarge
from functions.core.oip.signature import MAX_RANK, Signature, TensorSpec

JSON_CONTENT_TYPE = "application/json"
# SageMaker strips custom headers, so its binary form carries the JSON length in the type.
BINARY_CONTENT_TYPE = "application/vnd.sagemaker-triton.binary+json"
HEADER_LENGTH = "inference-header-content-length"

_BYTES_LENGTH = struct.Struct("<I")
# A JSON string, escapes included (unrolled so that long strings cost no backtracking).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# Keeps only brackets and braces, and spells both as brackets.
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BOOL_BYTES = b"\x00\x01"
_NUMBER_TYPES = frozenset((int, float))


@dataclass(frozen=True)
class Limits:
    # Deep enough for any real request (envelope + a rank-32 tensor), far below recursion.
    max_depth: int = 64
    # Per tensor; the body size bounds it anyway, this refuses absurd shapes up front.
    max_elements: int = 2**31 - 1
    # Per BYTES element, when the tensor's spec sets no ``max_bytes`` of its own.
    max_bytes_element: int = 1024 * 1024


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Tensor:
    """One decoded input. Exactly one of ``values`` (flat, row-major Python values: numbers,
    booleans, or ``str`` for BYTES) and ``raw`` (a fixed-size datatype's little-endian bytes
    from the binary extension) is set."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    values: list[Any] | None = None
    raw: memoryview | None = None

    @property
    def count(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    # None: follow the request-level ``binary_data_output``.
    binary: bool | None = None


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: tuple[Tensor, ...]
    # None: every output of the model.
    outputs: tuple[RequestedOutput, ...] | None
    binary_output: bool = False
    # Where the JSON part ends in a binary-extension body; None for plain JSON.
    json_length: int | None = None

    def input(self, name: str) -> Tensor | None:
        return next((t for t in self.inputs if t.name == name), None)


# -- framing ---------------------------------------------------------------------------------


def header_length(*, content_type: str | None, header: str | None) -> int | None:
    """Where the JSON part of a binary request ends (``Inference-Header-Content-Length``, or
    SageMaker's ``json-header-size`` content-type parameter), or None for a JSON body.

    The header wins when both are present; SageMaker clients can only use the content type.
    """
    raw = header
    if raw is None and content_type:
        media, *params = (p.strip() for p in content_type.split(";"))
        if media.lower() == BINARY_CONTENT_TYPE:
            for param in params:
                key, _, value = param.partition("=")
                if key.strip().lower() == "json-header-size":
                    raw = value.strip().strip('"')
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise ProtocolError(
            f"Inference-Header-Content-Length must be an integer (a byte count), got {raw!r}"
        )
    return int(raw)


def loads(
    data: bytes, *, max_depth: int = DEFAULT_LIMITS.max_depth, what: str = "the request body"
) -> Any:
    """``json.loads`` for untrusted bytes: UTF-8 only, no NaN/Infinity, nesting at most
    ``max_depth`` deep (checked without recursing, before the parser recurses)."""
    if data.count(b"[") + data.count(b"{") > max_depth:
        _check_depth(data, max_depth=max_depth, what=what)
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:  # belt and braces: _check_depth should have refused it
        raise NestedTooDeep(f"{what} nests JSON more than {max_depth} levels deep") from None
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{what} is not valid JSON: it is not UTF-8 ({exc.reason})") from None
    except ValueError as exc:
        raise ProtocolError(f"{what} is not valid JSON: {exc}") from None


def _check_depth(data: bytes, *, max_depth: int, what: str) -> None:
    # Brackets inside strings do not nest; drop the strings, keep only brackets, then peel
    # innermost "[]" pairs one level per pass (C speed): whatever is left after ``max_depth``
    # passes is nested deeper than that.
    skeleton = _JSON_STRING.sub(b"", data) if b'"' in data else data
    skeleton = skeleton.translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(max_depth):
        peeled = skeleton.replace(b"[]", b"")
        if len(peeled) == len(skeleton):
            break
        skeleton = peeled
    if skeleton and b"[]" in skeleton:
        raise NestedTooDeep(f"{what} nests JSON more than {max_depth} levels deep")


def _reject_constant(token: str) -> NoReturn:
    raise ValueError(f"{token} is not valid JSON; send finite numbers")


def split_body(body: bytes, json_length: int | None) -> tuple[bytes, memoryview | None]:
    """The JSON part and the binary part (None for a plain JSON body)."""
    if json_length is None:
        return body, None
    if not 0 < json_length <= len(body):
        raise ProtocolError(
            f"Inference-Header-Content-Length {json_length} does not fit a {len(body)}-byte body"
        )
    view = memoryview(body)
    return bytes(view[:json_length]), view[json_length:]


# -- requests ----------------------------------------------------------------------------------


def decode_request(
    body: bytes,
    *,
    json_length: int | None = None,
    signature: Signature | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> InferRequest:
    """Decode a request body; with ``signature``, also check that it fits the version.

    ``json_length`` (from ``header_length``) splits a binary-extension body into its JSON
    header and tensor bytes.
    """
    header, binary = split_body(body, json_length)
    if not header.strip():
        raise ProtocolError("the request body is empty")
    document = loads(header, max_depth=limits.max_depth)
    return decode_document(
        document, signature=signature, binary=binary, json_length=json_length, limits=limits
    )


def decode_document(
    document: Any,
    *,
    signature: Signature | None = None,
    binary: memoryview | bytes | None = None,
    json_length: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> InferRequest:
    """Check an already parsed request document (``binary``: the bytes after its JSON header,
    None for plain JSON); see ``decode_request``."""
    if not isinstance(document, dict):
        raise ProtocolError("the request body must be a JSON object")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("the request 'id' must be a string")
    parameters = _parameters(document.get("parameters"), where="the request's", error=ProtocolError)
    binary_output = parameters.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise ProtocolError("parameters.binary_data_output must be true or false")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise TensorError("the request must carry a non-empty 'inputs' array")
    view = memoryview(binary) if binary is not None else None
    inputs: list[Tensor] = []
    seen: set[str] = set()
    offset = 0
    for index, raw in enumerate(raw_inputs):
        spec = _input_spec(raw, index, signature=signature, seen=seen)
        tensor, offset = _decode_input(raw, spec, binary=view, offset=offset, limits=limits)
        inputs.append(tensor)
    if signature is not None:
        missing = [t.name for t in signature.inputs if t.name not in seen]
        if missing:
            raise TensorError(f"missing required input {missing[0]!r}")
        if signature.batchable and len({t.shape[0] for t in inputs}) > 1:
            sizes = {t.name: t.shape[0] for t in inputs}
            raise TensorError(f"all inputs must have the same batch size (axis 0), got {sizes}")
        _check_named_axes(inputs, signature)
    if view is not None and offset != len(view):
        raise ProtocolError(f"the binary data is {len(view)} bytes but the inputs declare {offset}")
    return InferRequest(
        id=request_id,
        inputs=tuple(inputs),
        outputs=_decode_outputs(document.get("outputs"), signature),
        binary_output=binary_output,
        json_length=json_length,
    )


def _check_named_axes(inputs: list[Tensor], signature: Signature) -> None:
    """Axes the model names alike (e.g. "sequence" of input_ids and attention_mask) agree."""
    named = signature.named_axes
    if not named:
        return
    shapes = {t.name: t.shape for t in inputs}
    for name, where in named.items():
        (first, first_axis), *rest = where
        size = shapes[first][first_axis]
        for other, axis in rest:
            if shapes[other][axis] != size:
                raise TensorError(
                    f"input {other!r} axis {axis} ({name!r}) is {shapes[other][axis]}, but "
                    f"input {first!r} axis {first_axis} is {size}: the model needs them equal"
                )


def _parameters(raw: Any, *, where: str, error: type[Exception]) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise error(f"{where} 'parameters' must be an object")
    return raw


def _input_spec(
    raw: Any, index: int, *, signature: Signature | None, seen: set[str]
) -> TensorSpec | None:
    """The spec ``raw`` must fit (None without a signature), once its name is checked."""
    if not isinstance(raw, dict):
        raise TensorError(f"inputs[{index}] must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise TensorError(f"inputs[{index}] has no 'name'")
    spec = None
    if signature is not None:
        spec = signature.input(name)
        if spec is None:
            expected = ", ".join(repr(t.name) for t in signature.inputs)
            raise TensorError(f"unknown input {name[:200]!r}: the model takes {expected}")
    if name in seen:
        raise TensorError(f"input {name[:200]!r} appears more than once")
    seen.add(name)
    return spec


def _decode_input(
    raw: dict[str, Any],
    spec: TensorSpec | None,
    *,
    binary: memoryview | None,
    offset: int,
    limits: Limits,
    finite: bool = True,
) -> tuple[Tensor, int]:
    name: str = raw["name"]
    where = f"input {name[:200]!r}"
    datatype = raw.get("datatype")
    if spec is not None and datatype != spec.datatype:
        raise TensorError(f"{where}: datatype must be {spec.datatype}, got {datatype!r}")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise TensorError(f"{where}: unknown datatype {datatype!r}")
    dtype = DATATYPES[datatype]
    shape = _shape(raw.get("shape"), spec, where=where)
    count = _element_count(shape, where=where, limits=limits)
    parameters = _parameters(raw.get("parameters"), where=f"{where}:", error=TensorError)
    max_bytes = spec.max_bytes if spec is not None and spec.max_bytes else None
    if "binary_data_size" in parameters:
        if binary is None:
            raise ProtocolError(
                f"{where} declares binary_data_size but the request has no "
                "Inference-Header-Content-Length header"
            )
        if "data" in raw:
            raise TensorError(f"{where}: give either 'data' or binary_data_size, not both")
        size = parameters["binary_data_size"]
        if type(size) is not int or size < 0:
            raise ProtocolError(f"{where}: binary_data_size must be a non-negative integer")
        if offset + size > len(binary):
            raise ProtocolError(f"{where}: binary_data_size {size} runs past the end of the body")
        chunk = binary[offset : offset + size]
        if dtype.kind == "bytes":
            values = _binary_strings(chunk, count, where=where, max_bytes=max_bytes, limits=limits)
            tensor = Tensor(name=name, datatype=datatype, shape=shape, values=values)
        else:
            expected = count * dtype.size
            if size != expected:
                raise TensorError(
                    f"{where}: binary_data_size is {size} bytes but {count} {datatype} "
                    f"elements take {expected}"
                )
            if finite:
                _check_binary(chunk, dtype, where=where)
            tensor = Tensor(name=name, datatype=datatype, shape=shape, raw=chunk)
        return tensor, offset + size
    if "data" not in raw:
        raise TensorError(f"{where} has no 'data'")
    values = _flatten(raw["data"], shape, where=where)
    if len(values) != count:
        raise TensorError(
            f"{where}: shape {list(shape)} holds {count} elements but data has {len(values)}"
        )
    check_values(values, dtype, where=where, max_bytes=max_bytes, limits=limits, finite=finite)
    return Tensor(name=name, datatype=datatype, shape=shape, values=values), offset


def _shape(raw: Any, spec: TensorSpec | None, *, where: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or any(type(d) is not int for d in raw):
        raise TensorError(f"{where}: shape must be an array of integers, got {_short(raw)}")
    if len(raw) > MAX_RANK:
        raise TensorError(f"{where}: shape has rank {len(raw)}, more than {MAX_RANK}")
    if any(d < 1 for d in raw):
        raise TensorError(f"{where}: shape dimensions must be positive, got {_short(raw)}")
    shape = tuple(raw)
    if spec is None:
        return shape
    if len(shape) != len(spec.shape):
        raise TensorError(
            f"{where}: shape {list(shape)} has rank {len(shape)}, the model expects "
            f"rank {len(spec.shape)} {list(spec.shape)}"
        )
    for axis, got in enumerate(shape):
        want = spec.shape[axis]
        if want != -1:
            if got != want:
                raise TensorError(
                    f"{where}: shape {list(shape)} does not match {list(spec.shape)} at axis {axis}"
                )
            continue
        low, high = spec.bounds(axis)
        if got < low or (high is not None and got > high):
            allowed = f"{low}..{high}" if high is not None else f"at least {low}"
            raise TensorError(
                f"{where}: axis {axis} is {got}, outside the model's bounds ({allowed})"
            )
    return shape


def _element_count(shape: tuple[int, ...], *, where: str, limits: Limits) -> int:
    count = 1
    for dim in shape:
        count *= dim
        if count > limits.max_elements:  # stop before the product grows any further
            raise TensorTooLarge(
                f"{where}: shape {_short(list(shape))} declares more than "
                f"{limits.max_elements} elements"
            )
    return count


def _flatten(data: Any, shape: tuple[int, ...], *, where: str) -> list[Any]:
    """Row-major elements of flat or fully nested ``data``; nesting must follow ``shape``.

    Walks level by level (never recursing), checking each level's lengths against ``shape``
    before descending, so ragged or runaway nesting is refused after reading what was sent.
    """
    if not isinstance(data, list):
        raise TensorError(f"{where}: data must be an array")
    if not data or type(data[0]) is not list:
        return data
    if not shape:
        raise TensorError(f"{where}: a scalar cannot hold nested data")
    level: list[Any] = [data]
    last = len(shape) - 1
    for depth, dim in enumerate(shape):
        for node in level:
            if type(node) is not list or len(node) != dim:
                raise TensorError(
                    f"{where}: nested data does not match shape {list(shape)} at depth {depth}"
                )
        level = list(chain.from_iterable(level))
        if depth == last:
            break
    return level


def check_values(
    values: list[Any],
    dtype: Datatype,
    *,
    where: str,
    max_bytes: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    finite: bool = True,
) -> None:
    """Raise unless every element of ``values`` is a valid ``dtype`` value (the JSON form).
    ``finite=False`` (responses only) lets floats be NaN or infinite."""
    if not values:
        return
    types = set(map(type, values))
    if list in types:
        raise TensorError(f"{where}: data is nested deeper than shape")
    kind = dtype.kind
    if kind == "float":
        if not types <= _NUMBER_TYPES:
            bad = next(v for v in values if type(v) not in _NUMBER_TYPES)
            raise TensorError(f"{where}: {dtype.name} data must be numbers, got {_short(bad)}")
        if not finite:
            return
        if float in types and not all(map(math.isfinite, values)):
            raise TensorError(f"{where}: {dtype.name} data must be finite numbers")
        if max(values) > dtype.high or min(values) < -dtype.high:
            raise TensorError(f"{where}: a value is out of range for {dtype.name}")
    elif kind == "int":
        if types != {int}:
            bad = next(v for v in values if type(v) is not int)
            raise TensorError(f"{where}: {dtype.name} data must be integers, got {_short(bad)}")
        if min(values) < dtype.low or max(values) > dtype.high:
            raise TensorError(f"{where}: a value is out of range for {dtype.name}")
    elif kind == "bool":
        if types != {bool}:
            bad = next(v for v in values if type(v) is not bool)
            raise TensorError(f"{where}: BOOL data must be true/false, got {_short(bad)}")
    else:
        if types != {str}:
            bad = next(v for v in values if type(v) is not str)
            raise TensorError(f"{where}: BYTES data must be strings, got {_short(bad)}")
        _check_strings(values, where=where, max_bytes=max_bytes, limits=limits)


def _check_strings(values: list[str], *, where: str, max_bytes: int | None, limits: Limits) -> None:
    longest = max(map(len, values))
    # A character is at most 4 UTF-8 bytes: only texts that could be over a cap are encoded.
    for cap, error in ((max_bytes, TensorError), (limits.max_bytes_element, TensorTooLarge)):
        if cap is not None and longest * 4 > cap:
            for index, text in enumerate(values):
                if len(text) * 4 > cap and len(_utf8(text, where=where)) > cap:
                    raise error(
                        f"{where}: element {index} is {len(_utf8(text, where=where))} bytes "
                        f"of UTF-8, more than the {cap} allowed"
                    )
    # Lone surrogates ("\ud800") parse from JSON but are not text: refuse them here rather
    # than as an encoding error inside the model server.
    if not all(map(str.isascii, values)):
        for text in values:
            _utf8(text, where=where)


def _utf8(text: str, *, where: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise TensorError(f"{where}: BYTES data must be valid UTF-8 text") from None


def _binary_strings(
    chunk: memoryview, count: int, *, where: str, max_bytes: int | None, limits: Limits
) -> list[str]:
    """BYTES elements are each a 4-byte length then that many bytes; they must fill ``chunk``."""
    if count * _BYTES_LENGTH.size > len(chunk):
        raise TensorError(f"{where}: binary BYTES data holds fewer than {count} items")
    cap = min(max_bytes or limits.max_bytes_element, limits.max_bytes_element)
    values: list[str] = []
    position = 0
    for index in range(count):
        if position + _BYTES_LENGTH.size > len(chunk):
            raise TensorError(f"{where}: binary BYTES data holds fewer than {count} items")
        (length,) = _BYTES_LENGTH.unpack_from(chunk, position)
        position += _BYTES_LENGTH.size
        if position + length > len(chunk):
            raise TensorError(
                f"{where}: binary BYTES element {index} claims {length} bytes, past the end of "
                "its data"
            )
        if length > cap:
            error = TensorError if max_bytes is not None and length > max_bytes else TensorTooLarge
            raise error(f"{where}: element {index} is {length} bytes, more than the {cap} allowed")
        try:
            values.append(str(chunk[position : position + length], "utf-8"))
        except UnicodeDecodeError:
            raise TensorError(f"{where}: BYTES element {index} is not valid UTF-8") from None
        position += length
    if position != len(chunk):
        raise TensorError(f"{where}: binary BYTES data does not hold exactly {count} elements")
    return values


def _check_binary(chunk: memoryview, dtype: Datatype, *, where: str) -> None:
    if dtype.kind == "bool":
        if bytes(chunk).translate(None, _BOOL_BYTES):
            raise TensorError(f"{where}: binary BOOL data must be bytes 0 or 1")
        return
    if dtype.kind != "float":
        return  # every bit pattern is a valid integer
    # NaN and infinities have every exponent bit set. The top byte of each little-endian value
    # holds the sign and the exponent's high bits: a value whose top byte shows them all set
    # is rare (FP32 >= 2**127, FP64 >= 2**1023), so only then are the values looked at.
    top = bytes(chunk)[dtype.size - 1 :: dtype.size]  # a strided memoryview copies slowly
    if not top.translate(None, _NOT_EXPONENT_TOP[dtype.size]):
        return
    if dtype.size == 2:
        finite = all(map(math.isfinite, (v for (v,) in struct.iter_unpack("<e", chunk))))
    else:
        values = array.array(dtype.code)
        values.frombytes(chunk)
        if sys.byteorder == "big":
            values.byteswap()
        finite = all(map(math.isfinite, values))
    if not finite:
        raise TensorError(f"{where}: {dtype.name} data must be finite numbers")


# Per float size: the top bytes that cannot belong to a NaN or an infinity.
_NOT_EXPONENT_TOP = {
    2: bytes(b for b in range(256) if b & 0x7C != 0x7C),  # FP16: 5 exponent bits
    4: bytes(b for b in range(256) if b & 0x7F != 0x7F),  # FP32, FP64: the top 7 of 8 / 11
    8: bytes(b for b in range(256) if b & 0x7F != 0x7F),
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _decode_outputs(raw: Any, signature: Signature | None) -> tuple[RequestedOutput, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise TensorError("'outputs' must be a non-empty array")
    requested: list[RequestedOutput] = []
    for index, entry in enumerate(raw):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise TensorError(f"outputs[{index}] has no 'name'")
        if signature is not None and signature.output(name) is None:
            known = ", ".join(repr(t.name) for t in signature.outputs)
            raise TensorError(f"unknown output {name[:200]!r}: the model returns {known}")
        parameters = _parameters(
            entry.get("parameters"), where=f"outputs[{index}]:", error=TensorError
        )
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise TensorError(f"outputs[{index}]: binary_data must be true or false")
        requested.append(RequestedOutput(name=name, binary=binary))
    if len({r.name for r in requested}) != len(requested):
        raise TensorError("'outputs' names the same tensor twice")
    return tuple(requested)


# -- responses ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class InferResponse:
    model_name: str | None
    model_version: str | None
    id: str | None
    outputs: tuple[Tensor, ...]

    def output(self, name: str) -> Tensor | None:
        return next((t for t in self.outputs if t.name == name), None)


_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def decode_response(
    body: bytes, *, json_length: int | None = None, limits: Limits = DEFAULT_LIMITS
) -> InferResponse:
    """Decode a model server's answer (clients, batch scoring). Float outputs may carry the
    strings "NaN"/"Infinity"/"-Infinity", the encoder's spelling of non-finite results."""
    header, binary = split_body(body, json_length)
    document = loads(header, max_depth=limits.max_depth, what="the response")
    if not isinstance(document, dict) or not isinstance(document.get("outputs"), list):
        raise ProtocolError("the response is not an inference response (no 'outputs' array)")
    view = memoryview(binary) if binary is not None else None
    outputs: list[Tensor] = []
    offset = 0
    for index, raw in enumerate(document["outputs"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise ProtocolError(f"outputs[{index}] has no 'name'")
        data = raw.get("data")
        datatype = DATATYPES.get(raw.get("datatype"))  # type: ignore[arg-type]
        if datatype is not None and datatype.kind == "float" and isinstance(data, list):
            raw = {**raw, "data": _finite_or_spelled(data)}
        tensor, offset = _decode_input(
            raw, None, binary=view, offset=offset, limits=limits, finite=False
        )
        outputs.append(tensor)
    if view is not None and offset != len(view):
        raise ProtocolError(
            f"the binary data is {len(view)} bytes but the outputs declare {offset}"
        )
    model_version = document.get("model_version")
    return InferResponse(
        model_name=document.get("model_name"),
        model_version=str(model_version) if model_version is not None else None,
        id=document.get("id") if isinstance(document.get("id"), str) else None,
        outputs=tuple(outputs),
    )


def _finite_or_spelled(data: list[Any]) -> list[Any]:
    if not any(type(v) is str or type(v) is list for v in data):
        return data
    return [
        _finite_or_spelled(v) if type(v) is list else _NON_FINITE.get(v, v) if type(v) is str else v
        for v in data
    ]
