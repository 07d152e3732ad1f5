"""The Open Inference Protocol (KServe/Triton "v2") codec and tensor signatures.

Standard library only, so the Lambda router, batch scoring and the model server (whose image
copies this package in) share one set of rules for what a valid request is; the model server
converts decoded tensors to numpy at its own edge.
"""

from functions.core.oip.datatypes import DATATYPE_SIZES, DATATYPES, Datatype
from functions.core.oip.exceptions import (
    ProtocolError,
    SignatureError,
    TensorError,
    TensorTooLarge,
)
from functions.core.oip.signature import MAX_RANK, Signature, TensorSpec, reconcile

__all__ = [
    "DATATYPES",
    "DATATYPE_SIZES",
    "MAX_RANK",
    "Datatype",
    "ProtocolError",
    "Signature",
    "SignatureError",
    "TensorError",
    "TensorSpec",
    "TensorTooLarge",
    "reconcile",
]
