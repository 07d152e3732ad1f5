"""Lambda entry point for EventBridge "SageMaker Endpoint State Change" events, for
"SageMaker Model Package State Change" (``functions.core.mirror.apply_state_change``), and
for the stack's schedule that reconciles inference components (``in_service.handle_schedule``).

Thin on purpose: logging context, the deployer (built once per container, lazily, from the
settings the stack sets), then ``in_service.handle_event``. A failure (SageMaker or
Application Auto Scaling unreachable, throttled) propagates so that Lambda retries the event
and, after its retries, hands it to the dead-letter queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from functions.endpoint_events.in_service import handle_event, handle_schedule, is_schedule

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(service="modelway-endpoint-events")

# An approval set in the SageMaker Model Registry (Studio) comes back as a modelway decision.
MODEL_PACKAGE_DETAIL_TYPE = "SageMaker Model Package State Change"


def _model_package_change(event: dict[str, Any]) -> dict[str, Any]:
    from functions.core.backends import current
    from functions.core.clock import utc_now
    from functions.core.mirror import apply_state_change
    from functions.core.settings import get_settings

    if event.get("source") != "aws.sagemaker":
        return {"action": "ignored", "reason": "not from SageMaker"}
    decision = apply_state_change(
        event=event,
        registry=current().registry,
        prefix=get_settings().resolved_endpoint_prefix,
        at=utc_now(),
    )
    result: dict[str, Any]
    if decision is None:
        result = {"action": "ignored", "reason": "not a new decision on a modelway version"}
    else:
        result = {
            "action": "recorded",
            "model": decision.model,
            "version": decision.version,
            "decision": decision.decision,
        }
    logger.info("model package state change", extra=result)
    return result


@logger.inject_lambda_context(correlation_id_path="id")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from functions.core.backends import current

    if event.get("detail-type") == MODEL_PACKAGE_DETAIL_TYPE:
        return _model_package_change(event)
    # The process's backends (the one wiring point): built on the first event, kept for the
    # container; no deployer where nothing is deployed (local).
    backends = current()
    deployer = backends.deployer
    if is_schedule(event):
        result = handle_schedule(
            deployer=deployer,
            registry=backends.registry if deployer is not None else None,
            require_approval=backends.settings.require_approval,
        )
        logger.info("scheduled reconcile", extra=result)
        return result
    result = handle_event(
        event=event,
        prefix=backends.settings.resolved_endpoint_prefix,
        deployer=deployer,
        registry=backends.registry if deployer is not None else None,
        require_approval=backends.settings.require_approval,
    )
    logger.info("endpoint state change", extra=result)
    return result
