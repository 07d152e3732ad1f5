"""Tensor signatures: what a version takes and returns, and the rules a signature must obey.

The manifest stores one (``modelway.json``: ``signature.inputs`` / ``signature.outputs``),
publishing checks it, the router and batch scoring check requests against it, and the model
server loads it and checks it against the ONNX graph with ``reconcile``, all through this
module, so what publishes is what loads and what the router lets through is what the model
server accepts.

A tensor spec in the manifest::

    {"name": "input_ids", "datatype": "INT64", "shape": [-1, -1],
     "max_shape": [64, 256]}          # optional: at most 64 rows of at most 256 tokens
    {"name": "text", "datatype": "BYTES", "shape": [-1], "max_bytes": 4096}

``shape`` uses -1 for a dynamic axis. ``min_shape`` / ``max_shape`` (optional, same rank) bound
the dynamic axes; -1 there means "no bound", and a fixed axis may only repeat its size.
``max_bytes`` (BYTES only) caps the UTF-8 length of each element. ``dim_names`` (optional, same
rank; a name or null per axis) names dynamic axes as the ONNX graph does (``dim_param``): axes of
different inputs that share a name must have the same size in a request, e.g. ``input_ids`` and
``attention_mask`` along ``"sequence"`` (the model would fail on them otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.core.oip.datatypes import DATATYPES
from functions.core.oip.exceptions import SignatureError

MAX_RANK = 32
# Names travel in JSON, headers and logs; anything this long is not a tensor name.
MAX_NAME_LENGTH = 256


def _dims(raw: Any, *, what: str, where: str) -> tuple[int, ...]:
    if isinstance(raw, tuple):
        raw = list(raw)
    if not isinstance(raw, list) or any(type(d) is not int for d in raw):
        raise SignatureError(f"{where}: {what} must be a list of integers, got {raw!r}")
    if len(raw) > MAX_RANK:
        raise SignatureError(f"{where}: {what} has rank {len(raw)}, more than {MAX_RANK}")
    if any(d < -1 or d == 0 for d in raw):
        raise SignatureError(f"{where}: {what} dimensions must be positive or -1, got {raw}")
    return tuple(raw)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    # -1 marks a dynamic axis (the batch axis, at least, for a batchable model).
    shape: tuple[int, ...]
    min_shape: tuple[int, ...] | None = None
    max_shape: tuple[int, ...] | None = None
    max_bytes: int | None = None
    dim_names: tuple[str | None, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or len(self.name) > MAX_NAME_LENGTH:
            raise SignatureError(f"a tensor name must be 1-{MAX_NAME_LENGTH} characters")
        where = f"tensor {self.name!r}"
        if self.datatype not in DATATYPES:
            known = ", ".join(DATATYPES)
            raise SignatureError(f"{where}: unknown datatype {self.datatype!r} (known: {known})")
        object.__setattr__(self, "shape", _dims(self.shape, what="shape", where=where))
        for bound in ("min_shape", "max_shape"):
            value = getattr(self, bound)
            if value is None:
                continue
            dims = _dims(value, what=bound, where=where)
            if len(dims) != len(self.shape):
                raise SignatureError(
                    f"{where}: {bound} {list(dims)} must have the rank of shape {list(self.shape)}"
                )
            for axis, (fixed, limit) in enumerate(zip(self.shape, dims, strict=True)):
                if fixed != -1 and limit not in (-1, fixed):
                    raise SignatureError(
                        f"{where}: {bound} {list(dims)} bounds axis {axis}, which is fixed "
                        f"at {fixed}"
                    )
            object.__setattr__(self, bound, dims)
        if self.min_shape and self.max_shape:
            for axis, (low, high) in enumerate(zip(self.min_shape, self.max_shape, strict=True)):
                if low != -1 and high != -1 and low > high:
                    raise SignatureError(
                        f"{where}: min_shape {list(self.min_shape)} is above max_shape "
                        f"{list(self.max_shape)} at axis {axis}"
                    )
        if self.max_bytes is not None:
            if self.datatype != "BYTES":
                raise SignatureError(f"{where}: max_bytes applies to BYTES tensors only")
            if type(self.max_bytes) is not int or self.max_bytes < 1:
                raise SignatureError(f"{where}: max_bytes must be a positive integer")
        if self.dim_names is not None:
            names = tuple(self.dim_names) if isinstance(self.dim_names, list | tuple) else None
            if names is None or len(names) != len(self.shape):
                raise SignatureError(f"{where}: dim_names must list one name or null per axis")
            for axis, name in enumerate(names):
                if name is None:
                    continue
                if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH:
                    raise SignatureError(f"{where}: dim_names[{axis}] must be a short string")
                if self.shape[axis] != -1:
                    raise SignatureError(f"{where}: dim_names names axis {axis}, which is fixed")
            object.__setattr__(self, "dim_names", names)

    def bounds(self, axis: int) -> tuple[int, int | None]:
        """The smallest and largest size axis ``axis`` may take (None: no upper bound)."""
        fixed = self.shape[axis]
        if fixed != -1:
            return fixed, fixed
        low = self.min_shape[axis] if self.min_shape else -1
        high = self.max_shape[axis] if self.max_shape else -1
        return (low if low != -1 else 1), (high if high != -1 else None)

    def to_dict(self) -> dict[str, Any]:
        """The manifest form; optional fields only when set, so old readers see old shapes."""
        out: dict[str, Any] = {
            "name": self.name,
            "datatype": self.datatype,
            "shape": list(self.shape),
        }
        if self.min_shape is not None:
            out["min_shape"] = list(self.min_shape)
        if self.max_shape is not None:
            out["max_shape"] = list(self.max_shape)
        if self.max_bytes is not None:
            out["max_bytes"] = self.max_bytes
        if self.dim_names is not None:
            out["dim_names"] = list(self.dim_names)
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> TensorSpec:
        if not isinstance(raw, Mapping):
            raise SignatureError(f"a tensor spec must be an object, got {raw!r}")
        return cls(
            name=raw.get("name"),  # type: ignore[arg-type]  # checked in __post_init__
            datatype=raw.get("datatype"),  # type: ignore[arg-type]
            shape=raw.get("shape"),  # type: ignore[arg-type]
            min_shape=raw.get("min_shape"),
            max_shape=raw.get("max_shape"),
            max_bytes=raw.get("max_bytes"),
            dim_names=raw.get("dim_names"),
        )


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    _by_name: dict[str, dict[str, TensorSpec]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        for where in ("inputs", "outputs"):
            specs = tuple(getattr(self, where))
            if not specs:
                raise SignatureError(f"a signature needs at least one of {where}")
            if not all(isinstance(s, TensorSpec) for s in specs):
                raise SignatureError(f"signature {where} must be tensor specs")
            names = [s.name for s in specs]
            if len(set(names)) != len(names):
                twice = sorted({n for n in names if names.count(n) > 1})
                raise SignatureError(f"signature {where} name {twice[0]!r} twice")
            object.__setattr__(self, where, specs)
            self._by_name[where] = {s.name: s for s in specs}

    def input(self, name: str) -> TensorSpec | None:
        return self._by_name["inputs"].get(name)

    def output(self, name: str) -> TensorSpec | None:
        return self._by_name["outputs"].get(name)

    @property
    def named_axes(self) -> dict[str, list[tuple[str, int]]]:
        """Per axis name shared by the inputs: the (input, axis) pairs that must agree."""
        axes: dict[str, list[tuple[str, int]]] = {}
        for spec in self.inputs:
            for axis, name in enumerate(spec.dim_names or ()):
                if name is not None:
                    axes.setdefault(name, []).append((spec.name, axis))
        return {name: where for name, where in axes.items() if len(where) > 1}

    @property
    def batchable(self) -> bool:
        """Axis 0 of every tensor is dynamic: requests may be stacked along it."""
        return all(t.shape and t.shape[0] == -1 for t in (*self.inputs, *self.outputs))

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Signature:
        """Read a manifest's ``signature``; raises ``SignatureError`` naming the problem."""
        if not isinstance(raw, Mapping):
            raise SignatureError("a signature must be an object with inputs and outputs")
        parts: dict[str, tuple[TensorSpec, ...]] = {}
        for where in ("inputs", "outputs"):
            entries = raw.get(where)
            if not isinstance(entries, list) or not entries:
                raise SignatureError(f"a signature needs a non-empty list of {where}")
            parts[where] = tuple(TensorSpec.from_dict(e) for e in entries)
        return cls(inputs=parts["inputs"], outputs=parts["outputs"])


def reconcile(declared: Signature, graph: Signature, *, exact: bool = False) -> Signature:
    """The signature to serve: ``declared`` (the manifest's) checked against ``graph`` (what the
    ONNX graph says). Raises ``SignatureError`` listing every disagreement.

    Every graph input must be declared (a request could not feed it otherwise) with the graph's
    datatype and a compatible shape; declared outputs must be graph outputs. A dim fixed on
    either side is fixed in the result. ``exact`` (publishing) also requires every graph output
    declared and shapes written exactly as the graph has them, so that what publishes is
    always what the model server loads.
    """
    problems = [
        *_compare("input", declared.inputs, graph.inputs, every_graph_tensor=True, exact=exact),
        *_compare("output", declared.outputs, graph.outputs, every_graph_tensor=exact, exact=exact),
    ]
    if problems:
        raise SignatureError(
            "manifest signature does not match the ONNX graph: " + "; ".join(problems)
        )
    actual = {t.name: t for t in (*graph.inputs, *graph.outputs)}
    return Signature(
        inputs=tuple(_merge(s, actual[s.name]) for s in declared.inputs),
        outputs=tuple(_merge(s, actual[s.name]) for s in declared.outputs),
    )


def _compare(
    kind: str,
    declared: Iterable[TensorSpec],
    actual: Iterable[TensorSpec],
    *,
    every_graph_tensor: bool,
    exact: bool,
) -> list[str]:
    problems: list[str] = []
    declared_by_name = {spec.name: spec for spec in declared}
    actual_by_name = {spec.name: spec for spec in actual}
    graph_names = sorted(actual_by_name)
    for name in sorted(declared_by_name.keys() - actual_by_name.keys()):
        problems.append(f"manifest {kind} {name!r} is not a graph {kind} (graph has {graph_names})")
    if every_graph_tensor:
        for name in sorted(actual_by_name.keys() - declared_by_name.keys()):
            problems.append(f"graph {kind} {name!r} is missing from the manifest")
    for name in sorted(declared_by_name.keys() & actual_by_name.keys()):
        want, got = declared_by_name[name], actual_by_name[name]
        if want.datatype != got.datatype:
            problems.append(
                f"{kind} {name!r} datatype: manifest {want.datatype}, graph {got.datatype}"
            )
        fits = len(want.shape) == len(got.shape) and all(
            w == -1 or g == -1 or w == g for w, g in zip(want.shape, got.shape, strict=True)
        )
        if not fits or (exact and want.shape != got.shape):
            problems.append(
                f"{kind} {name!r} shape: manifest {list(want.shape)}, graph {list(got.shape)}"
            )
            continue
        for axis, dim in enumerate(got.shape):
            low, high = want.bounds(axis)
            if dim != -1 and (dim < low or (high is not None and dim > high)):
                problems.append(
                    f"{kind} {name!r} axis {axis}: the graph fixes it at {dim}, outside the "
                    f"manifest's bounds"
                )
    return problems


def _merge(spec: TensorSpec, real: TensorSpec) -> TensorSpec:
    # A dim fixed on either side is fixed: requests are then refused by the codec rather
    # than failing inside ONNX Runtime. A bound on an axis that became fixed is moot.
    shape = tuple(s if s != -1 else r for s, r in zip(spec.shape, real.shape, strict=True))

    def bound(dims: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if dims is None:
            return None
        return tuple(-1 if fixed != -1 else d for fixed, d in zip(shape, dims, strict=True))

    # Axis names: the manifest's, else the graph's (so that even a manifest that names none
    # gets the graph's "these axes must agree"), on axes still dynamic.
    names = spec.dim_names or real.dim_names
    if names is not None:
        names = tuple(n if fixed == -1 else None for n, fixed in zip(names, shape, strict=True))
        if not any(names):
            names = None
    return TensorSpec(
        name=spec.name,
        datatype=spec.datatype,
        shape=shape,
        min_shape=bound(spec.min_shape),
        max_shape=bound(spec.max_shape),
        max_bytes=spec.max_bytes,
        dim_names=names,
    )
