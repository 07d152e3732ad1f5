"""The Open Inference Protocol (KServe/Triton "v2") at the model server's edge.

Decoding and encoding are the shared codec's (``functions.core.oip``, the one the router and
batch scoring run), so the three agree on what a valid request is; this module only turns the
codec's plain Python tensors into numpy arrays and back, and its errors into the server's.
Nothing here allocates from a size the client merely claims: the codec has checked every
element count against the bytes actually sent before an array is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.core import oip
from functions.core.exceptions import ModelwayError
from serving.exceptions import InvalidRequest, InvalidTensor, PayloadTooLarge, ServingError
from serving.signature import NUMPY_DTYPES

JSON_CONTENT_TYPE = oip.JSON_CONTENT_TYPE
SAGEMAKER_BINARY = oip.BINARY_CONTENT_TYPE
HEADER_LENGTH = oip.HEADER_LENGTH
RequestedOutput = oip.RequestedOutput


@dataclass(frozen=True)
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray


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


def _serving_error(exc: ModelwayError) -> ServingError:
    """The codec's error as the server's own, same status and code."""
    kind: type[ServingError]
    if exc.status == 413:
        kind = PayloadTooLarge
    elif isinstance(exc, oip.ProtocolError):
        kind = InvalidRequest
    else:
        kind = InvalidTensor
    error = kind(exc.message)
    error.status, error.code = exc.status, exc.code
    return error


def json_header_length(*, content_type: str | None, header: str | None) -> int | None:
    """Where the JSON part of a binary request ends, or None for a pure JSON body."""
    try:
        return oip.header_length(content_type=content_type, header=header)
    except ModelwayError as exc:
        raise _serving_error(exc) from None


def _array(tensor: oip.Tensor) -> np.ndarray:
    dtype = NUMPY_DTYPES[tensor.datatype]
    if tensor.raw is not None:
        # The wire format is little-endian whatever the host; read-only view, no copy.
        array = np.frombuffer(tensor.raw, dtype=dtype.newbyteorder("<"))
        if not array.flags.aligned or array.dtype != dtype:
            array = array.astype(dtype)
        return array.reshape(tensor.shape)
    assert tensor.values is not None
    if dtype.kind == "O":
        # ONNX Runtime's string tensors: an object array of str, never numpy's fixed-width "U".
        strings = np.empty(len(tensor.values), dtype=object)
        strings[:] = tensor.values
        return strings.reshape(tensor.shape)
    return np.array(tensor.values, dtype=dtype).reshape(tensor.shape)


def decode_request(
    body: bytes, *, json_length: int | None = None, signature: oip.Signature | None = None
) -> InferRequest:
    """Decode (and, given the model's ``signature``, check) a request into numpy inputs.

    ``json_length`` splits a binary-extension body into its JSON header and tensor bytes.
    """
    try:
        decoded = oip.decode_request(body, json_length=json_length, signature=signature)
    except ModelwayError as exc:
        raise _serving_error(exc) from None
    return InferRequest(
        id=decoded.id,
        inputs=tuple(
            InputTensor(name=t.name, datatype=t.datatype, shape=t.shape, array=_array(t))
            for t in decoded.inputs
        ),
        outputs=decoded.outputs,
        binary_output=decoded.binary_output,
    )


def _output(out: OutputTensor) -> oip.OutputTensor:
    array = out.array
    if out.binary and array.dtype.kind != "O":
        raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        return oip.OutputTensor(
            name=out.name, datatype=out.datatype, shape=array.shape, raw=raw, binary=True
        )
    values: list[Any] = array.ravel().tolist()
    return oip.OutputTensor(
        name=out.name, datatype=out.datatype, shape=array.shape, values=values, binary=out.binary
    )


def encode_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[OutputTensor],
) -> EncodedResponse:
    encoded = oip.encode_response(
        model_name=model_name,
        model_version=model_version,
        request_id=request_id,
        outputs=[_output(out) for out in outputs],
    )
    return EncodedResponse(
        body=encoded.body, content_type=encoded.content_type, json_length=encoded.json_length
    )
