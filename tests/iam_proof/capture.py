"""Captures every AWS call the code under test makes, with the function it runs in.

botocore sends every operation of every client through ``BaseClient._make_api_call`` (moto
and botocore's Stubber answer later, at ``before-send``/``before-call``), so wrapping it sees
the caller's exact parameters and the outcome. A call belongs to the Lambda function whose
package is on the Python stack (outermost wins: the router's route → core → boto3 is the
router's call). Threads started by such code (boto3's transfer manager, thread pools)
inherit the function of the thread that created them. Calls from test code itself (moto
setup, assertions) belong to no function, and calls to a non-AWS endpoint (the local stack's
model server) to no account: neither is checked.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

from tests.iam_proof.needs import Call

# Package -> the function it runs as (its Lambda handler, which names its role).
ENTRY_POINTS: tuple[tuple[str, str], ...] = (
    ("functions.api", "functions.api.handler.handler"),
    ("functions.authorizer", "functions.authorizer.handler.handler"),
    ("functions.batch", "functions.batch.handler.handler"),
    ("functions.endpoint_events", "functions.endpoint_events.handler.handler"),
)

_state = threading.local()
_sink: list[tuple[str, Call]] | None = None
_installed = False


def function_on_stack(frame: Any) -> str | None:
    found = None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        for package, handler in ENTRY_POINTS:
            if module == package or module.startswith(package + "."):
                found = handler
        frame = frame.f_back
    return found


def current_function(frame: Any) -> str | None:
    override = getattr(_state, "acting_as", None)
    if override is not None:
        return str(override)
    found = function_on_stack(frame)
    if found is None:
        found = getattr(threading.current_thread(), "_modelway_function", None)
    return found


@contextlib.contextmanager
def acting_as(handler: str) -> Iterator[None]:
    """Attribute the calls made inside to the function with ``handler`` (for tests that drive
    a function's logic without going through its entry point)."""
    previous = getattr(_state, "acting_as", None)
    _state.acting_as = handler
    try:
        yield
    finally:
        _state.acting_as = previous


def _is_aws(endpoint_url: str) -> bool:
    """An AWS endpoint (moto's mock intercepts those), not the local stack's model server on
    loopback, which no IAM policy governs."""
    from urllib.parse import urlsplit

    host = urlsplit(endpoint_url).hostname or ""
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn"))


def install() -> None:
    """Wrap botocore's call path and thread creation, once per process."""
    global _installed
    if _installed:
        return
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    original = BaseClient._make_api_call

    def _make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        sink = _sink
        function = current_function(sys._getframe(1)) if sink is not None else None
        if function is None or sink is None or not _is_aws(self.meta.endpoint_url):
            return original(self, operation_name, api_params)
        model = self.meta.service_model.operation_model(operation_name)
        uri_params = {
            member.serialization.get("name", name): api_params[name]
            for name, member in (model.input_shape.members if model.input_shape else {}).items()
            if member.serialization.get("location") == "uri" and name in api_params
        }
        base = {
            "service": self.meta.service_model.service_name,
            "operation": operation_name,
            "params": dict(api_params),
            "http_method": model.http.get("method", ""),
            "request_uri": model.http.get("requestUri", ""),
            "uri_params": uri_params,
        }
        try:
            response = original(self, operation_name, api_params)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            sink.append((function, Call(**base, error_code=code)))
            raise
        sink.append((function, Call(**base, response=response)))
        return response

    BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]

    thread_init = threading.Thread.__init__

    def __init__(self: threading.Thread, *args: Any, **kwargs: Any) -> None:
        thread_init(self, *args, **kwargs)
        self._modelway_function = current_function(sys._getframe(1))  # type: ignore[attr-defined]

    threading.Thread.__init__ = __init__  # type: ignore[method-assign]
    _installed = True


@contextlib.contextmanager
def capturing() -> Iterator[list[tuple[str, Call]]]:
    """Collects ``(function handler, call)`` for every attributed call made inside."""
    global _sink
    install()
    calls: list[tuple[str, Call]] = []
    previous, _sink = _sink, calls
    try:
        yield calls
    finally:
        _sink = previous
