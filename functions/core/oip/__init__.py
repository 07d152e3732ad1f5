"""The Open Inference Protocol (KServe/Triton "v2") codec and tensor signatures.

Standard library only, so the Lambda router, batch scoring and the model server (whose image
copies this package in) share one set of rules for what a valid request is; the model server
converts decoded tensors to numpy at its own edge.
"""

from functions.core.oip.datatypes import DATATYPE_SIZES, DATATYPES, Datatype
from functions.core.oip.decode import (
    InferRequest,
    RequestedOutput,
    Tensor,
    decode_document,
    decode_request,
)
from functions.core.oip.encode import Encoded, OutputTensor, encode_request, encode_response
from functions.core.oip.exceptions import (
    NestedTooDeep,
    ProtocolError,
    SignatureError,
    TensorError,
    TensorTooLarge,
)
from functions.core.oip.framing import (
    BINARY_CONTENT_TYPE,
    HEADER_LENGTH,
    JSON_CONTENT_TYPE,
    header_length,
    loads,
    split_body,
)
from functions.core.oip.limits import DEFAULT_LIMITS, Limits
from functions.core.oip.response import InferResponse, decode_response
from functions.core.oip.signature import MAX_RANK, Signature, TensorSpec, reconcile
from functions.core.oip.values import check_values

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
