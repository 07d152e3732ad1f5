"""Lambda entry point for S3 ``ObjectCreated`` notifications on ``inputs/`` (and for the
continuation events the function sends itself for files that outlast one invocation), and on
the router's pending captures, ``captures/…/*.pending.jsonl`` (shadow traffic on AWS,
``functions.batch.shadow``).

Thin on purpose: logging context, the clients (built once per container, lazily), then
``jobs.handle_event``. Locally the CLI calls this same function with the same event shape.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache, partial
from typing import Any

from aws_lambda_powertools import Logger

from functions.batch.deps import BatchDeps
from functions.batch.dispatch import handle_event
from functions.core.aws_clients import LazyClient
from functions.core.settings import get_settings

logger = Logger(service="modelway-batch", level=get_settings().log_level)


def get_deps() -> BatchDeps:
    """The registry, store and runtime client of the process's backends
    (``functions.core.backends.current``, the one wiring point: built on first use and kept;
    tests swap them with ``backends.use``)."""
    from functions.core.backends import current

    backends = current()
    return BatchDeps(
        settings=backends.settings,
        registry=backends.registry,
        store=backends.store,
        runtime=backends.batch_runtime,
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_id = getattr(context, "aws_request_id", None)
    if request_id:
        logger.append_keys(request_id=request_id)
    deps = get_deps()
    arn = getattr(context, "invoked_function_arn", None)
    if not deps.settings.is_local and arn:
        # A file that outlasts this invocation goes on in a new one of this same function.
        deps = replace(deps, continue_later=partial(_invoke_async, function_arn=arn))
    logger.info("batch event", extra={"records": len(event.get("Records") or [])})
    event, shadowed = _shadow_pending_captures(event, deps)
    if shadowed and not event.get("Records"):
        return {"jobs": [], "shadow": shadowed}
    result = handle_event(event=event, context=context, deps=deps)
    return {**result, "shadow": shadowed} if shadowed else result


def _shadow_pending_captures(
    event: dict[str, Any], deps: BatchDeps
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Shadow the router's pending captures an S3 notification names (``shadow``); the event
    with the other records (uploads to score) is handed on."""
    from functions.batch.events import parse_notification
    from functions.batch.shadow import is_pending_capture, shadow_object

    records = event.get("Records")
    if not isinstance(records, list):
        return event, []
    rest, shadowed = [], []
    for record in records:
        refs = parse_notification({"Records": [record]})
        if refs and is_pending_capture(refs[0].key):
            shadowed.append(shadow_object(ref=refs[0], deps=deps))
        else:
            rest.append(record)
    return ({**event, "Records": rest} if shadowed else event), shadowed


@cache
def _lambda_client() -> LazyClient:
    return LazyClient("lambda", region=get_settings().region)


def _invoke_async(event: dict[str, Any], *, function_arn: str) -> None:
    _lambda_client().get().invoke(
        FunctionName=function_arn, InvocationType="Event", Payload=json.dumps(event).encode()
    )
