"""A request's deadline, as the router passes it: SageMaker's ``CustomAttributes``.

SageMaker forwards only the headers its ``InvokeEndpoint`` API defines; ``CustomAttributes``
(``X-Amzn-SageMaker-Custom-Attributes``, up to 1024 visible ASCII characters) reaches the
container verbatim, so the router puts the time it has left there: ``timeout-ms=<int>``, one
``key=value`` item of a ``;``-separated list (other items are ignored here). The model server
turns it into a ``time.monotonic()`` deadline on arrival: a relative budget, so the two
machines' clocks never need to agree. The local runtime path reads the same header, because
boto3 sends it there too.

The same channel carries the request's id (``request-id``), which the model server logs and
echoes, and the way back carries where the time went here (``queue-ms``, ``compute-ms``):
SageMaker returns a container's ``X-Amzn-SageMaker-Custom-Attributes`` response header to the
caller as ``CustomAttributes``, which the router folds into its ``Server-Timing``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

from serving.exceptions import InvalidRequest

CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
TIMEOUT_ATTRIBUTE = "timeout-ms"
REQUEST_ID_ATTRIBUTE = "request-id"
# The router's ids (functions/api/trace.py); anything else is not logged or echoed.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Past SageMaker's own 60 s limit on a container's answer, a deadline means nothing.
MAX_TIMEOUT_MS = 60_000


def custom_attributes(raw: str | None) -> dict[str, str]:
    """``"a=1; b=2"`` -> ``{"a": "1", "b": "2"}``; items without ``=`` are skipped."""
    items: dict[str, str] = {}
    for item in (raw or "").split(";"):
        key, sep, value = item.partition("=")
        if sep:
            items[key.strip().lower()] = value.strip()
    return items


def request_deadline(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The ``time.monotonic()`` by which the caller needs the answer, or None (no deadline)."""
    raw = custom_attributes(headers.get(CUSTOM_ATTRIBUTES)).get(TIMEOUT_ATTRIBUTE)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise InvalidRequest(
            f"{TIMEOUT_ATTRIBUTE} in the custom attributes must be whole milliseconds, "
            f"got {raw[:40]!r}"
        )
    timeout_ms = min(int(raw), MAX_TIMEOUT_MS)
    return (time.monotonic() if now is None else now) + timeout_ms / 1000.0


def request_id(headers: Mapping[str, str]) -> str | None:
    """The router's id for this request, when it sent one."""
    raw = custom_attributes(headers.get(CUSTOM_ATTRIBUTES)).get(REQUEST_ID_ATTRIBUTE, "")
    return raw if _REQUEST_ID.fullmatch(raw) else None


def reply_attributes(*, request_id: str | None, queued: float, computed: float) -> str:
    """The response's custom attributes: the id echoed, queue and compute time (ms)."""
    items = [f"queue-ms={queued * 1000:.3f}", f"compute-ms={computed * 1000:.3f}"]
    if request_id is not None:
        items.insert(0, f"{REQUEST_ID_ATTRIBUTE}={request_id}")
    return "; ".join(items)
