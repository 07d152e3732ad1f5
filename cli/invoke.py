"""``modelway invoke api|batch|endpoint-events EVENT.json``: run a Lambda handler locally on a
sample event.

``api`` feeds an API Gateway proxy event (``events/api-*.json``) through
``functions.api.handler.handler`` over the local backend (the model server must be running,
``modelway up``, for inference) and prints the response. The events carry the placeholder
``${MODELWAY_API_KEY}`` wherever API Gateway would put the caller's key; it is replaced by
``--key`` or the ``MODELWAY_API_KEY`` environment variable. ``batch`` feeds an S3 event to
``functions.batch.handler.handler`` and ``endpoint-events`` a SageMaker endpoint state change
(``events/sagemaker-endpoint-in-service.json``) to ``functions.endpoint_events.handler.handler``,
and print what they return. ``endpoint-events`` acts only with an AWS environment's settings
(``python -m infra.outputs``): the local stack deploys nothing, so there it only says so.

The handlers' own output (Powertools JSON logs, EMF metrics) goes to stderr, the response to
stdout; the exit status is 1 for an HTTP error response.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

API_KEY_PLACEHOLDER = "${MODELWAY_API_KEY}"
API_KEY_ENV = "MODELWAY_API_KEY"


@dataclass
class LocalLambdaContext:
    """The attributes Lambda's context object has and Powertools reads."""

    function_name: str = "modelway-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/modelway-local"
    log_stream_name: str = "local"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "invoke",
        help="run a Lambda handler locally on a sample event (events/*.json)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "target", choices=("api", "batch", "endpoint-events"), help="which Lambda to run"
    )
    parser.add_argument("event", type=Path, help="the event file, e.g. events/api-infer.json")
    parser.add_argument(
        "--key",
        default=None,
        help=f"API key secret replacing {API_KEY_PLACEHOLDER} (default: ${API_KEY_ENV})",
    )
    parser.set_defaults(func=_invoke)


def load_event(path: Path, *, api_key: str | None) -> dict[str, Any]:
    """The event in ``path`` with the key placeholder replaced (left as is without a key)."""
    text = path.read_text(encoding="utf-8")
    if api_key is not None:
        # Escaped as a JSON string body, so any secret drops in safely.
        text = text.replace(API_KEY_PLACEHOLDER, json.dumps(api_key)[1:-1])
    event: dict[str, Any] = json.loads(text)
    context = event.get("requestContext")
    if isinstance(context, dict) and "requestTimeEpoch" in context:
        # API Gateway stamps when it received the request, and the router's deadline counts
        # from it (functions.api.deadlines): an event replayed now was received now.
        context["requestTimeEpoch"] = int(time.time() * 1000)
    return event


def _invoke(args: argparse.Namespace) -> int:
    api_key = args.key if args.key is not None else os.environ.get(API_KEY_ENV)
    event = load_event(args.event, api_key=api_key)
    context = LocalLambdaContext(function_name=f"modelway-{args.target}")
    # Imported under the redirect: Powertools binds its log stream when the module loads.
    with contextlib.redirect_stdout(sys.stderr):
        # Each function's package is imported only when asked for.
        package = args.target.replace("-", "_")
        handler = importlib.import_module(f"functions.{package}.handler").handler
        result = handler(event, context)
    if args.target == "api" and not getattr(args, "json", False):
        return _print_http_response(result)
    print(json.dumps(result, indent=2, default=str))
    if args.target == "api":  # --json: the proxy response as the handler returned it
        return 0 if int(result.get("statusCode", 0)) < 400 else 1
    return 0


def _print_http_response(response: dict[str, Any]) -> int:
    status = int(response.get("statusCode", 0))
    print(f"HTTP {status}")
    headers = dict(response.get("headers") or {})
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(str(v) for v in values)
    for name, value in sorted(headers.items()):
        print(f"{name}: {value}")
    print()
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        raw = base64.b64decode(body)
        print(f"<{len(raw)} bytes of binary data>")
    else:
        try:
            print(json.dumps(json.loads(body), indent=2))
        except ValueError:
            print(body)
    return 0 if status < 400 else 1
