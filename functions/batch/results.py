"""Where a job's results go and how they are written.

Results. ``outputs/{model}/{version}/{job_id}/{stem}.jsonl`` holds one line per valid record,
in input order: ``{"record": n, "id": …, "outputs": [one-sample output tensors]}``; beside it
``{stem}.errors.jsonl`` holds ``{"record": n, "error": reason, "code": code}`` per bad record.
Both are written through ``store.open_writer`` (multipart on S3) and published with
``commit`` only once the whole input was read and every valid record scored; both are always
published together (the error file possibly empty), so that a result never sits beside the
error file of an older upload. When scoring stops (the endpoint keeps failing), both writers
are aborted: nothing half-written ever appears under the result's name, and the job says how
far it got (counts, the first record not scored) and why. The job id in the key keeps every
job's results its own: ``a.jsonl`` and ``a.csv``, one file sent to an alias and to a version,
or a new upload of a key, never share a result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from functions.batch.batching import MicroBatch
from functions.batch.events import OUTPUTS_PREFIX
from functions.batch.formats import output_stem
from functions.batch.leases import Progress
from functions.batch.lines import Line
from functions.batch.samples import RecordParser
from functions.batch.scoring import EndpointFailed, OutOfTime, Refused
from functions.core.artifacts.base import ObjectWriter
from functions.core.exceptions import InvalidInput, InvalidRequest, PayloadTooLarge, UpstreamError

if TYPE_CHECKING:
    from functions.batch.slices import JobRun

logger = Logger(service="modelway-batch", child=True)

PARTS_PREFIX = f"{OUTPUTS_PREFIX}.parts/"
# Bad records kept in memory before they are written out (a file of only bad lines).
_ERRORS_BUFFER = 1000


def result_keys(*, model: str, version: int, job_id: str, name: str) -> tuple[str, str]:
    """Where a job's results and its error file go: under the job's own id, so two jobs never
    share a result (``a.jsonl`` and ``a.csv``; one file sent to an alias and to a version; a
    new upload of a key while the old job's results are still read)."""
    base = f"{OUTPUTS_PREFIX}{model}/{version}/{job_id}/{output_stem(name)}"
    return f"{base}.jsonl", f"{base}.errors.jsonl"


class SliceEnd(Exception):
    """Stop the slice at the last written point (out of time)."""


class SliceFailed(Exception):
    """The endpoint kept failing: the job fails, with how far it got."""

    def __init__(self, reason: str, *, first_record: int, reached: Progress) -> None:
        super().__init__(reason)
        self.reason = reason
        self.first_record = first_record
        self.reached = reached


@dataclass
class Writers:
    results: ObjectWriter
    errors: ObjectWriter

    def abort(self) -> None:
        for writer in (self.results, self.errors):
            try:
                writer.abort()
            except Exception:
                logger.exception("could not abort a writer")


@dataclass
class SliceState:
    """Lines → micro-batches → written results, tracking the last fully written point."""

    run: JobRun
    writers: Writers
    reached: Progress
    batch: MicroBatch
    pending_errors: list[tuple[int, str, str]] = field(default_factory=list)
    pending_records: int = 0
    last_end: int | None = None

    def take(self, line: Line, *, parser: RecordParser, record: int) -> None:
        start = self.last_end if self.last_end is not None else self.reached.offset
        self.last_end = line.end
        if line.data is None:
            self._bad(record, "the record is longer than the payload limit", "payload_too_large")
        elif line.data.strip():
            try:
                sample = parser.parse(line.data, record=record)
            except (InvalidInput, InvalidRequest, PayloadTooLarge) as exc:
                self._bad(record, exc.message, exc.code)
            else:
                self._add(sample, boundary=(start, line.number - 1))
        if len(self.pending_errors) >= _ERRORS_BUFFER:
            self.flush(offset=line.end, line=line.number)

    def _bad(self, record: int, reason: str, code: str) -> None:
        self.pending_errors.append((record, reason, code))
        self.pending_records += 1

    def _add(self, sample: Any, *, boundary: tuple[int, int]) -> None:
        try:
            if not self.batch.try_add(sample):
                # Full: send what is there; everything before this line is then written.
                self.flush(offset=boundary[0], line=boundary[1])
                self.batch.try_add(sample)
        except PayloadTooLarge as exc:
            self._bad(sample.record, exc.message, exc.code)
            return
        self.pending_records += 1

    def flush(self, *, offset: int, line: int) -> None:
        """Score the batch and write it with the pending bad records; ``offset``/``line`` is
        the point in the input up to which everything is then written."""
        results: list[Any] = []
        if len(self.batch):
            if self.run.deadline.expired():
                raise SliceEnd()
            try:
                results = self.run.scorer.score(self.batch)
            except OutOfTime:
                raise SliceEnd() from None
            except (EndpointFailed, UpstreamError) as exc:
                first = self.batch.samples[0].record
                last = self.batch.samples[-1].record
                raise SliceFailed(
                    f"{exc.message} (scoring records {first}-{last})",
                    first_record=first,
                    reached=self.reached,
                ) from None
        errors = sorted(
            self.pending_errors
            + [(r.record, r.reason, r.code) for r in results if isinstance(r, Refused)]
        )
        scored = [r for r in results if not isinstance(r, Refused)]
        if scored:
            self.writers.results.write(
                "".join(
                    _json_line(
                        {
                            "record": r.record,
                            **({"id": r.id} if r.id is not None else {}),
                            "outputs": r.outputs,
                        }
                    )
                    for r in scored
                ).encode()
            )
        if errors:
            self.writers.errors.write(
                "".join(
                    _json_line({"record": rec, "error": reason, "code": code})
                    for rec, reason, code in errors
                ).encode()
            )
        self.reached = replace(
            self.reached,
            offset=offset,
            line=line,
            records=self.reached.records + self.pending_records,
            ok=self.reached.ok + len(scored),
            errors=self.reached.errors + len(errors),
        )
        self.batch.clear()
        self.pending_errors = []
        self.pending_records = 0
        self.run.heartbeat(self.reached)


def _json_line(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":")) + "\n"
