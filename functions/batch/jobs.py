"""One batch job per input object version: idempotency, lifecycle, results, and files that
outlast one Lambda invocation.

Lifecycle. ``running`` → ``succeeded`` (every record scored), ``partial`` (some records bad:
they are in the error file, the rest scored) or ``failed`` (no usable result: the endpoint kept
failing, the file's format or header is unknown, the key names no model/version, or no record
is valid). A failure says whether another delivery may fix it (``retryable``: the endpoint, the
store, the registry) or not (anything about the object itself: its key, format, header,
encoding or compression); only the first kind is retried by Lambda (then dead-lettered).
The job records counts (records read, ok, errors), timings and output locations.

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

Idempotency. S3 delivers at least once. The job id is derived from (bucket, key, version id —
or ETag and sequencer on an unversioned bucket), and ``registry.create_job`` is a conditional
write, so a second delivery finds the job instead of creating one. It then does nothing when
the job succeeded, is partial, failed for a reason a retry cannot fix, or is running under a
live lease; it resumes the job when it failed for a reason a retry can fix (the endpoint) or
its runner died (a ``running`` job whose lease, the runner's Lambda deadline, has passed). So
one object version gives one job and one result, however often it is delivered; a new upload
of the key is a new version and a new job.

Ownership. Several deliveries may find the same resumable job at once (S3 redelivering while
Lambda retries the event; a replayed continuation). Taking a job over is a compare-and-set on
its ``updated_at`` (``registry.update_job(expected_updated_at=…)``): of the deliveries that read
the same state exactly one write lands, the others get ``JobChanged`` and skip. The runner
keeps conditioning every later write of the job on the stamp it last wrote, and every write
stamps a strictly later ``updated_at``; so a runner whose lease ran out while it was still
alive learns at its next write that the job was taken over and stops (its open result writers
are aborted) instead of writing over the new runner's progress.

Canary aliases. A file sent to an alias is scored whole by the alias's main version: a canary
split per record would mix two models' outputs in one result file with nothing to tell them
apart, and the output path names one version. The version is pinned on the job when first
resolved, so a job resumed after the alias moved keeps scoring with the same version.

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
import json
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from aws_lambda_powertools import Logger

from functions.batch.batching import MicroBatch
from functions.batch.events import (
    OUTPUTS_PREFIX,
    InputTarget,
    InvalidInputKey,
    ObjectRef,
    continuation_event,
    is_continuation,
    job_id_for,
    parse_input_key,
    parse_notification,
    remaining_records_event,
)
from functions.batch.formats import (
    InputFormat,
    Line,
    LineReader,
    RecordParser,
    format_from_name,
    is_gzip,
    make_parser,
    output_stem,
    sniff_format,
)
from functions.batch.scoring import Deadline, EndpointFailed, OutOfTime, Refused, Scorer
from functions.core import progress
from functions.core.artifacts.base import ArtifactStore, ObjectWriter
from functions.core.artifacts.exceptions import ObjectNotFound
from functions.core.clock import utc_now
from functions.core.errors import (
    InvalidInput,
    InvalidRequest,
    ModelwayError,
    NotFound,
    PayloadTooLarge,
    UpstreamError,
    UpstreamUnavailable,
)
from functions.core.oip import Signature
from functions.core.registry.base import Job, ModelVersion, Registry
from functions.core.registry.exceptions import JobChanged, JobNotFound
from functions.core.runtime.base import RuntimeClient
from functions.core.settings import Settings

logger = Logger(service="modelway-batch", child=True)

RUNNING, SUCCEEDED, PARTIAL, FAILED = "running", "succeeded", "partial", "failed"
PARTS_PREFIX = f"{OUTPUTS_PREFIX}.parts/"
# How long a runner without a deadline (locally), or a job handed to a continuation, holds
# the job before another delivery may take it over.
UNBOUNDED_LEASE_SECONDS = 900.0
# Extra seconds on a lease: clocks of two invocations may differ a little.
LEASE_SLACK_SECONDS = 30.0
# Progress is written to the registry at most this often (and at every slice's end).
HEARTBEAT_SECONDS = 5.0
# Bad records kept in memory before they are written out (a file of only bad lines).
_ERRORS_BUFFER = 1000
# A gzip file's size says little of its content; assume this ratio to plan slices.
_GZIP_RATIO = 4


@dataclass
class BatchDeps:
    settings: Settings
    registry: Registry
    store: ArtifactStore
    runtime: RuntimeClient
    sleep: Callable[[float], None] = time.sleep
    # Sends an event to a fresh invocation of this function (async). None: go on in-process,
    # without a deadline (the local stack).
    continue_later: Callable[[dict[str, Any]], None] | None = None
    now: Callable[[], float] = time.time


class RetryableBatchFailure(UpstreamUnavailable):
    """Raised after an event's objects were all handled when some job failed in a way a later
    delivery may fix: Lambda then retries the event (and finally sends it to the dead-letter
    destination); the jobs that finished are not redone."""

    code = "batch_job_failed"


@dataclass
class Outcome:
    job_id: str | None
    action: str  # "finished" | "continued" | "duplicate" | "ignored"
    retryable: bool = False
    note: str | None = None


def handle_event(*, event: dict[str, Any], context: Any, deps: BatchDeps) -> dict[str, Any]:
    """Score every object an S3 notification (or a continuation event) names."""
    deadline = Deadline(context=context, margin_seconds=deps.settings.batch_time_margin_seconds)
    outcomes: list[Outcome] = []
    if is_continuation(event):
        ref = ObjectRef.from_dict(event["object"])
        outcomes.append(_guarded(ref, deps, deadline, slice_index=int(event.get("slice", 0))))
    else:
        refs = parse_notification(event)
        for index, ref in enumerate(refs):
            if index > 0 and deadline.expired():
                rest = remaining_records_event(event, refs=refs[index:])
                logger.info("handing on unprocessed records", extra={"records": len(refs) - index})
                if not _continue(deps, rest):
                    outcomes.append(Outcome(job_id=None, action="continued", retryable=True))
                break
            outcomes.append(_guarded(ref, deps, deadline, slice_index=None))
    summary = {"jobs": [_summary(deps.registry, o) for o in outcomes]}
    failed = [o for o in outcomes if o.retryable]
    if failed:
        raise RetryableBatchFailure(
            f"{len(failed)} batch job(s) failed and may succeed on another delivery: "
            + ", ".join(str(o.job_id) for o in failed)
        )
    return summary


def _guarded(
    ref: ObjectRef, deps: BatchDeps, deadline: Deadline, *, slice_index: int | None
) -> Outcome:
    """One object; an unexpected failure fails its job (retryably) instead of the event."""
    job_id = job_id_for(ref)
    try:
        return process_object(ref=ref, deps=deps, deadline=deadline, slice_index=slice_index)
    except JobChanged:
        # Another delivery took the job over (this runner's lease had run out): it owns the
        # job now; whatever this one had written but not published was aborted on the way.
        logger.warning("the job was taken over; stopping", extra={"job_id": job_id})
        return Outcome(job_id=job_id, action="duplicate", note="taken over by another delivery")
    except Exception as exc:
        retryable = _retryable(exc)
        logger.exception(
            "batch job crashed", extra={"job_id": job_id, "key": ref.key, "retryable": retryable}
        )
        reason = exc.message if isinstance(exc, ModelwayError) else f"internal error: {exc}"
        try:
            job = deps.registry.get_job(job_id=job_id)
            _save(deps, _terminal(job, FAILED, reason=reason, retryable=retryable))
        except Exception:
            logger.exception("could not record the failure", extra={"job_id": job_id})
        return Outcome(job_id=job_id, action="finished", retryable=retryable)


def _retryable(exc: Exception) -> bool:
    """Whether another delivery of the same object could end differently.

    The expected outcomes are classified where they happen (a bad record goes to the error
    file, an unreadable format or header fails the job for good, an endpoint that keeps
    failing fails it retryably); this is the net for the rest. A request error (4xx) or a
    parse error is a property of the object and fails the same way every time: retrying it
    only walks the event to the dead-letter queue. Anything else (the registry, the store,
    the network, a bug fixed by the next deploy) may pass next time.
    """
    if isinstance(exc, ModelwayError):
        return exc.status >= 500
    return not isinstance(exc, csv.Error | UnicodeError | RecursionError)


def process_object(
    *, ref: ObjectRef, deps: BatchDeps, deadline: Deadline, slice_index: int | None = None
) -> Outcome:
    """Claim the object's job (or find it handled) and run it; ``slice_index`` is set for a
    continuation of a job this function handed on."""
    job_id = job_id_for(ref)
    log_keys = {"job_id": job_id, "key": ref.key}
    try:
        target: InputTarget | None = parse_input_key(ref.key)
        key_error = None
    except InvalidInputKey as exc:
        if exc.model is None:
            logger.warning("ignoring an object outside the inputs layout", extra=log_keys)
            return Outcome(job_id=None, action="ignored", note=exc.message)
        target, key_error = None, exc

    if slice_index is None:
        job = _claim(ref, deps, job_id=job_id, target=target, key_error=key_error)
        if job is None:
            return Outcome(job_id=job_id, action="duplicate")
    else:
        try:
            job = deps.registry.get_job(job_id=job_id)
        except JobNotFound:
            return Outcome(job_id=job_id, action="ignored", note="no such job")
        if job.status != RUNNING or job.extra.get("next_slice") != slice_index:
            logger.info("ignoring a stale continuation", extra=log_keys)
            return Outcome(job_id=job_id, action="duplicate")
        # Lambda may deliver the same continuation twice: exactly one copy claims the slice.
        job = _take_over(deps, replace(job, extra={**job.extra, "next_slice": None}))
        if job is None:
            return Outcome(job_id=job_id, action="duplicate")

    settings = deps.settings
    if key_error is not None or target is None:
        reason = key_error.message if key_error else "invalid key"
        _save(deps, _terminal(job, FAILED, reason=reason))
        return Outcome(job_id=job_id, action="finished")
    if not settings.is_local and ref.bucket != settings.bucket_name:
        reason = (
            f"the object is in bucket {ref.bucket!r}; this function reads {settings.bucket_name!r}"
        )
        _save(deps, _terminal(job, FAILED, reason=reason))
        return Outcome(job_id=job_id, action="finished")

    try:
        version = _resolve(deps.registry, target=target, pinned=job.version)
        signature = Signature.from_dict(version.manifest["signature"])
    except (NotFound, InvalidRequest, KeyError, ValueError) as exc:
        reason = exc.message if isinstance(exc, ModelwayError) else f"bad signature: {exc}"
        _save(deps, _terminal(job, FAILED, reason=reason))
        return Outcome(job_id=job_id, action="finished")
    job = _save(deps, replace(job, version=version.version))
    logger.info("scoring", extra={**log_keys, "model": version.model, "version": version.version})
    run = _JobRun(
        deps=deps,
        ref=ref,
        target=target,
        job=job,
        version=version,
        signature=signature,
        deadline=deadline,
    )
    return run.run()


def _claim(
    ref: ObjectRef,
    deps: BatchDeps,
    *,
    job_id: str,
    target: InputTarget | None,
    key_error: InvalidInputKey | None,
) -> Job | None:
    """Create the job, or take over an existing one that may be retried; None to skip."""
    now = utc_now()
    model = target.model if target else (key_error.model if key_error else None) or "?"
    fresh = Job(
        job_id=job_id,
        model=model,
        target=target.target if target else "?",
        version=target.version if target else None,
        input_uri=_input_uri(deps.store, ref),
        status=RUNNING,
        created_at=now,
        updated_at=now,
        extra={
            "input": ref.to_dict(),
            "started_at": now,
            "attempt": 1,
            "slices": 0,
            "checkpoint": _zero_checkpoint(),
            "lease_until": deps.now() + UNBOUNDED_LEASE_SECONDS,
        },
    )
    job, created = deps.registry.create_job(job=fresh)
    if created:
        return job
    if job.status in (SUCCEEDED, PARTIAL):
        logger.info("already scored", extra={"job_id": job_id, "status": job.status})
        return None
    if job.status == FAILED and not job.extra.get("retryable"):
        logger.info("already failed for good", extra={"job_id": job_id})
        return None
    if job.status == RUNNING and float(job.extra.get("lease_until", 0)) > deps.now():
        logger.info("already running", extra={"job_id": job_id})
        return None
    checkpoint = job.extra.get("checkpoint") or _zero_checkpoint()
    extra = {
        **job.extra,
        "attempt": int(job.extra.get("attempt", 1)) + 1,
        # A new attempt gets the whole slice budget again; it resumes from the checkpoint.
        "slices": 0,
        "lease_until": deps.now() + UNBOUNDED_LEASE_SECONDS,
        "retryable": None,
        "next_slice": None,
    }
    claimed = _take_over(
        deps,
        replace(
            job,
            status=RUNNING,
            reason=None,
            output_uri=None,
            errors_uri=None,
            records=checkpoint["records"],
            ok=checkpoint["ok"],
            errors=checkpoint["errors"],
            extra=extra,
        ),
    )
    if claimed is not None:
        logger.info("resuming", extra={"job_id": job_id, "was": job.status})
    return claimed


def _input_uri(store: ArtifactStore, ref: ObjectRef) -> str:
    # Locally the "bucket" is the data directory: name the file the job really read. A key
    # the store refuses (the job then fails on it) is named as the notification gave it.
    try:
        return store.object_uri(key=ref.key)
    except InvalidRequest:
        return ref.uri


def _take_over(deps: BatchDeps, job: Job) -> Job | None:
    """Write ``job`` if nobody wrote it since it was read (``job.updated_at``); None if another
    delivery got there first."""
    try:
        return _save(deps, job)
    except JobChanged:
        logger.info("another delivery took the job first", extra={"job_id": job.job_id})
        return None


def result_keys(*, model: str, version: int, job_id: str, name: str) -> tuple[str, str]:
    """Where a job's results and its error file go: under the job's own id, so two jobs never
    share a result (``a.jsonl`` and ``a.csv``; one file sent to an alias and to a version; a
    new upload of a key while the old job's results are still read)."""
    base = f"{OUTPUTS_PREFIX}{model}/{version}/{job_id}/{output_stem(name)}"
    return f"{base}.jsonl", f"{base}.errors.jsonl"


def _resolve(registry: Registry, *, target: InputTarget, pinned: int | None) -> ModelVersion:
    number = pinned or target.version
    if number is None:
        assert target.alias is not None
        number = registry.get_alias(model=target.model, alias=target.alias).version
    version = registry.get_version(model=target.model, version=number)
    if version.status != "active":
        raise InvalidRequest(f"{target.model} version {number} is {version.status}")
    return version


@dataclass
class _Progress:
    """A point in the input up to which everything is written: where a slice may stop."""

    offset: int = 0
    line: int = 0
    records: int = 0
    ok: int = 0
    errors: int = 0
    segments: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _zero_checkpoint() -> dict[str, int]:
    return _Progress().to_dict()


class _SliceEnd(Exception):
    """Stop the slice at the last written point (out of time)."""


class _SliceFailed(Exception):
    """The endpoint kept failing: the job fails, with how far it got."""

    def __init__(self, reason: str, *, first_record: int, reached: _Progress) -> None:
        super().__init__(reason)
        self.reason = reason
        self.first_record = first_record
        self.reached = reached


class _Fatal(Exception):
    """The file cannot be scored at all (format, header, gone): fail for good."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Writers:
    results: ObjectWriter
    errors: ObjectWriter

    def abort(self) -> None:
        for writer in (self.results, self.errors):
            try:
                writer.abort()
            except Exception:
                logger.exception("could not abort a writer")


@dataclass
class _JobRun:
    deps: BatchDeps
    ref: ObjectRef
    target: InputTarget
    job: Job
    version: ModelVersion
    signature: Signature
    deadline: Deadline
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
            checkpoint = _Progress(**self.job.extra.get("checkpoint", _zero_checkpoint()))
            final = self._fits(checkpoint)
            self.job = replace(self.job, extra={**self.job.extra, "slices": slices + 1})
            started = self.deps.now()
            try:
                done, reached = self._run_slice(checkpoint=checkpoint, final=final)
            except _Fatal as exc:
                return self._finish_failed(exc.reason, retryable=False)
            except _SliceFailed as exc:
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

    def _fits(self, checkpoint: _Progress) -> bool:
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

    def _measure(self, start: _Progress, reached: _Progress, seconds: float) -> None:
        scanned = reached.offset - start.offset
        if scanned > 0 and seconds > 0:
            # Keep a fifth back: the rate varies along a file and with the endpoint's load.
            rate = 0.8 * scanned / seconds
            self.job = replace(
                self.job, extra={**self.job.extra, "measured_bytes_per_second": int(rate)}
            )

    def _checkpoint(self, reached: _Progress) -> None:
        self.job = self._save_progress(reached, extra={"checkpoint": reached.to_dict()})

    def _hand_on(self) -> Outcome:
        slices = int(self.job.extra.get("slices", 0))
        self.job = _save(
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
        succeeded = _continue(self.deps, event)
        return Outcome(job_id=self.job.job_id, action="continued", retryable=not succeeded)

    # One slice ------------------------------------------------------------------------
    def _run_slice(self, *, checkpoint: _Progress, final: bool) -> tuple[bool, _Progress]:
        """Score from ``checkpoint`` until the end (True) or the deadline (False); returns
        how far everything is written. Writers are committed or aborted before it returns."""
        store = self.deps.store
        if final:
            writers = _Writers(
                store.open_writer(key=self.results_key), store.open_writer(key=self.errors_key)
            )
        else:
            part = f"{PARTS_PREFIX}{self.job.job_id}/{checkpoint.segments:05d}"
            writers = _Writers(
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

    def _copy_segments(self, count: int, writers: _Writers) -> None:
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

    def _score_lines(self, *, checkpoint: _Progress, writers: _Writers) -> tuple[_Progress, bool]:
        settings = self.deps.settings
        stream = self._open_input()
        try:
            reader = LineReader(stream, max_line_bytes=settings.max_payload_bytes)
            lines, parser, header_lines = self._prepare(reader)
            if checkpoint.offset > 0:
                # Resuming: whatever _prepare read (a sniffed line) lies before the checkpoint.
                reader.skip_to(offset=checkpoint.offset, line_number=checkpoint.line)
                lines = iter(reader)
            state = _SliceState(
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
            except _SliceEnd:
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
    def _save_progress(self, reached: _Progress, *, extra: dict[str, Any] | None = None) -> Job:
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
        return _save(self.deps, job)

    def heartbeat(self, reached: _Progress) -> None:
        progress.report(
            "scoring",
            done=reached.offset,
            # Bytes of the input read; a gzip input's size is not what it decompresses to.
            total=None if is_gzip(self.target.name) else self.ref.size,
            detail=f"{reached.records} records, {reached.errors} refused",
        )
        if self.deps.now() - self._last_beat >= HEARTBEAT_SECONDS:
            self.job = self._save_progress(reached)

    def _finish(self, reached: _Progress) -> Outcome:
        job = replace(self.job, records=reached.records, ok=reached.ok, errors=reached.errors)
        if reached.errors == 0:
            job = _terminal(job, SUCCEEDED)
        elif reached.ok == 0:
            job = _terminal(
                job,
                FAILED,
                reason=f"none of the {reached.records} records is valid; see the errors file",
            )
        else:
            job = _terminal(
                job,
                PARTIAL,
                reason=f"{reached.errors} of {reached.records} records are "
                "invalid; see the errors file",
            )
        self.job = _save(self.deps, self._timed(job))
        logger.info("job done", extra={"job_id": job.job_id, "status": job.status})
        return Outcome(job_id=job.job_id, action="finished")

    def _finish_failed(
        self,
        reason: str,
        *,
        retryable: bool,
        first_unscored: int | None = None,
        reached: _Progress | None = None,
    ) -> Outcome:
        job = self.job
        if reached is not None:
            job = replace(job, records=reached.records, ok=reached.ok, errors=reached.errors)
        job = _terminal(job, FAILED, reason=reason, retryable=retryable)
        if first_unscored is not None:
            job = replace(job, extra={**job.extra, "first_unscored_record": first_unscored})
        self.job = _save(self.deps, self._timed(job))
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


@dataclass
class _SliceState:
    """Lines → micro-batches → written results, tracking the last fully written point."""

    run: _JobRun
    writers: _Writers
    reached: _Progress
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
                raise _SliceEnd()
            try:
                results = self.run.scorer.score(self.batch)
            except OutOfTime:
                raise _SliceEnd() from None
            except (EndpointFailed, UpstreamError) as exc:
                first = self.batch.samples[0].record
                last = self.batch.samples[-1].record
                raise _SliceFailed(
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


def _chain(first: list[Line], rest: Iterator[Line]) -> Iterator[Line]:
    yield from first
    yield from rest


def _json_line(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":")) + "\n"


def _terminal(job: Job, status: str, *, reason: str | None = None, retryable: bool = False) -> Job:
    extra = {**job.extra, "retryable": retryable if status == FAILED else None}
    if status != RUNNING:
        extra["next_slice"] = None
    return replace(job, status=status, reason=reason, extra=extra)


def _save(deps: BatchDeps, job: Job) -> Job:
    """Write the job if it is still as this runner last read or wrote it (``job.updated_at``),
    stamped anew; raises ``JobChanged`` if another delivery wrote it meanwhile."""
    saved = replace(job, updated_at=_stamp_after(job.updated_at))
    return deps.registry.update_job(job=saved, expected_updated_at=job.updated_at)


def _stamp_after(previous: str) -> str:
    """Now, or a millisecond after ``previous`` if the clock has not moved past it (two writes
    in one millisecond, or another invocation's clock ahead of this one's): every write must
    change the stamp, or a compare-and-set against the old one would still pass."""
    from datetime import datetime, timedelta

    now = utc_now()
    if now > previous:
        return now
    try:
        then = datetime.fromisoformat(previous.replace("Z", "+00:00"))
    except ValueError:
        return now
    return (
        (then + timedelta(milliseconds=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _seconds_between(start: str, end: str) -> float | None:
    from datetime import datetime

    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((b - a).total_seconds(), 3)


def _continue(deps: BatchDeps, event: dict[str, Any]) -> bool:
    """Hand ``event`` to a fresh invocation; False if, run here, it failed retryably."""
    if deps.continue_later is not None:
        deps.continue_later(event)
        return True
    # Local: no deadline, so the work goes on here, at once. The jobs record how it ended.
    try:
        handle_event(event=event, context=None, deps=deps)
    except RetryableBatchFailure:
        return False
    return True


def _summary(registry: Registry, outcome: Outcome) -> dict[str, Any]:
    summary: dict[str, Any] = {"job_id": outcome.job_id, "action": outcome.action}
    if outcome.note:
        summary["note"] = outcome.note
    if outcome.job_id is None:
        return summary
    try:
        job = registry.get_job(job_id=outcome.job_id)
    except JobNotFound:
        return summary
    summary.update(
        status=job.status,
        model=job.model,
        version=job.version,
        records=job.records,
        ok=job.ok,
        errors=job.errors,
        output_uri=job.output_uri,
        errors_uri=job.errors_uri,
        reason=job.reason,
    )
    return summary
