"""Following one request: its id, and where its time went.

The id is the client's ``x-request-id`` when it sent a usable one, else the trace id of its
W3C ``traceparent``, else API Gateway's ``requestContext.requestId``, else a new one. It is
the log lines' correlation id, travels to the model server (``CustomAttributes``, the one
field SageMaker passes to the container), and comes back in ``x-request-id``.

``Server-Timing`` (W3C) splits the router's time into ``auth``, ``resolve``, ``validate`` and
``runtime`` (the model endpoint call, which the model server splits further into ``queue`` and
``compute`` when it reports them), plus ``total``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

REQUEST_ID_HEADER = "x-request-id"
TRACEPARENT_HEADER = "traceparent"
SERVER_TIMING_HEADER = "server-timing"
# What an id may be: it goes into CustomAttributes (visible ASCII, ';' and '=' separate items)
# and log lines, so nothing else gets through.
_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def request_id(*, headers: Mapping[str, str], event: Mapping[str, Any] | None) -> str:
    client = headers.get(REQUEST_ID_HEADER, "").strip()
    if _ID.fullmatch(client):
        return client
    parent = _TRACEPARENT.fullmatch(headers.get(TRACEPARENT_HEADER, "").strip().lower())
    if parent is not None and parent.group(1) != "0" * 32:
        return parent.group(1)
    gateway = ((event or {}).get("requestContext") or {}).get("requestId")
    if isinstance(gateway, str) and _ID.fullmatch(gateway):
        return gateway
    return uuid.uuid4().hex


class Timings:
    """Phases of one request, in milliseconds, in the order they happened."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, float]] = []
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        """Ends phase ``name`` now (it started when the previous one ended)."""
        now = time.perf_counter()
        self.phases.append((name, (now - self._last) * 1000.0))
        self._last = now

    def add(self, name: str, ms: float) -> None:
        """A phase measured elsewhere (the model server's queue and compute)."""
        self.phases.append((name, ms))

    def restart(self) -> None:
        self._last = time.perf_counter()


def server_timing(phases: list[tuple[str, float]], *, total_ms: float) -> str:
    items = [f"{name};dur={ms:.3f}" for name, ms in phases]
    items.append(f"total;dur={total_ms:.3f}")
    return ", ".join(items)
