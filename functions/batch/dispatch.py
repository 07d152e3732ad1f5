"""Batch events: an S3 notification (or a continuation) → one job per object it names.

Lifecycle. ``running`` → ``succeeded`` (every record scored), ``partial`` (some records bad:
they are in the error file, the rest scored) or ``failed`` (no usable result: the endpoint kept
failing, the file's format or header is unknown, the key names no model/version, or no record
is valid). A failure says whether another delivery may fix it (``retryable``: the endpoint, the
store, the registry) or not (anything about the object itself: its key, format, header,
encoding or compression); only the first kind is retried by Lambda (then dead-lettered).
The job records counts (records read, ok, errors), timings and output locations. Claiming a
job is in ``leases``, running it in ``slices``, its result files in ``results``.

Canary aliases. A file sent to an alias is scored whole by the alias's main version: a canary
split per record would mix two models' outputs in one result file with nothing to tell them
apart, and the output path names one version. The version is pinned on the job when first
resolved, so a job resumed after the alias moved keeps scoring with the same version.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from functools import partial
from typing import Any

from aws_lambda_powertools import Logger

from functions.batch.deps import BatchDeps
from functions.batch.events import (
    InputTarget,
    InvalidInputKey,
    ObjectRef,
    is_continuation,
    job_id_for,
    parse_input_key,
    parse_notification,
    remaining_records_event,
)
from functions.batch.leases import FAILED, RUNNING, claim, save, take_over, terminal
from functions.batch.outcome import Outcome
from functions.batch.scoring import Deadline
from functions.batch.slices import JobRun
from functions.core.exceptions import InvalidRequest, ModelwayError, NotFound, UpstreamUnavailable
from functions.core.oip import Signature
from functions.core.registry.base import ModelVersion, Registry
from functions.core.registry.exceptions import JobChanged, JobNotFound

logger = Logger(service="modelway-batch", child=True)


class RetryableBatchFailure(UpstreamUnavailable):
    """Raised after an event's objects were all handled when some job failed in a way a later
    delivery may fix: Lambda then retries the event (and finally sends it to the dead-letter
    destination); the jobs that finished are not redone."""

    code = "batch_job_failed"


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
            save(deps, terminal(job, FAILED, reason=reason, retryable=retryable))
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
        job = claim(ref, deps, job_id=job_id, target=target, key_error=key_error)
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
        job = take_over(deps, replace(job, extra={**job.extra, "next_slice": None}))
        if job is None:
            return Outcome(job_id=job_id, action="duplicate")

    settings = deps.settings
    if key_error is not None or target is None:
        reason = key_error.message if key_error else "invalid key"
        save(deps, terminal(job, FAILED, reason=reason))
        return Outcome(job_id=job_id, action="finished")
    if not settings.is_local and ref.bucket != settings.bucket_name:
        reason = (
            f"the object is in bucket {ref.bucket!r}; this function reads {settings.bucket_name!r}"
        )
        save(deps, terminal(job, FAILED, reason=reason))
        return Outcome(job_id=job_id, action="finished")

    try:
        version = _resolve(deps.registry, target=target, pinned=job.version)
        signature = Signature.from_dict(version.manifest["signature"])
    except (NotFound, InvalidRequest, KeyError, ValueError) as exc:
        reason = exc.message if isinstance(exc, ModelwayError) else f"bad signature: {exc}"
        save(deps, terminal(job, FAILED, reason=reason))
        return Outcome(job_id=job_id, action="finished")
    job = save(deps, replace(job, version=version.version))
    logger.info("scoring", extra={**log_keys, "model": version.model, "version": version.version})
    run = JobRun(
        deps=deps,
        ref=ref,
        target=target,
        job=job,
        version=version,
        signature=signature,
        deadline=deadline,
        continue_with=partial(_continue, deps),
    )
    return run.run()


def _resolve(registry: Registry, *, target: InputTarget, pinned: int | None) -> ModelVersion:
    number = pinned or target.version
    if number is None:
        assert target.alias is not None
        number = registry.get_alias(model=target.model, alias=target.alias).version
    version = registry.get_version(model=target.model, version=number)
    if version.status != "active":
        raise InvalidRequest(f"{target.model} version {number} is {version.status}")
    return version


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
