"""Shadow traffic on AWS: the shadow calls the router deferred, made by the batch function.

In a Lambda sandbox the router cannot call a shadow after its response (the sandbox is
frozen once the response is sent, a call in flight with it), and must not hold the response
for it. So there the router captures a shadowed request — inputs included — in a
``captures/…/*.pending.jsonl`` object (``functions.api.services.tap``, ``defer_shadow``), and
the object's creation notifies this function, which asks each request's shadow version with
the captured inputs, through the same runtime client batch scoring uses, and writes the
shadow's answers beside it as ``*.shadow.jsonl`` (same request ids, the primary's time, the
shadow's own latency): the pair the comparison report reads. A failed shadow call is a failed
shadow answer (recorded, not retried: a shadow is a sample). A redelivered notification
rewrites the same answers object, so each request is shadowed into one place however often
it is delivered.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from functions.batch.deps import BatchDeps
from functions.batch.events import ObjectRef
from functions.core.capture.records import (
    PENDING_SUFFIX,
    PREFIX,
    SHADOW,
    SHADOW_SUFFIX,
    CaptureRecord,
    response_tensors,
)
from functions.core.clock import utc_now
from functions.core.exceptions import ModelwayError
from functions.core.registry.base import ModelVersion
from functions.core.runtime.base import JSON

logger = logging.getLogger("modelway.batch.shadow")

# A shadow answer is a sample, not a job: one try, with the router's patience.
SHADOW_TIMEOUT_SECONDS = 29.0


def is_pending_capture(key: str) -> bool:
    return key.startswith(PREFIX) and key.endswith(PENDING_SUFFIX)


def shadow_key(key: str) -> str:
    return key[: -len(PENDING_SUFFIX)] + SHADOW_SUFFIX


def shadow_object(*, ref: ObjectRef, deps: BatchDeps) -> dict[str, Any]:
    """Ask the shadow version of every pending request in the capture object ``ref``."""
    versions: dict[tuple[str, int], ModelVersion | ModelwayError] = {}
    answers: list[bytes] = []
    failed = 0
    with deps.store.open_object(key=ref.key, version_id=ref.version_id) as stream:
        lines = stream.readlines()
    for line in lines:
        if not line.strip():
            continue
        record = CaptureRecord.from_dict(json.loads(line))
        if record.pending_shadow is None or not record.inputs:
            continue
        answer = _shadow(record, version=record.pending_shadow, deps=deps, versions=versions)
        failed += not answer.ok
        answers.append(answer.to_line())
    if answers:
        deps.store.put_object(key=shadow_key(ref.key), body=b"".join(answers))
    summary = {"capture": ref.key, "shadowed": len(answers), "failed": failed}
    logger.info("shadowed captured requests", extra=summary)
    return summary


def _shadow(
    record: CaptureRecord,
    *,
    version: int,
    deps: BatchDeps,
    versions: dict[tuple[str, int], ModelVersion | ModelwayError],
) -> CaptureRecord:
    started = time.perf_counter()
    status, code, outputs = 200, None, None
    try:
        target = versions.get((record.model, version))
        if target is None:
            try:
                target = deps.registry.get_version(model=record.model, version=version)
            except ModelwayError as exc:
                target = exc
            versions[(record.model, version)] = target
        if isinstance(target, ModelwayError):
            raise target
        if target.status != "active":
            raise ModelwayError(
                f"{record.model} version {version} is retired", code="version_retired"
            )
        body = json.dumps({"id": record.request_id, "inputs": record.inputs}).encode()
        response = deps.runtime.invoke(
            endpoint=target.endpoint_name,
            variant=target.variant_name,
            body=body,
            content_type=JSON,
            deadline=time.time() + SHADOW_TIMEOUT_SECONDS,
            request_id=f"{record.request_id}:shadow",
        )
        outputs = response_tensors(response.body, json_length=None)
    except ModelwayError as exc:
        status, code = exc.status, exc.code
    except Exception as exc:  # one bad record must not stop the others
        logger.exception("shadow call for %s failed", record.request_id)
        status, code = 500, f"internal_error: {type(exc).__name__}"
    return CaptureRecord(
        request_id=record.request_id,
        at=record.at,
        model=record.model,
        alias=record.alias,
        version=version,
        role=SHADOW,
        status=status,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        key_id=record.key_id,
        code=code,
        outputs=outputs,
        extra={"shadowed_at": utc_now()},
    )
