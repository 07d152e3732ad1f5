"""Who runs a batch job: claiming it, leases, and compare-and-set writes of the job record.

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
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from aws_lambda_powertools import Logger

from functions.batch.deps import BatchDeps
from functions.batch.events import InputTarget, InvalidInputKey, ObjectRef
from functions.core.artifacts.base import ArtifactStore
from functions.core.clock import utc_now
from functions.core.exceptions import InvalidRequest
from functions.core.registry.base import Job
from functions.core.registry.exceptions import JobChanged

logger = Logger(service="modelway-batch", child=True)

RUNNING, SUCCEEDED, PARTIAL, FAILED = "running", "succeeded", "partial", "failed"
# How long a runner without a deadline (locally), or a job handed to a continuation, holds
# the job before another delivery may take it over.
UNBOUNDED_LEASE_SECONDS = 900.0
# Extra seconds on a lease: clocks of two invocations may differ a little.
LEASE_SLACK_SECONDS = 30.0


@dataclass
class Progress:
    """A point in the input up to which everything is written: where a slice may stop."""

    offset: int = 0
    line: int = 0
    records: int = 0
    ok: int = 0
    errors: int = 0
    segments: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def zero_checkpoint() -> dict[str, int]:
    return Progress().to_dict()


def claim(
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
            "checkpoint": zero_checkpoint(),
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
    checkpoint = job.extra.get("checkpoint") or zero_checkpoint()
    extra = {
        **job.extra,
        "attempt": int(job.extra.get("attempt", 1)) + 1,
        # A new attempt gets the whole slice budget again; it resumes from the checkpoint.
        "slices": 0,
        "lease_until": deps.now() + UNBOUNDED_LEASE_SECONDS,
        "retryable": None,
        "next_slice": None,
    }
    claimed = take_over(
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


def take_over(deps: BatchDeps, job: Job) -> Job | None:
    """Write ``job`` if nobody wrote it since it was read (``job.updated_at``); None if another
    delivery got there first."""
    try:
        return save(deps, job)
    except JobChanged:
        logger.info("another delivery took the job first", extra={"job_id": job.job_id})
        return None


def terminal(job: Job, status: str, *, reason: str | None = None, retryable: bool = False) -> Job:
    extra = {**job.extra, "retryable": retryable if status == FAILED else None}
    if status != RUNNING:
        extra["next_slice"] = None
    return replace(job, status=status, reason=reason, extra=extra)


def save(deps: BatchDeps, job: Job) -> Job:
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
