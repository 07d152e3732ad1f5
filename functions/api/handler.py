"""The ``api`` Lambda: API Gateway (REST, v1 payload) → Mangum → the router app.

In a Lambda sandbox the app, its routes, settings and the data plane's boto3 clients are
built at import, the init phase (``init``; ``functions.core.snapstart``): with SnapStart that
work is in the snapshot, without it the first event still costs what a warm one does. After a
restore, ``RouterState.renew`` replaces what sandboxes must not share. Elsewhere (tests, tools
that import this module) nothing is built until ``init()`` or the first event.

Observability is Powertools': JSON logs with the API Gateway request id as correlation id, EMF
metrics in the ``modelway`` namespace, and X-Ray traces only where tracing is on (in Lambda,
unless ``POWERTOOLS_TRACE_DISABLED``): elsewhere the X-Ray SDK is not even imported.

Metric dimensions are chosen for bounded cardinality: ``model`` and ``version`` on inference
requests (a handful each); never key ids, request ids or paths, which go to the log line.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from fastapi import FastAPI
from mangum import Mangum

from functions.api import trace
from functions.api.apigw import RestApiGateway
from functions.api.observability import RequestRecord
from functions.core import snapstart, tracing
from functions.core.deploy import guardrail

SERVICE = guardrail.SERVICE
NAMESPACE = guardrail.NAMESPACE
# Loggers of ours (and Mangum's) that should write Powertools' JSON lines too.
_LOGGER_PREFIXES = ("modelway", "functions", "mangum")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = tracing.tracer(service=SERVICE)

_adapter: Mangum | None = None
_adapter_lock = threading.Lock()


def build_adapter(app: FastAPI) -> Mangum:
    """Mangum over ``app``, with the request metrics wired in. Lifespan is off: the app's
    startup work is done before (``init``), or left to first use (tests)."""
    app.state.observer = record_request
    app.state.modelway.blocking_inline = True  # one event at a time: see RouterState
    return Mangum(app, lifespan="off", custom_handlers=[RestApiGateway])


def init() -> Mangum:
    """Build the app and its data-plane clients (once), and register the SnapStart hooks."""
    global _adapter
    if _adapter is None:
        with _adapter_lock:
            if _adapter is None:
                from functions.api.app import app_from_environment

                app = app_from_environment()
                logger.setLevel(app.state.modelway.settings.log_level)
                names = {
                    name
                    for name in logging.root.manager.loggerDict
                    if name.startswith(_LOGGER_PREFIXES)
                }
                copy_config_to_registered_loggers(source_logger=logger, include=names)
                adapter = build_adapter(app)
                _prime(adapter, app)
                _adapter = adapter
                snapstart.register(
                    # The control plane too goes in the snapshot (it is lazy only to spare
                    # the data plane's cold starts without SnapStart).
                    before_snapshot=app.state.control_plane.load,
                    after_restore=app.state.modelway.renew,
                )
    return _adapter


# An inference request without a key: it runs Mangum, routing, the inference route and the
# error handling once (401), so the first real event finds them warm, and touches no client.
_PRIME_EVENT: dict[str, Any] = {
    "resource": "/v2/{proxy+}",
    "path": "/v2/models/prime/infer",
    "httpMethod": "POST",
    "headers": {"content-type": "application/json"},
    "multiValueHeaders": {"content-type": ["application/json"]},
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": {"proxy": "models/prime/infer"},
    "stageVariables": None,
    "requestContext": {"stage": "prime", "requestId": "prime", "identity": {}},
    "body": "{}",
    "isBase64Encoded": False,
}


def _prime(adapter: Mangum, app: FastAPI) -> None:
    observer, app.state.observer = app.state.observer, None  # not a request to count
    try:
        response = adapter(_PRIME_EVENT, cast(Any, None))
    finally:
        app.state.observer = observer
    if response.get("statusCode") != 401:  # a change in the app, not a reason to fail init
        logger.warning("priming request answered %s", response.get("statusCode"))


def _get_adapter() -> Mangum:
    return _adapter if _adapter is not None else init()


def _model_failed(record: RequestRecord) -> bool:
    # A 504 inside a deadline the caller shortened says the caller was in a hurry, not that the
    # model is failing; counting it would let one impatient client roll a deployment back.
    return record.status >= 500 and not (record.status == 504 and record.caller_deadline)


def record_request(record: RequestRecord) -> None:
    if record.model is not None:
        # The model's own error count, by model alone: what that model's rollback alarm
        # watches (``functions.core.deploy.guardrail``), so no other model's failures, and no
        # request that never reached a model, can roll its deployment back.
        with single_metric(
            name=guardrail.METRIC,
            unit=MetricUnit.Count,
            value=int(_model_failed(record)),
            namespace=guardrail.NAMESPACE,
            default_dimensions={"service": guardrail.SERVICE},
        ) as model_errors:
            model_errors.add_dimension(name="model", value=record.model)
        metrics.add_dimension(name="model", value=record.model)
        if record.version is not None:
            metrics.add_dimension(name="version", value=str(record.version))
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=record.latency_ms)
    metrics.add_metric(
        name="ClientErrors", unit=MetricUnit.Count, value=int(400 <= record.status < 500)
    )
    metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=int(record.status >= 500))
    logger.info(
        "request",
        extra={
            "method": record.method,
            "path": record.path,
            "status": record.status,
            "latency_ms": round(record.latency_ms, 3),
            "model": record.model,
            "model_version": record.version,
            "key_id": record.key_id,
            "request_id": record.request_id,
        },
    )


def _handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not isinstance(event, dict) or "requestContext" not in event or "httpMethod" not in event:
        # Not an API Gateway proxy event (a direct invoke, a warmer): nothing to route.
        logger.warning("ignored an event that is not an API Gateway REST proxy event")
        metrics.add_metric(name="IgnoredEvents", unit=MetricUnit.Count, value=1)
        return {
            "statusCode": 400,
            "headers": {"content-type": "application/json"},
            "body": json.dumps(
                {"error": "not an API Gateway proxy event", "code": "invalid_request"}
            ),
            "isBase64Encoded": False,
        }
    # The correlation id is the request's id as the app will answer it (x-request-id): the
    # client's, when it sent one, else API Gateway's (functions.api.trace).
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    logger.set_correlation_id(trace.request_id(headers=headers, event=event))
    # Mangum's own LambdaContext protocol is stricter than Powertools' type; same object.
    response: dict[str, Any] = _get_adapter()(event, cast(Any, context))
    return response


_measured = metrics.log_metrics(capture_cold_start_metric=True)(_handle)
_traced = _measured
if tracer is not None:
    _traced = tracer.capture_lambda_handler(capture_response=False)(_measured)
handler = logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)(
    _traced
)

if snapstart.in_lambda():
    init()  # the init phase: see the module's docstring
