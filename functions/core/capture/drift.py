"""Input drift: the population stability index of captured inputs against the reference
statistics a version recorded at build time (``manifest["reference"]``).

The reference holds, per input and per feature (an element of one sample, row-major), bin
edges (the sample's deciles, deduplicated) and the fraction of build-time samples in each
bin; a value ``v`` falls in bin ``bisect_left(edges, v)``, i.e. bins are ``(-inf, e0]``,
``(e0, e1]``, ..., ``(e_last, inf)`` — the same rule ``model_build.reference`` binned with
(``numpy.searchsorted(side="left")``). PSI is ``sum((a - e) * ln(a / e))`` over bins, with
fractions floored at ``EPSILON`` so an empty bin does not make it infinite. Rule of thumb:
under 0.1 stable, 0.1-0.25 moderate shift, over 0.25 a shift worth acting on.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

EPSILON = 1e-4
MODERATE = 0.1
SIGNIFICANT = 0.25


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def level(value: float) -> str:
    if value >= SIGNIFICANT:
        return "significant"
    if value >= MODERATE:
        return "moderate"
    return "stable"


def input_rows(tensor: Mapping[str, Any], *, features: int) -> Iterable[list[float]]:
    """The rows (samples) of a captured input tensor, each ``features`` numbers long."""
    data = tensor.get("data")
    if not isinstance(data, list) or features <= 0 or len(data) % features:
        return
    for start in range(0, len(data), features):
        row = data[start : start + features]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in row):
            yield [float(v) for v in row]


def drift_report(
    *, reference: Mapping[str, Any] | None, inputs: Iterable[Sequence[Mapping[str, Any]]]
) -> dict[str, Any]:
    """PSI per reference input over the captured ``inputs`` (one list of tensors per request).
    Inputs without a reference (text, token ids) or never captured (redacted) are left out."""
    specs = (reference or {}).get("inputs") or {}
    if not specs:
        return {"available": False, "reason": "the version's manifest has no reference statistics"}
    counts: dict[str, list[list[int]]] = {
        name: [[0] * (len(edges) + 1) for edges in spec["edges"]] for name, spec in specs.items()
    }
    rows: dict[str, int] = dict.fromkeys(specs, 0)
    for tensors in inputs:
        for tensor in tensors:
            spec = specs.get(tensor.get("name"))
            if spec is None:
                continue
            name = tensor["name"]
            edges_per_feature = spec["edges"]
            for row in input_rows(tensor, features=len(edges_per_feature)):
                rows[name] += 1
                for feature, value in enumerate(row):
                    counts[name][feature][bisect_left(edges_per_feature[feature], value)] += 1
    report: dict[str, Any] = {"available": True, "inputs": {}}
    for name, spec in specs.items():
        n = rows[name]
        if n == 0:
            report["inputs"][name] = {"rows": 0}
            continue
        values = [
            psi(expected, [c / n for c in observed])
            for expected, observed in zip(spec["fractions"], counts[name], strict=True)
        ]
        worst = sorted(range(len(values)), key=lambda i: values[i], reverse=True)[:5]
        top = max(values)
        report["inputs"][name] = {
            "rows": n,
            "features": len(values),
            "psi_max": round(top, 4),
            "psi_mean": round(sum(values) / len(values), 4),
            "worst_features": [[i, round(values[i], 4)] for i in worst],
            "level": level(top),
        }
    return report
