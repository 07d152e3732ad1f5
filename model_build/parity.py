"""Does the ONNX graph compute what the original framework computes? Checked on real inputs.

The reference is whatever the model came from: eager torch (``torch_outputs``), or the outputs
a user saved from their own framework next to an ONNX file they exported themselves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from functions.core.manifest import ParityReport
from model_build.exceptions import ExportFailed, one_line

if TYPE_CHECKING:
    import numpy as np
    import torch

    from model_build.export import DynamicAxes

DEFAULT_TOLERANCE = 1e-4


def compare_outputs(
    *,
    expected: Mapping[str, np.ndarray],
    actual: Mapping[str, np.ndarray],
    tolerance: float = DEFAULT_TOLERANCE,
    reference: str,
    scores_output: str | None = None,
) -> ParityReport:
    """Compare each expected output with ONNX Runtime's.

    ``max_abs_diff`` covers every compared output, integer ones included, so a single flipped
    label (a difference of at least 1) fails the tolerance on its own; string outputs count
    as infinitely far apart when they differ. ``argmax_agreement`` (only with
    ``scores_output``) is the share of rows whose top class is the same in both.
    """
    import numpy as np

    per_output: dict[str, float] = {}
    rows = 0
    for name, want in expected.items():
        got = actual[name]
        rows = max(rows, int(want.shape[0]) if want.ndim else 1)
        if got.shape != want.shape:
            per_output[name] = math.inf
        elif want.dtype == object or got.dtype == object or want.dtype.kind in "USb":
            per_output[name] = 0.0 if bool(np.array_equal(got, want)) else math.inf
        else:
            diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
            worst = float(diff.max(initial=0.0))
            per_output[name] = math.inf if math.isnan(worst) else worst
    max_abs_diff = max(per_output.values(), default=0.0)

    agreement: float | None = None
    if scores_output is not None:
        want_scores = expected[scores_output].reshape(rows, -1)
        got_scores = actual[scores_output].reshape(rows, -1)
        agreement = float(np.mean(want_scores.argmax(axis=1) == got_scores.argmax(axis=1)))

    return ParityReport(
        samples=rows,
        max_abs_diff=max_abs_diff,
        argmax_agreement=agreement,
        tolerance=tolerance,
        passed=max_abs_diff <= tolerance and agreement in (None, 1.0),
        reference=reference,
        outputs=per_output,
    )


def unchecked(*, rows: int) -> ParityReport:
    """The report for a model with nothing to compare ONNX Runtime with: it ran on ``rows``
    rows, and no more is claimed (``max_abs_diff`` is absent, not zero)."""
    return ParityReport(
        samples=rows,
        max_abs_diff=None,
        argmax_agreement=None,
        tolerance=0.0,
        passed=True,
        reference="none",
    )


def merge_reports(reports: Sequence[tuple[str, ParityReport]]) -> ParityReport:
    """One report for several runs of the same model on different inputs (named by their
    label): the worst figures of all, the rows of the first, each run's max abs diff under
    ``checks``."""
    first = reports[0][1]
    outputs: dict[str, float] = {}
    for _, report in reports:
        for name, diff in report.outputs.items():
            outputs[name] = max(outputs.get(name, 0.0), diff)
    # Extra field (the report allows them): each run's figure, by label.
    extra: dict[str, Any] = {"checks": {label: r.max_abs_diff for label, r in reports}}
    agreements = [r.argmax_agreement for _, r in reports if r.argmax_agreement is not None]
    diffs = [r.max_abs_diff for _, r in reports if r.max_abs_diff is not None]
    return ParityReport(
        samples=first.samples,
        max_abs_diff=max(diffs) if diffs else None,
        argmax_agreement=min(agreements) if agreements else None,
        tolerance=first.tolerance,
        passed=all(r.passed for _, r in reports),
        reference=first.reference,
        outputs=outputs,
        **extra,
    )


def describe_failure(report: ParityReport) -> str:
    """One line: which output (and which run) is furthest from the reference, and by how
    much."""
    worst = max(report.outputs, key=lambda name: report.outputs[name], default=None)
    where = f" on output {worst!r}" if worst is not None else ""
    checks = getattr(report, "checks", None) or {}
    if len(checks) > 1:
        run = max(checks, key=lambda label: checks[label] or 0.0)
        where += f" ({run})"
    line = (
        f"ONNX Runtime disagrees with {report.reference} on {report.samples} rows{where}: "
        f"max abs diff {report.max_abs_diff:.3g} (tolerance {report.tolerance:g})"
    )
    if report.argmax_agreement is not None:
        line += f", argmax agreement {report.argmax_agreement:.4f}"
    return line


def torch_outputs(
    *, model: torch.nn.Module, inputs: Mapping[str, np.ndarray], output_names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Eager torch on ``inputs`` (keyword arguments of ``forward``), outputs by name."""
    import torch

    model.eval()
    try:
        with torch.no_grad():
            result = model(**{name: torch.from_numpy(array) for name, array in inputs.items()})
    except Exception as exc:  # the user's forward: anything
        shapes = {name: list(array.shape) for name, array in inputs.items()}
        raise ExportFailed(
            f"{type(model).__name__} fails in eager torch on inputs of shapes {shapes}: "
            f"{type(exc).__name__}: {one_line(exc, limit=300)}"
        ) from exc
    values = flatten_outputs(result)
    if len(values) != len(output_names):
        raise ExportFailed(
            f"the module returned {len(values)} output(s), but {len(output_names)} output "
            f"name(s) were given: {list(output_names)}"
        )
    return {name: value.detach().numpy() for name, value in zip(output_names, values, strict=True)}


def flatten_outputs(result: object) -> list[torch.Tensor]:
    """A forward's return value as the flat list of tensors the ONNX graph outputs."""
    import torch

    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, Mapping):
        return [tensor for value in result.values() for tensor in flatten_outputs(value)]
    if isinstance(result, list | tuple):
        return [tensor for value in result for tensor in flatten_outputs(value)]
    raise ExportFailed(f"the module returned a {type(result).__name__}, not tensors")


def parity_variants(
    arrays: Mapping[str, np.ndarray], dynamic_axes: DynamicAxes
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The inputs parity runs on: all samples; the first row alone (a graph that only works
    for the example's batch fails here); and each named dynamic dimension one shorter (a
    graph that baked in the example's length fails here)."""
    variants = [
        ("samples", dict(arrays)),
        ("first row alone", {name: array[:1] for name, array in arrays.items()}),
    ]
    dims: dict[str, list[tuple[str, int]]] = {}
    for name, axes in dynamic_axes.items():
        for axis, dim_name in axes.items():
            if axis != 0:
                dims.setdefault(dim_name, []).append((name, axis))
    for dim_name, members in sorted(dims.items()):
        shorter = dict(arrays)
        for name, axis in members:
            length = arrays[name].shape[axis]
            shorter[name] = arrays[name].take(range(length - 1), axis=axis)
        variants.append((f"{dim_name} one shorter", shorter))
    return variants
