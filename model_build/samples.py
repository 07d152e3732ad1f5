"""Named arrays a model is run on while it is packaged: the user's samples (``.npz``), their
expected outputs, or inputs generated from the signature when there are no samples.

Each array is checked against the signature here, with a one-line reason, so a wrong file is
refused before any model runs rather than surfacing as an ONNX Runtime error.
"""

from __future__ import annotations

import inspect
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.core.manifest import Signature, TensorSpec
from model_build.exceptions import InvalidSamples, SourceNotFound

if TYPE_CHECKING:
    import numpy as np
    import torch

# The smallest batch that keeps the batch axis honest: torch.export specializes a dimension
# of size 1, and a graph that only ever ran on one row proves nothing about batching.
MIN_BATCH = 2
# Generated inputs: two rows, and this length on every other dynamic axis.
GENERATED_LENGTH = 8

Arrays = Mapping[str, "np.ndarray"]


def load_npz(path: Path, *, what: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (``numpy.savez``), by name. No pickles."""
    import numpy as np

    if not path.is_file():
        raise SourceNotFound(f"{what} file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as loaded:
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise InvalidSamples(f"{what} file {path} is a single array, not an .npz")
            arrays = {name: loaded[name] for name in loaded.files}
    except InvalidSamples:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        # ValueError is also numpy's answer to an object array (pickle) it will not load.
        raise InvalidSamples(f"{what} file {path} is not a readable .npz: {exc}") from exc
    if not arrays:
        raise InvalidSamples(f"{what} file {path} holds no arrays")
    return arrays


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    """The numpy dtype ONNX Runtime takes for a v2 datatype (BYTES: Python strings)."""
    import numpy as np

    if datatype == "BYTES":
        return np.dtype(object)
    names = {"BOOL": "bool", "FP16": "float16", "FP32": "float32", "FP64": "float64"}
    return np.dtype(names.get(datatype, datatype.lower()))


def check_inputs(arrays: Arrays, signature: Signature) -> dict[str, np.ndarray]:
    """The samples as ONNX Runtime feeds: exactly the graph's inputs, in their dtypes, one
    batch of at least ``MIN_BATCH`` rows shared by all of them."""
    _same_names(arrays, [spec.name for spec in signature.inputs], what="sample", kind="input")
    feeds = {
        spec.name: _conform(arrays[spec.name], spec, what="sample") for spec in signature.inputs
    }
    batches = {name: array.shape[0] for name, array in feeds.items()}
    if len(set(batches.values())) != 1:
        raise InvalidSamples(f"sample inputs disagree on the batch size (axis 0): {batches}")
    batch = next(iter(batches.values()))
    if batch < MIN_BATCH:
        raise InvalidSamples(
            f"samples hold {batch} row(s); give at least {MIN_BATCH} so batching is exercised"
        )
    return feeds


def check_expected(arrays: Arrays, signature: Signature, *, batch: int) -> dict[str, np.ndarray]:
    """Expected outputs, named as graph outputs (a subset is fine: only those are compared),
    one row per sample row."""
    names = [spec.name for spec in signature.outputs]
    unknown = sorted(set(arrays) - set(names))
    if unknown:
        raise InvalidSamples(
            f"expected outputs {unknown} are not outputs of the model (it has {names})"
        )
    expected: dict[str, np.ndarray] = {}
    for spec in signature.outputs:
        if spec.name not in arrays:
            continue
        array = _conform(arrays[spec.name], spec, what="expected")
        if array.shape[0] != batch:
            raise InvalidSamples(
                f"expected output {spec.name!r} has {array.shape[0]} rows, the samples {batch}"
            )
        expected[spec.name] = array
    return expected


def generate_inputs(
    signature: Signature, *, batch: int = MIN_BATCH, length: int = GENERATED_LENGTH, seed: int = 0
) -> dict[str, np.ndarray]:
    """Valid inputs made from the signature alone: ``batch`` rows, ``length`` on other dynamic
    axes. Integers are small (0 or 1) so they are valid indices into any embedding; floats are
    standard normal; strings are short words."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        shape = tuple(
            batch if axis == 0 else (length if dim == -1 else dim)
            for axis, dim in enumerate(spec.shape)
        )
        dtype = numpy_dtype(spec.datatype)
        if spec.datatype == "BYTES":
            words = np.array(["modelway", "packages", "this model"], dtype=object)
            feeds[spec.name] = rng.choice(words, size=shape)
        elif spec.datatype == "BOOL":
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif dtype.kind in "iu":
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(dtype)
        else:
            feeds[spec.name] = rng.standard_normal(size=shape).astype(dtype)
    return feeds


def _same_names(arrays: Arrays, names: list[str], *, what: str, kind: str) -> None:
    missing = [name for name in names if name not in arrays]
    extra = sorted(set(arrays) - set(names))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"no {what} array for {kind}(s) {missing}")
        if extra:
            parts.append(f"{what} array(s) {extra} are not {kind}s of the model")
        raise InvalidSamples(f"{'; '.join(parts)} (the model's {kind}s are {names})")


def _conform(array: np.ndarray, spec: TensorSpec, *, what: str) -> np.ndarray:
    """``array`` in the dtype ``spec`` names, refusing a change of kind (floats for an integer
    input, numbers for strings) and a shape the spec does not allow."""
    import numpy as np

    target = numpy_dtype(spec.datatype)
    label = f"{what} {spec.name!r}"
    if spec.datatype == "BYTES":
        if array.dtype.kind not in "USO":
            raise InvalidSamples(f"{label} is {array.dtype}, the model takes strings (BYTES)")
        array = array.astype(str).astype(object)
    elif array.dtype != target:
        # Widening or narrowing within a kind (float64 samples for an FP32 input, int32 token
        # ids for INT64) is what numpy users hand over; a change of kind is a mistake.
        same_kind = (array.dtype.kind, target.kind) in {("f", "f"), ("b", "b")} or (
            array.dtype.kind in "iu" and target.kind in "iu"
        )
        if not same_kind:
            raise InvalidSamples(f"{label} is {array.dtype}, the model takes {spec.datatype}")
        if target.kind in "iu" and array.size:
            bounds = np.iinfo(target)
            if array.min() < bounds.min or array.max() > bounds.max:
                raise InvalidSamples(f"{label} has values outside the range of {spec.datatype}")
        array = array.astype(target)
    if array.ndim != len(spec.shape):
        raise InvalidSamples(
            f"{label} has shape {list(array.shape)} (rank {array.ndim}), "
            f"the model takes rank {len(spec.shape)} {spec.shape}"
        )
    for axis, (want, got) in enumerate(zip(spec.shape, array.shape, strict=True)):
        if want != -1 and want != got:
            raise InvalidSamples(
                f"{label} has shape {list(array.shape)}, the model takes {spec.shape} "
                f"(axis {axis} must be {want})"
            )
    return np.ascontiguousarray(array)


def forward_arguments(
    module: torch.nn.Module, arrays: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The samples as ``forward``'s keyword arguments, in its parameter order. float64 arrays
    become float32: numpy's default float is rarely what a torch module computes in."""
    import numpy as np

    parameters = inspect.signature(module.forward).parameters
    names = [
        p.name for p in parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    unknown = sorted(set(arrays) - set(names))
    if unknown:
        raise InvalidSamples(
            f"sample array(s) {unknown} are not parameters of {type(module).__name__}.forward "
            f"{names}: name each sample array after the parameter it feeds"
        )
    required = [
        p.name
        for p in parameters.values()
        if p.name in names and p.default is inspect.Parameter.empty
    ]
    missing = [name for name in required if name not in arrays]
    if missing:
        raise InvalidSamples(f"no sample array for forward's parameter(s) {missing}")
    ordered = {}
    for name in names:
        if name in arrays:
            array = np.asarray(arrays[name])
            if array.dtype.kind not in "biuf":
                raise InvalidSamples(
                    f"sample {name!r} is {array.dtype}; a torch module takes numeric tensors"
                )
            ordered[name] = array.astype(np.float32) if array.dtype == np.float64 else array
    rows = {name: (a.shape[0] if a.ndim else 0) for name, a in ordered.items()}
    if len(set(rows.values())) != 1 or min(rows.values()) < 2:
        raise InvalidSamples(
            f"samples need one batch of at least 2 rows shared by every input, got {rows}"
        )
    return {name: np.ascontiguousarray(array) for name, array in ordered.items()}
