"""Replaying captured requests against any version through batch scoring.

The captured primary requests become one batch input file (JSON Lines, one Open Inference
Protocol request per sample: a captured request of n rows is n lines, with ids
``{request_id}#{row}``); batch scoring scores it with the version asked for (its usual
retries, error file and job record); the results are then paired with what the primary
answered at the time, row by row, and measured like a shadow (``compare``). Requests whose
inputs were hashed or dropped (sensitive, per the manifest) cannot be replayed and are
counted as such.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from functions.core.capture.compare import agreement_by_output, headline
from functions.core.capture.records import PRIMARY, REPLAY, CaptureRecord


@dataclass
class ReplayInput:
    """The batch input built from captures, and what the primary answered per line id."""

    lines: list[bytes] = field(default_factory=list)
    primary: dict[str, CaptureRecord] = field(default_factory=dict)
    models: set[str] = field(default_factory=set)
    skipped_redacted: int = 0
    skipped_failed: int = 0

    @property
    def body(self) -> bytes:
        return b"".join(self.lines)


def build_replay_input(records: Iterable[CaptureRecord]) -> ReplayInput:
    built = ReplayInput()
    for record in records:
        if record.role != PRIMARY:
            continue
        built.models.add(record.model)
        if record.redacted is not None or not record.inputs:
            built.skipped_redacted += 1
            continue
        if not record.ok or not record.outputs:
            built.skipped_failed += 1
            continue
        rows = _rows_of(record.inputs)
        outputs = _rows_of(record.outputs)
        if rows is None or outputs is None or len(outputs) != len(rows):
            built.skipped_failed += 1
            continue
        for index, (inputs, answered) in enumerate(zip(rows, outputs, strict=True)):
            line_id = f"{record.request_id}#{index}"
            built.lines.append(
                json.dumps({"id": line_id, "inputs": inputs}, separators=(",", ":")).encode()
                + b"\n"
            )
            built.primary[line_id] = CaptureRecord(
                request_id=line_id,
                at=record.at,
                model=record.model,
                alias=record.alias,
                version=record.version,
                role=PRIMARY,
                status=record.status,
                latency_ms=record.latency_ms,
                outputs=answered,
            )
    return built


def _rows_of(tensors: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]] | None:
    """Per row (axis 0), the tensors of that row with a batch axis of 1."""
    counts = {t["shape"][0] for t in tensors if t.get("shape")}
    if len(counts) != 1:
        return None
    (count,) = counts
    if count <= 0:
        return None
    rows: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    for tensor in tensors:
        data, shape = tensor.get("data"), tensor["shape"]
        if not isinstance(data, list) or len(data) != math.prod(shape):
            return None
        step = len(data) // count
        for index in range(count):
            rows[index].append(
                {
                    "name": tensor["name"],
                    "datatype": tensor["datatype"],
                    "shape": [1, *shape[1:]],
                    "data": data[index * step : (index + 1) * step],
                }
            )
    return rows


def replay_report(
    *,
    built: ReplayInput,
    results: Iterator[bytes],
    version: int,
    labels: Sequence[str] | None,
) -> dict[str, Any]:
    """Pair batch results (``{"record", "id", "outputs"}`` lines) with the primary answers."""
    pairs = []
    for line in results:
        if not line.strip():
            continue
        result = json.loads(line)
        primary = built.primary.get(str(result.get("id")))
        if primary is None:
            continue
        replayed = CaptureRecord(
            request_id=primary.request_id,
            at=primary.at,
            model=primary.model,
            alias=primary.alias,
            version=version,
            role=REPLAY,
            status=200,
            latency_ms=0.0,
            outputs=result.get("outputs"),
        )
        pairs.append((primary, replayed))
    outputs = agreement_by_output(pairs, labels=labels)
    primaries = sorted({p.version for p, _ in pairs})
    return {
        "version": version,
        "against": primaries,
        "lines": len(built.lines),
        "scored": len(pairs),
        "not_scored": len(built.lines) - len(pairs),
        "skipped_redacted": built.skipped_redacted,
        "skipped_failed": built.skipped_failed,
        "agreement": headline(outputs),
        "outputs": outputs,
    }
