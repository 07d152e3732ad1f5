"""The ``api`` Lambda: API Gateway (REST, v1 payload) → Mangum → the router app.

The app is built once per container, on the first event, so a cold start pays for imports
only once and a warm one for nothing. Observability is Powertools': JSON logs with the API
Gateway request id as correlation id, EMF metrics in the ``modelway`` namespace, X-Ray traces
(no-op outside Lambda or with ``POWERTOOLS_TRACE_DISABLED``).

Metric dimensions are chosen for bounded cardinality: ``model`` and ``version`` on inference
requests (a handful each); never key ids, request ids or paths, which go to the log line.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from fastapi import FastAPI
from mangum import Mangum

from functions.api.apigw import RestApiGateway
from functions.api.observability import RequestRecord

SERVICE = "modelway-api"
NAMESPACE = "modelway"
# Loggers of ours (and Mangum's) that should write Powertools' JSON lines too.
_LOGGER_PREFIXES = ("modelway", "functions", "mangum")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)

_adapter: Mangum | None = None
_adapter_lock = threading.Lock()


def build_adapter(app: FastAPI) -> Mangum:
    """Mangum over ``app``, with the request metrics wired in. Lifespan is off: the app has
    no startup work, and its clients are built lazily on first use."""
    app.state.observer = record_request
    return Mangum(app, lifespan="off", custom_handlers=[RestApiGateway])


def _get_adapter() -> Mangum:
    global _adapter
    if _adapter is None:
        with _adapter_lock:
            if _adapter is None:
                from functions.api.app import create_app
                from functions.core.settings import get_settings

                settings = get_settings()
                logger.setLevel(settings.log_level)
                app = create_app(settings=settings)
                names = {
                    name
                    for name in logging.root.manager.loggerDict
                    if name.startswith(_LOGGER_PREFIXES)
                }
                copy_config_to_registered_loggers(source_logger=logger, include=names)
                _adapter = build_adapter(app)
    return _adapter


def record_request(record: RequestRecord) -> None:
    if record.model is not None:
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
        },
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
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
    # Mangum's own LambdaContext protocol is stricter than Powertools' type; same object.
    response: dict[str, Any] = _get_adapter()(event, cast(Any, context))
    return response
