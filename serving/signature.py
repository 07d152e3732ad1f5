"""Tensor signatures for the model server: the shared codec's (``functions.core.oip``, the
one publishing and the router use) plus their numpy and ONNX Runtime mappings.

The manifest's signature is the contract the server checks requests against; at load time it
is reconciled with what the ONNX graph really declares (the same ``reconcile`` publishing
runs), so a lying manifest fails loudly at startup instead of as a 500 per request.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from functions.core.oip import DATATYPES, Signature, SignatureError, TensorSpec
from functions.core.oip import reconcile as _reconcile
from serving.exceptions import ArtifactError

__all__ = [
    "NUMPY_DTYPES",
    "ORT_TYPES",
    "Signature",
    "TensorSpec",
    "reconcile",
    "signature_from_manifest",
    "signature_from_session",
]

# v2 datatype -> numpy dtype. BYTES are UTF-8 text: numpy object arrays of ``str``, which is
# what ONNX Runtime takes and returns for ``tensor(string)``.
NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(object) if d.kind == "bytes" else np.dtype(f"<{d.code}").newbyteorder("=")
    for name, d in DATATYPES.items()
}

# ONNX Runtime's type strings (NodeArg.type) -> v2 datatype.
ORT_TYPES: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
assert set(ORT_TYPES.values()) == set(DATATYPES), "every v2 datatype maps to an ORT type"


def signature_from_manifest(raw: Any) -> Signature:
    try:
        return Signature.from_dict(raw)
    except SignatureError as exc:
        raise ArtifactError(f"manifest signature: {exc}") from None


def _spec_from_ort(arg: Any) -> TensorSpec:
    datatype = ORT_TYPES.get(arg.type)
    if datatype is None:
        raise ArtifactError(f"model tensor {arg.name!r} has unsupported type {arg.type}")
    # Symbolic or unknown dims come back as str/None: both are dynamic. A symbol names the
    # axis: inputs sharing one must agree on its size (the codec checks it per request).
    dims = list(arg.shape or [])
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in dims)
    names = tuple(d if isinstance(d, str) and d and len(d) <= 256 else None for d in dims)
    try:
        return TensorSpec(
            name=arg.name, datatype=datatype, shape=shape, dim_names=names if any(names) else None
        )
    except SignatureError as exc:
        raise ArtifactError(f"model tensor {arg.name!r}: {exc}") from None


def signature_from_session(session: Any) -> Signature:
    try:
        return Signature(
            inputs=tuple(_spec_from_ort(a) for a in session.get_inputs()),
            outputs=tuple(_spec_from_ort(a) for a in session.get_outputs()),
        )
    except SignatureError as exc:
        raise ArtifactError(f"model graph: {exc}") from None


def reconcile(declared: Signature, graph: Signature) -> Signature:
    """The signature to serve: the manifest's, checked against the ONNX graph.

    Every graph input must be declared (a request could not feed it otherwise); outputs may be
    a subset of the graph's (the manifest decides what is served)."""
    try:
        return _reconcile(declared, graph)
    except SignatureError as exc:
        raise ArtifactError(str(exc)) from None
