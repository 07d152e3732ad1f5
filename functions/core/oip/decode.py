"""Decoding Open Inference Protocol requests, JSON and binary, checked against a signature.

The one decoder the router, batch scoring and the model server run, so the three agree on what
a valid request is. Its own module: the bytes of a body are split and parsed by ``framing``
(which refuses JSON nested deeper than ``Limits.max_depth`` before ``json`` recurses into it),
each element is checked by ``values`` and a model server's answer is read by ``response``;
this module holds what makes a parsed document a valid request: its inputs, their names,
shapes and binary extents, and the outputs it asks for. It cannot be driven into recursion or
memory blow-up:

- a tensor's element count comes from its declared shape, capped (``Limits.max_elements``)
  before anything is read, and must match the data actually sent: nothing is allocated from a
  size the client merely claims;
- binary sizes (``binary_data_size``) must fit the bytes that really follow, and the inputs
  must account for every byte sent.

Statuses: 400 ``invalid_request`` when the body is not a request (not JSON, too deep, binary
framing that lies), 422 ``invalid_tensor`` when a request's tensors do not fit, 413
``payload_too_large`` when a tensor is beyond the limits.

Decoded tensors hold plain Python values (a flat row-major list) or, for fixed-size datatypes
sent in binary, the raw little-endian bytes; the model server turns either into numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any

from functions.core.oip.datatypes import DATATYPES
from functions.core.oip.exceptions import ProtocolError, TensorError, TensorTooLarge
from functions.core.oip.framing import loads, split_body
from functions.core.oip.limits import DEFAULT_LIMITS, Limits
from functions.core.oip.signature import MAX_RANK, Signature, TensorSpec
from functions.core.oip.values import binary_strings, check_binary, check_values, short_repr


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
        tensor, offset = decode_tensor(raw, spec, binary=view, offset=offset, limits=limits)
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


def decode_tensor(
    raw: dict[str, Any],
    spec: TensorSpec | None,
    *,
    binary: memoryview | None,
    offset: int,
    limits: Limits,
    finite: bool = True,
) -> tuple[Tensor, int]:
    """One named tensor object (``spec``: what it must fit, None to take it as sent), its
    binary data read from ``binary`` at ``offset``; returns it and where the next one starts.
    ``finite=False`` (responses only) lets floats be NaN or infinite."""
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
            values = binary_strings(chunk, count, where=where, max_bytes=max_bytes, limits=limits)
            tensor = Tensor(name=name, datatype=datatype, shape=shape, values=values)
        else:
            expected = count * dtype.size
            if size != expected:
                raise TensorError(
                    f"{where}: binary_data_size is {size} bytes but {count} {datatype} "
                    f"elements take {expected}"
                )
            if finite:
                check_binary(chunk, dtype, where=where)
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
        raise TensorError(f"{where}: shape must be an array of integers, got {short_repr(raw)}")
    if len(raw) > MAX_RANK:
        raise TensorError(f"{where}: shape has rank {len(raw)}, more than {MAX_RANK}")
    if any(d < 1 for d in raw):
        raise TensorError(f"{where}: shape dimensions must be positive, got {short_repr(raw)}")
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
                f"{where}: shape {short_repr(list(shape))} declares more than "
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
