"""Running one batch job in slices that fit a Lambda invocation.

Large files. A Lambda invocation ends after at most 15 minutes. Before each slice of work the
job estimates whether the rest of the file fits in the time left (the object's size over a
conservative rate, then the rate measured on this file). If it fits, results stream straight
to the final objects: the usual case pays nothing extra. If not, the slice writes to numbered
segments under ``outputs/.parts/{job_id}/`` and, when only ``batch_time_margin_seconds`` are
left, commits them, checkpoints (byte offset, line, counts) on the job, and the function
invokes itself asynchronously with a continuation event; the last slice copies the segments
into the final objects ahead of its own results. Should a slice writing the final objects run
short anyway (a slow endpoint), it aborts them and the next slice redoes that part into
segments. A job gets at most ``batch_max_slices`` invocations. Every slice reads the input at
the version id the job recorded (the notification's ``versionId``), so a new upload of the key
while the job runs does not change what the job reads; on an unversioned bucket (no version
id) a later slice reads the key as it is then, which is one reason the stack's data bucket is
versioned. Locally the directory store has no versions: replace a file only once its job ended.

This was chosen over handing big files to SageMaker batch transform or asynchronous
inference because those need a second deployment of every model (a transform job's model, or
an async endpoint) and a different I/O contract for the container, and their results would
not be the per-record lines and error file a job promises; continuing in Lambda keeps one
code path (the same validation, runtime client and endpoint as the router) for any size.
Locally there is no deadline, so a file is always one slice.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, BinaryIO

from aws_lambda_powertools import Logger

from functions.batch.batching import MicroBatch
from functions.batch.deps import BatchDeps
from functions.batch.events import InputTarget, ObjectRef, continuation_event
from functions.batch.formats import (
    InputFormat,
    format_from_name,
    is_gzip,
    make_parser,
    sniff_format,
)
from functions.batch.leases import (
    FAILED,
    LEASE_SLACK_SECONDS,
    PARTIAL,
    SUCCEEDED,
    UNBOUNDED_LEASE_SECONDS,
    Progress,
    save,
    terminal,
    zero_checkpoint,
)
from functions.batch.lines import Line, LineReader
from functions.batch.outcome import Outcome
from functions.batch.results import (
    PARTS_PREFIX,
    SliceEnd,
    SliceFailed,
    SliceState,
    Writers,
    result_keys,
)
from functions.batch.samples import RecordParser
from functions.batch.scoring import Deadline, Scorer
from functions.core import progress
from functions.core.artifacts.exceptions import ObjectNotFound
from functions.core.clock import utc_now
from functions.core.exceptions import InvalidRequest
from functions.core.oip import Signature
from functions.core.registry.base import Job, ModelVersion

logger = Logger(service="modelway-batch", child=True)

# Progress is written to the registry at most this often (and at every slice's end).
HEARTBEAT_SECONDS = 5.0
# A gzip file's size says little of its content; assume this ratio to plan slices.
_GZIP_RATIO = 4


class _Fatal(Exception):
    """The file cannot be scored at all (format, header, gone): fail for good."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class JobRun:
    deps: BatchDeps
    ref: ObjectRef
    target: InputTarget
    job: Job
    version: ModelVersion
    signature: Signature
    deadline: Deadline
    # Hands an event to a fresh invocation (or, locally, runs it here); False if that run
    # failed retryably. The dispatcher passes it in: it is the one that handles events.
    continue_with: Callable[[dict[str, Any]], bool]
    scorer: Scorer = field(init=False)
    _last_beat: float = 0.0

    def __post_init__(self) -> None:
        settings = self.deps.settings
        # Counters carried over from earlier invocations of the same job.
        self._base_requests = int(self.job.extra.get("requests", 0))
        self._base_retries = int(self.job.extra.get("retries", 0))
        self.scorer = Scorer(
            runtime=self.deps.runtime,
            endpoint=self.version.endpoint_name,
            variant=self.version.variant_name,
            deadline=self.deadline,
            max_attempts=settings.batch_max_attempts,
            backoff_base=settings.batch_backoff_base_seconds,
            backoff_max=settings.batch_backoff_max_seconds,
            sleep=self.deps.sleep,
        )
        self.results_key, self.errors_key = result_keys(
            model=self.version.model,
            version=self.version.version,
            job_id=self.job.job_id,
            name=self.target.name,
        )

    # Slices ---------------------------------------------------------------------------
    def run(self) -> Outcome:
        settings = self.deps.settings
        ran_here = 0
        while True:
            slices = int(self.job.extra.get("slices", 0))
            if slices >= settings.batch_max_slices:
                return self._finish_failed(
                    f"the file needs more than {settings.batch_max_slices} invocations; "
                    "split it into smaller files",
                    retryable=False,
                )
            if ran_here > 0 and self.deadline.expired():
                return self._hand_on()
            ran_here += 1
            checkpoint = Progress(**self.job.extra.get("checkpoint", zero_checkpoint()))
            final = self._fits(checkpoint)
            self.job = replace(self.job, extra={**self.job.extra, "slices": slices + 1})
            started = self.deps.now()
            try:
                done, reached = self._run_slice(checkpoint=checkpoint, final=final)
            except _Fatal as exc:
                return self._finish_failed(exc.reason, retryable=False)
            except SliceFailed as exc:
                return self._finish_failed(
                    exc.reason, retryable=True, first_unscored=exc.first_record, reached=exc.reached
                )
            self._measure(checkpoint, reached, self.deps.now() - started)
            if done and final:
                return self._finish(reached)
            if not final:
                self._checkpoint(reached)
            if not done and (self.deps.continue_later is not None or self.deadline.bounded):
                return self._hand_on()
            # Local (no deadline) or a segment slice that reached the end: go straight on.

    def _fits(self, checkpoint: Progress) -> bool:
        """Whether the rest of the file can be scored in this invocation (the estimate)."""
        left = self.deadline.seconds_left()
        if left is None or self.ref.size is None:
            return True
        size = self.ref.size * (_GZIP_RATIO if is_gzip(self.target.name) else 1)
        remaining = max(0, size - checkpoint.offset)
        rate = float(
            self.job.extra.get("measured_bytes_per_second")
            or self.deps.settings.batch_estimated_bytes_per_second
        )
        return remaining <= max(0.0, left) * rate

    def _measure(self, start: Progress, reached: Progress, seconds: float) -> None:
        scanned = reached.offset - start.offset
        if scanned > 0 and seconds > 0:
            # Keep a fifth back: the rate varies along a file and with the endpoint's load.
            rate = 0.8 * scanned / seconds
            self.job = replace(
                self.job, extra={**self.job.extra, "measured_bytes_per_second": int(rate)}
            )

    def _checkpoint(self, reached: Progress) -> None:
        self.job = self._save_progress(reached, extra={"checkpoint": reached.to_dict()})

    def _hand_on(self) -> Outcome:
        slices = int(self.job.extra.get("slices", 0))
        self.job = save(
            self.deps,
            replace(
                self.job,
                extra={
                    **self.job.extra,
                    "next_slice": slices,
                    "lease_until": self.deps.now() + UNBOUNDED_LEASE_SECONDS,
                },
            ),
        )
        event = continuation_event(ref=self.ref, job_id=self.job.job_id, slice_index=slices)
        logger.info("continuing in a new invocation", extra={"job_id": self.job.job_id})
        succeeded = self.continue_with(event)
        return Outcome(job_id=self.job.job_id, action="continued", retryable=not succeeded)

    # One slice ------------------------------------------------------------------------
    def _run_slice(self, *, checkpoint: Progress, final: bool) -> tuple[bool, Progress]:
        """Score from ``checkpoint`` until the end (True) or the deadline (False); returns
        how far everything is written. Writers are committed or aborted before it returns."""
        store = self.deps.store
        if final:
            writers = Writers(
                store.open_writer(key=self.results_key), store.open_writer(key=self.errors_key)
            )
        else:
            part = f"{PARTS_PREFIX}{self.job.job_id}/{checkpoint.segments:05d}"
            writers = Writers(
                store.open_writer(key=f"{part}.jsonl"),
                store.open_writer(key=f"{part}.errors.jsonl"),
            )
        try:
            if final:
                self._copy_segments(checkpoint.segments, writers)
            reached, done = self._score_lines(checkpoint=checkpoint, writers=writers)
        except BaseException:
            writers.abort()
            raise
        if final and not done:
            # Out of time with the final objects half-written: drop them; the next slice
            # starts again from the checkpoint (which stays), into segments.
            writers.abort()
            return False, reached
        if final:
            self.job = replace(
                self.job,
                output_uri=writers.results.commit(),
                errors_uri=writers.errors.commit(),
            )
            return True, reached
        if reached.offset > checkpoint.offset or done:
            writers.results.commit()
            writers.errors.commit()
            reached = replace(reached, segments=checkpoint.segments + 1)
        else:
            writers.abort()
        return done, reached

    def _copy_segments(self, count: int, writers: Writers) -> None:
        for index in range(count):
            part = f"{PARTS_PREFIX}{self.job.job_id}/{index:05d}"
            for suffix, writer in ((".jsonl", writers.results), (".errors.jsonl", writers.errors)):
                stream = self.deps.store.open_object(key=part + suffix)
                try:
                    while chunk := stream.read(1 << 20):
                        writer.write(chunk)
                finally:
                    stream.close()

    def _open_input(self) -> BinaryIO:
        # Every slice reads the upload the job was created for, never a later one of the key.
        recorded = self.job.extra.get("input") or {}
        version_id = recorded.get("version_id") or self.ref.version_id
        try:
            stream = self.deps.store.open_object(key=self.ref.key, version_id=version_id)
        except ObjectNotFound:
            raise _Fatal(f"the input object {self.ref.key!r} no longer exists") from None
        if is_gzip(self.target.name):
            return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
        return stream

    def _score_lines(self, *, checkpoint: Progress, writers: Writers) -> tuple[Progress, bool]:
        settings = self.deps.settings
        stream = self._open_input()
        try:
            reader = LineReader(stream, max_line_bytes=settings.max_payload_bytes)
            lines, parser, header_lines = self._prepare(reader)
            if checkpoint.offset > 0:
                # Resuming: whatever _prepare read (a sniffed line) lies before the checkpoint.
                reader.skip_to(offset=checkpoint.offset, line_number=checkpoint.line)
                lines = iter(reader)
            state = SliceState(
                run=self,
                writers=writers,
                reached=replace(checkpoint),
                batch=MicroBatch(
                    signature=self.signature,
                    max_bytes=settings.max_payload_bytes,
                    max_records=settings.batch_max_records_per_request,
                ),
            )
            try:
                for line in lines:
                    state.take(line, parser=parser, record=line.number - header_lines)
                state.flush(offset=reader.offset, line=reader.line_number)
            except SliceEnd:
                return state.reached, False
            return state.reached, True
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            # The content is broken (truncated or corrupt gzip): the same every time. Other
            # OSErrors (a read timing out or a connection reset mid-object) are the store's
            # and may pass on another delivery, so they are left to fail the job retryably.
            raise _Fatal(f"the input could not be read: {exc}") from None
        finally:
            stream.close()

    def _prepare(self, reader: LineReader) -> tuple[Iterator[Line], RecordParser, int]:
        """The format, its parser, and the lines to score (a sniffed line is replayed)."""
        fmt = format_from_name(self.target.name)
        lines: Iterator[Line] = iter(reader)
        replay: list[Line] = []
        if fmt is None or fmt is InputFormat.CSV:
            first = next((ln for ln in lines if ln.data is None or ln.data.strip()), None)
            if first is None:
                return iter(()), make_parser(InputFormat.JSONL, signature=self.signature), 0
            if first.data is None:
                raise _Fatal("the first line is longer than the payload limit")
            try:
                fmt = fmt or sniff_format(first.data)
                if fmt is InputFormat.CSV:
                    parser = make_parser(fmt, signature=self.signature, header=first.data)
                    self.job = replace(self.job, extra={**self.job.extra, "format": fmt.value})
                    return lines, parser, first.number
            except InvalidRequest as exc:
                raise _Fatal(exc.message) from None
            except csv.Error as exc:  # a header field over the csv module's limit, a NUL
                raise _Fatal(f"the CSV header cannot be read: {exc}") from None
            replay = [first]
        self.job = replace(self.job, extra={**self.job.extra, "format": fmt.value})
        parser = make_parser(fmt, signature=self.signature)
        return _chain(replay, lines), parser, 0

    # Bookkeeping ----------------------------------------------------------------------
    def _save_progress(self, reached: Progress, *, extra: dict[str, Any] | None = None) -> Job:
        left = self.deadline.seconds_left()
        lease = left + self.deadline.margin_seconds if left is not None else UNBOUNDED_LEASE_SECONDS
        job = replace(
            self.job,
            records=reached.records,
            ok=reached.ok,
            errors=reached.errors,
            extra={
                **self.job.extra,
                **(extra or {}),
                "lease_until": self.deps.now() + lease + LEASE_SLACK_SECONDS,
                "requests": self._base_requests + self.scorer.requests,
            },
        )
        self._last_beat = self.deps.now()
        return save(self.deps, job)

    def heartbeat(self, reached: Progress) -> None:
        progress.report(
            "scoring",
            done=reached.offset,
            # Bytes of the input read; a gzip input's size is not what it decompresses to.
            total=None if is_gzip(self.target.name) else self.ref.size,
            detail=f"{reached.records} records, {reached.errors} refused",
        )
        if self.deps.now() - self._last_beat >= HEARTBEAT_SECONDS:
            self.job = self._save_progress(reached)

    def _finish(self, reached: Progress) -> Outcome:
        job = replace(self.job, records=reached.records, ok=reached.ok, errors=reached.errors)
        if reached.errors == 0:
            job = terminal(job, SUCCEEDED)
        elif reached.ok == 0:
            job = terminal(
                job,
                FAILED,
                reason=f"none of the {reached.records} records is valid; see the errors file",
            )
        else:
            job = terminal(
                job,
                PARTIAL,
                reason=f"{reached.errors} of {reached.records} records are "
                "invalid; see the errors file",
            )
        self.job = save(self.deps, self._timed(job))
        logger.info("job done", extra={"job_id": job.job_id, "status": job.status})
        return Outcome(job_id=job.job_id, action="finished")

    def _finish_failed(
        self,
        reason: str,
        *,
        retryable: bool,
        first_unscored: int | None = None,
        reached: Progress | None = None,
    ) -> Outcome:
        job = self.job
        if reached is not None:
            job = replace(job, records=reached.records, ok=reached.ok, errors=reached.errors)
        job = terminal(job, FAILED, reason=reason, retryable=retryable)
        if first_unscored is not None:
            job = replace(job, extra={**job.extra, "first_unscored_record": first_unscored})
        self.job = save(self.deps, self._timed(job))
        logger.warning("job failed", extra={"job_id": job.job_id, "reason": reason})
        return Outcome(job_id=job.job_id, action="finished", retryable=retryable)

    def _timed(self, job: Job) -> Job:
        finished = utc_now()
        extra = {
            **job.extra,
            "finished_at": finished,
            "requests": self._base_requests + self.scorer.requests,
            "retries": self._base_retries + self.scorer.retries,
        }
        extra["duration_seconds"] = _seconds_between(str(extra.get("started_at")), finished)
        return replace(job, extra=extra)


def _chain(first: list[Line], rest: Iterator[Line]) -> Iterator[Line]:
    yield from first
    yield from rest


def _seconds_between(start: str, end: str) -> float | None:
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((b - a).total_seconds(), 3)
