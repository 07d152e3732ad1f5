"""What the endpoint-events function does with one EventBridge event.

SageMaker sends "SageMaker Endpoint State Change" (source ``aws.sagemaker``) on every status
change of an endpoint, with ``detail.EndpointName`` and ``detail.EndpointStatus``
(``IN_SERVICE``, ``UPDATING``, …) — see "Events that Amazon SageMaker AI sends to Amazon
EventBridge" in the SageMaker developer guide, and ``events/sagemaker-endpoint-in-service.json``.
The stack's rule already filters on the status and this environment's name prefix; the checks
are repeated here so that a stray event (another rule, ``modelway invoke``) changes nothing.

The work is ``Deployer.ensure_autoscaling``: it describes the endpoint again (the event may
be stale) and writes only the targets and policies that differ, so a duplicate or replayed
event costs a few reads (SageMaker may send several events per change). Then the model's
pending alias moves whose targets now serve are made (``rollout.complete_pending_moves``),
and a target the endpoint still lacks gets its endpoint change started.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from functions.core.deploy.base import Deployer
    from functions.core.registry.base import Registry

SOURCE = "aws.sagemaker"
DETAIL_TYPE = "SageMaker Endpoint State Change"
IN_SERVICE = "IN_SERVICE"
# The stack's schedule (inference components send no state-change events).
SCHEDULE_SOURCE = "aws.events"
SCHEDULE_DETAIL_TYPE = "Scheduled Event"

logger = logging.getLogger(__name__)


def is_schedule(event: Mapping[str, Any]) -> bool:
    return (
        event.get("source") == SCHEDULE_SOURCE and event.get("detail-type") == SCHEDULE_DETAIL_TYPE
    )


def handle_schedule(
    *, deployer: Deployer | None, registry: Registry | None, require_approval: bool = False
) -> dict[str, Any]:
    """Reconciles every model's endpoint with the registry (``rollout.reconcile``): what
    inference components need, as SageMaker reports no change of theirs. A model that fails
    is logged and the others still run; the next tick tries it again."""
    if deployer is None or registry is None:
        return {"action": "ignored", "reason": "this environment deploys nothing"}
    from functions.core.deploy.rollout import reconcile

    result: dict[str, Any] = {"action": "reconciled", "models": {}, "moved": [], "failed": []}
    for model in registry.list_models():
        try:
            outcome, moved = reconcile(
                registry=registry,
                deployer=deployer,
                model=model,
                require_approval=require_approval,
            )
        except Exception:
            logger.exception("reconciling %s failed", model)
            result["failed"].append(model)
            continue
        result["models"][model] = outcome
        result["moved"] += [f"{model}/{a.alias}->v{a.version}" for a in moved]
    return result


def model_for_endpoint(*, endpoint: str, prefix: str) -> str | None:
    """The model whose endpoint this is, or None for a name outside ``{prefix}-``.

    The deployer names a model's endpoint ``{prefix}-{model}``, shortened with a hash when
    longer than SageMaker's 63 characters; for such a name the rest after the prefix is not
    the model's own name, but the deployer maps it to the very same endpoint name, which is
    all ``ensure_autoscaling`` needs."""
    head = f"{prefix}-"
    if not endpoint.startswith(head) or len(endpoint) == len(head):
        return None
    return endpoint[len(head) :]


def handle_event(
    *,
    event: Mapping[str, Any],
    prefix: str,
    deployer: Deployer | None,
    registry: Registry | None = None,
    require_approval: bool = False,
) -> dict[str, Any]:
    """Registers the autoscaling of the endpoint the event names, or says why not.

    Returns what was done: ``action`` is ``autoscaled``, ``deferred`` (the endpoint is no
    longer ``InService``: the event of its next ``IN_SERVICE`` will do it) or ``ignored``."""
    detail = event.get("detail") or {}
    endpoint = str(detail.get("EndpointName") or "")
    status = str(detail.get("EndpointStatus") or "")
    result: dict[str, Any] = {"endpoint": endpoint, "status": status}
    if event.get("source") != SOURCE or event.get("detail-type") != DETAIL_TYPE:
        return {**result, "action": "ignored", "reason": "not a SageMaker endpoint state change"}
    if status != IN_SERVICE:
        return {**result, "action": "ignored", "reason": f"status is not {IN_SERVICE}"}
    model = model_for_endpoint(endpoint=endpoint, prefix=prefix)
    if model is None:
        return {**result, "action": "ignored", "reason": f"not a {prefix}- endpoint"}
    result["model"] = model
    if deployer is None:
        return {**result, "action": "ignored", "reason": "this environment deploys nothing"}
    scaled = deployer.ensure_autoscaling(model=model)
    if registry is not None:
        from functions.core.deploy.rollout import reconcile

        # What the endpoint could not take while it changed is started now (with inference
        # components: every version's component, which needs the endpoint InService). The
        # environment's approval gate holds when a pending move is made, too.
        _, moved = reconcile(
            registry=registry, deployer=deployer, model=model, require_approval=require_approval
        )
        result["moved"] = [f"{a.alias}->v{a.version}" for a in moved]
    if scaled:
        return {**result, "action": "autoscaled"}
    return {
        **result,
        "action": "deferred",
        "reason": "the endpoint is missing or changing again, or autoscaling is off",
    }
