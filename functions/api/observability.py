"""One record per request (route, status, latency, and the model/version it served) handed
to an observer: the Lambda handler turns it into CloudWatch metrics, locally there is none.

Every response also carries the request's id (``x-request-id``) and where its time went
(``Server-Timing``); see ``functions.api.trace``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.api import trace

logger = logging.getLogger("modelway.api")


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    status: int
    latency_ms: float
    model: str | None  # set by the inference routes once they know
    version: int | None
    key_id: str | None  # the caller, once authenticated
    request_id: str | None = None
    # The caller asked for less time than the router allows (``X-Request-Timeout``): a 504 is
    # then the caller's choice, not the model failing.
    caller_deadline: bool = False


Observer = Callable[[RequestRecord], None]


class ObserveMiddleware:
    """Times each request and reports it to ``app.state.observer`` (if any)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Routes label the request through ``request.state``, which lives in scope["state"].
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500
        started = time.perf_counter()
        request_id = trace.request_id(headers=Headers(scope=scope), event=scope.get("aws.event"))
        timings = trace.Timings()
        state["request_id"] = request_id
        state["timings"] = timings

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = MutableHeaders(scope=message)
                headers[trace.REQUEST_ID_HEADER] = request_id
                headers[trace.SERVER_TIMING_HEADER] = trace.server_timing(
                    timings.phases, total_ms=(time.perf_counter() - started) * 1000.0
                )
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            observer: Observer | None = getattr(scope["app"].state, "observer", None)
            if observer is not None:
                record = RequestRecord(
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    latency_ms=(time.perf_counter() - started) * 1000.0,
                    model=state.get("model"),
                    version=state.get("model_version"),
                    key_id=state.get("key_id"),
                    request_id=request_id,
                    caller_deadline=bool(state.get("caller_deadline")),
                )
                try:
                    observer(record)
                except Exception:  # metrics must never fail a request
                    logger.warning("request observer failed", exc_info=True)
