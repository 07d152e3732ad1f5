"""The comparison report: per version, how it served; per primary/shadow pair, how often the
two agree; per version, how far live inputs have drifted from its build-time reference.

Standard library only: the router answers ``GET /v1/models/{m}/compare`` with it, the CLI
prints it, and the HTML page (``functions.core.capture.html``) draws it.

Agreement is measured per output tensor the two answers share, by what the output is:
  - ``argmax``: float scores with one column per label (the manifest's ``labels``): the share
    of rows whose top class is the same — a classifier's decision;
  - ``cosine``: other float vectors (embeddings): the cosine similarity of each row pair
    (mean and minimum);
  - ``max_abs_diff``: one float per row (regression): the largest and mean ``|Δ|``;
  - ``exact``: integers, booleans and text (a label output): the share of equal elements.
The headline ``agreement`` of a pair is its first argmax or exact figure, else the mean
cosine, else none (regression has no share to give).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from functions.core.capture.drift import drift_report
from functions.core.capture.records import PRIMARY, SHADOW, CaptureRecord

TIMELINE_BUCKETS = 24
HISTOGRAM_BINS = 20


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def build_report(
    records: Iterable[CaptureRecord],
    *,
    model: str,
    alias: str,
    manifests: Mapping[int, Mapping[str, Any]],
    since: str | None = None,
) -> dict[str, Any]:
    """``manifests``: version -> manifest, for the versions the records name (labels tell a
    classifier's scores; ``reference`` holds the drift baseline)."""
    by_version: dict[tuple[int, str], list[CaptureRecord]] = defaultdict(list)
    by_request: dict[str, dict[str, CaptureRecord]] = defaultdict(dict)
    inputs_seen: list[list[dict[str, Any]]] = []
    first = last = None
    for record in records:
        by_version[(record.version, record.role)].append(record)
        if record.role in (PRIMARY, SHADOW):
            by_request[record.request_id][record.role] = record
        if record.role == PRIMARY and record.inputs:
            inputs_seen.append(record.inputs)
        first = record.at if first is None or record.at < first else first
        last = record.at if last is None or record.at > last else last

    versions = []
    for (version, role), served in sorted(by_version.items()):
        latencies = [r.latency_ms for r in served if r.ok]
        errors = sum(1 for r in served if not r.ok)
        manifest = manifests.get(version) or {}
        versions.append(
            {
                "version": version,
                "role": role,
                "requests": len(served),
                "errors": errors,
                "error_rate": round(errors / len(served), 4),
                "error_codes": _count(r.code or str(r.status) for r in served if not r.ok),
                "p50_ms": _round(percentile(latencies, 50)),
                "p99_ms": _round(percentile(latencies, 99)),
                "mean_ms": _round(sum(latencies) / len(latencies)) if latencies else None,
                "latency_histogram": histogram(latencies),
                "drift": drift_report(reference=manifest.get("reference"), inputs=inputs_seen),
            }
        )

    pairs = _pairs(by_request, manifests=manifests)
    return {
        "model": model,
        "alias": alias,
        "since": since,
        "first": first,
        "last": last,
        "records": sum(len(v) for v in by_version.values()),
        "versions": versions,
        "pairs": pairs,
    }


def _pairs(
    by_request: Mapping[str, Mapping[str, CaptureRecord]],
    *,
    manifests: Mapping[int, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """One entry per (primary version, shadow version) seen together."""
    grouped: dict[tuple[int, int], list[tuple[CaptureRecord, CaptureRecord]]] = defaultdict(list)
    for roles in by_request.values():
        primary, shadow = roles.get(PRIMARY), roles.get(SHADOW)
        if primary is not None and shadow is not None:
            grouped[(primary.version, shadow.version)].append((primary, shadow))
    result = []
    for (primary_version, shadow_version), pairs in sorted(grouped.items()):
        labels = (manifests.get(primary_version) or {}).get("labels")
        both_ok = [(p, s) for p, s in pairs if p.ok and s.ok and p.outputs and s.outputs]
        outputs = agreement_by_output(both_ok, labels=labels)
        result.append(
            {
                "primary": primary_version,
                "shadow": shadow_version,
                "pairs": len(pairs),
                "compared": len(both_ok),
                "shadow_failed_only": sum(1 for p, s in pairs if p.ok and not s.ok),
                "agreement": headline(outputs),
                "outputs": outputs,
                "timeline": _timeline(both_ok, labels=labels),
            }
        )
    return result


def agreement_by_output(
    pairs: Sequence[tuple[CaptureRecord, CaptureRecord]], *, labels: Sequence[str] | None
) -> list[dict[str, Any]]:
    per_output: dict[str, dict[str, Any]] = {}
    for primary, shadow in pairs:
        theirs = {t["name"]: t for t in shadow.outputs or ()}
        for mine in primary.outputs or ():
            other = theirs.get(mine["name"])
            if other is None or other.get("shape") != mine.get("shape"):
                continue
            measure = _measure(mine, labels=labels)
            entry = per_output.setdefault(
                mine["name"], {"output": mine["name"], "measure": measure, "values": []}
            )
            entry["values"].extend(_compare_rows(measure, mine, other))
    result = []
    for entry in per_output.values():
        values = entry.pop("values")
        if not values:
            continue
        entry["rows"] = len(values)
        if entry["measure"] in ("argmax", "exact"):
            entry["agreement"] = round(sum(values) / len(values), 4)
        elif entry["measure"] == "cosine":
            entry["mean"] = round(sum(values) / len(values), 6)
            entry["min"] = round(min(values), 6)
        else:
            entry["max"] = _round(max(values), 6)
            entry["mean"] = _round(sum(values) / len(values), 6)
        result.append(entry)
    return result


def _measure(tensor: Mapping[str, Any], *, labels: Sequence[str] | None) -> str:
    if tensor.get("datatype") not in ("FP16", "FP32", "FP64"):
        return "exact"
    shape = tensor.get("shape") or []
    width = shape[-1] if len(shape) >= 2 else 1
    if width <= 1:
        return "max_abs_diff"
    if labels is not None and width == len(labels):
        return "argmax"
    return "cosine"


def _rows(tensor: Mapping[str, Any]) -> list[list[Any]]:
    data = list(tensor.get("data") or [])
    shape = tensor.get("shape") or []
    rows = shape[0] if len(shape) >= 2 and shape[0] > 0 else 1
    width = len(data) // rows if rows else len(data)
    return [data[i * width : (i + 1) * width] for i in range(rows)] if width else []


def _compare_rows(measure: str, mine: Mapping[str, Any], other: Mapping[str, Any]) -> list[float]:
    out: list[float] = []
    for a, b in zip(_rows(mine), _rows(other), strict=False):
        if measure == "exact":
            out.extend(float(x == y) for x, y in zip(a, b, strict=False))
            continue
        fa, fb = _floats(a), _floats(b)
        if fa is None or fb is None or not fa:
            continue
        if measure == "argmax":
            out.append(float(fa.index(max(fa)) == fb.index(max(fb))))
        elif measure == "cosine":
            na = math.sqrt(sum(x * x for x in fa))
            nb = math.sqrt(sum(x * x for x in fb))
            if na and nb:
                out.append(sum(x * y for x, y in zip(fa, fb, strict=False)) / (na * nb))
        else:
            out.append(max(abs(x - y) for x, y in zip(fa, fb, strict=False)))
    return out


def _floats(values: Sequence[Any]) -> list[float] | None:
    try:
        result = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return result if all(math.isfinite(v) for v in result) else None


def headline(outputs: Sequence[Mapping[str, Any]]) -> float | None:
    for measure in ("argmax", "exact"):
        for entry in outputs:
            if entry["measure"] == measure:
                return float(entry["agreement"])
    for entry in outputs:
        if entry["measure"] == "cosine":
            return float(entry["mean"])
    return None


def _timeline(
    pairs: Sequence[tuple[CaptureRecord, CaptureRecord]], *, labels: Sequence[str] | None
) -> list[dict[str, Any]]:
    """The headline agreement over time, in up to ``TIMELINE_BUCKETS`` equal slices of the
    pairs (by arrival), each labelled with its first and last time."""
    if not pairs:
        return []
    ordered = sorted(pairs, key=lambda pair: pair[0].at)
    size = max(1, math.ceil(len(ordered) / TIMELINE_BUCKETS))
    timeline = []
    for start in range(0, len(ordered), size):
        chunk = ordered[start : start + size]
        value = headline(agreement_by_output(chunk, labels=labels))
        timeline.append(
            {"from": chunk[0][0].at, "to": chunk[-1][0].at, "pairs": len(chunk), "agreement": value}
        )
    return timeline


def histogram(values: Sequence[float], *, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """Equal-width bins from the smallest to the largest value (the p99.9 caps the top so that
    one straggler does not squash the rest into one bar; larger values count in the last)."""
    if not values:
        return {"edges": [], "counts": []}
    low = min(values)
    high = percentile(values, 99.9) or low
    if high <= low:
        high = low + 1e-3
    width = (high - low) / bins
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, int((value - low) / width))] += 1
    return {"edges": [round(low + i * width, 4) for i in range(bins + 1)], "counts": counts}


def _count(codes: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for code in codes:
        counts[code] = counts.get(code, 0) + 1
    return counts


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
