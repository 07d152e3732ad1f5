"""The Open Inference Protocol (KServe/Triton "v2") codec and tensor signatures.

Standard library only, so the Lambda router, batch scoring and the model server (whose image
copies this package in) share one set of rules for what a valid request is; the model server
converts decoded tensors to numpy at its own edge.
"""

from functions.core.oip.datatypes import DATATYPE_SIZES, DATATYPES, Datatype
from functions.core.oip.decode import (
    BINARY_CONTENT_TYPE,
    DEFAULT_LIMITS,
    HEADER_LENGTH,
    JSON_CONTENT_TYPE,
    InferRequest,
    InferResponse,
    Limits,
    RequestedOutput,
    Tensor,
    check_values,
    decode_document,
    decode_request,
    decode_response,
    header_length,
    loads,
    split_body,
)
from functions.core.oip.encode import Encoded, OutputTensor, encode_request, encode_response
from functions.core.oip.exceptions import (
    NestedTooDeep,
    ProtocolError,
    SignatureError,
    TensorError,
    TensorTooLarge,
)
from functions.core.oip.signature import MAX_RANK, Signature, TensorSpec, reconcile

__all__ = [
    "BINARY_CONTENT_TYPE",
    "DATATYPES",
    "DATATYPE_SIZES",
    "DEFAULT_LIMITS",
    "HEADER_LENGTH",
    "JSON_CONTENT_TYPE",
    "MAX_RANK",
    "Datatype",
    "Encoded",
    "InferRequest",
    "InferResponse",
    "Limits",
    "NestedTooDeep",
    "OutputTensor",
    "ProtocolError",
    "RequestedOutput",
    "Signature",
    "SignatureError",
    "Tensor",
    "TensorError",
    "TensorSpec",
    "TensorTooLarge",
    "check_values",
    "decode_document",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "header_length",
    "loads",
    "reconcile",
    "split_body",
]
