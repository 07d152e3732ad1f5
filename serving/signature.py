"""Tensor signatures in the Open Inference Protocol vocabulary, and their numpy/ORT mappings.

The manifest's signature is the contract the server checks requests against; at load time it
is cross-checked with what the ONNX graph really declares, so a lying manifest fails loudly
at startup instead of as a 500 per request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.errors import ArtifactError

# v2 datatype -> numpy dtype. BYTES (strings) is not served: ONNX models of this platform
# take numeric tensors, and refusing it up front beats a confusing runtime error.
NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
V2_DATATYPES: dict[np.dtype[Any], str] = {dtype: name for name, dtype in NUMPY_DTYPES.items()}

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


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    # -1 marks a dynamic axis.
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)

    @property
    def batchable(self) -> bool:
        """Axis 0 of every tensor is dynamic: requests may be stacked along it."""
        return all(t.shape and t.shape[0] == -1 for t in (*self.inputs, *self.outputs))


def _spec_from_manifest(raw: Any, *, where: str) -> TensorSpec:
    if not isinstance(raw, Mapping):
        raise ArtifactError(f"manifest {where} entry must be an object")
    name, datatype, shape = raw.get("name"), raw.get("datatype"), raw.get("shape")
    if not isinstance(name, str) or not name:
        raise ArtifactError(f"manifest {where} entry has no name")
    if datatype not in NUMPY_DTYPES:
        raise ArtifactError(f"manifest {where} {name!r}: unsupported datatype {datatype!r}")
    if not isinstance(shape, list) or not all(type(d) is int and (d == -1 or d > 0) for d in shape):
        raise ArtifactError(f"manifest {where} {name!r}: shape must be positive ints or -1")
    return TensorSpec(name=name, datatype=datatype, shape=tuple(shape))


def signature_from_manifest(raw: Any) -> Signature:
    if not isinstance(raw, Mapping):
        raise ArtifactError("manifest signature must be an object")
    parts: dict[str, tuple[TensorSpec, ...]] = {}
    for where in ("inputs", "outputs"):
        entries = raw.get(where)
        if not isinstance(entries, list) or not entries:
            raise ArtifactError(f"manifest signature needs a non-empty {where!r} list")
        specs = tuple(_spec_from_manifest(e, where=where[:-1]) for e in entries)
        if len({s.name for s in specs}) != len(specs):
            raise ArtifactError(f"manifest signature has duplicate {where} names")
        parts[where] = specs
    return Signature(inputs=parts["inputs"], outputs=parts["outputs"])


def _spec_from_ort(arg: Any) -> TensorSpec:
    datatype = ORT_TYPES.get(arg.type)
    if datatype is None or datatype not in NUMPY_DTYPES:
        raise ArtifactError(f"model tensor {arg.name!r} has unsupported type {arg.type}")
    # Symbolic or unknown dims come back as str/None: both are dynamic.
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in (arg.shape or []))
    return TensorSpec(name=arg.name, datatype=datatype, shape=shape)


def signature_from_session(session: Any) -> Signature:
    return Signature(
        inputs=tuple(_spec_from_ort(a) for a in session.get_inputs()),
        outputs=tuple(_spec_from_ort(a) for a in session.get_outputs()),
    )


def _reconcile_specs(
    declared: Sequence[TensorSpec], actual: Sequence[TensorSpec], *, where: str, exact: bool
) -> tuple[TensorSpec, ...]:
    by_name = {t.name: t for t in actual}
    merged = []
    for spec in declared:
        real = by_name.get(spec.name)
        if real is None:
            raise ArtifactError(f"manifest {where} {spec.name!r} is not in the model graph")
        if real.datatype != spec.datatype:
            raise ArtifactError(
                f"manifest {where} {spec.name!r} is {spec.datatype}, the graph says {real.datatype}"
            )
        if len(real.shape) != len(spec.shape) or any(
            r != -1 and s != -1 and r != s for r, s in zip(real.shape, spec.shape, strict=True)
        ):
            raise ArtifactError(
                f"manifest {where} {spec.name!r} has shape {list(spec.shape)}, "
                f"the graph says {list(real.shape)}"
            )
        # A dim fixed on either side is fixed: requests are then refused with a 400 here
        # rather than failing inside ONNX Runtime.
        shape = tuple(s if s != -1 else r for s, r in zip(spec.shape, real.shape, strict=True))
        merged.append(TensorSpec(name=spec.name, datatype=spec.datatype, shape=shape))
    if exact and {t.name for t in declared} != set(by_name):
        missing = sorted(set(by_name) - {t.name for t in declared})
        raise ArtifactError(f"manifest {where}s omit graph {where}s {missing}")
    return tuple(merged)


def reconcile(declared: Signature, graph: Signature) -> Signature:
    """The signature to serve: the manifest's, checked against the ONNX graph.

    Every graph input must be declared (a request could not feed it otherwise); outputs may be
    a subset of the graph's (the manifest decides what is served)."""
    return Signature(
        inputs=_reconcile_specs(declared.inputs, graph.inputs, where="input", exact=True),
        outputs=_reconcile_specs(declared.outputs, graph.outputs, where="output", exact=False),
    )
