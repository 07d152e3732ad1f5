"""A request's deadline, as the router passes it: SageMaker's ``CustomAttributes``.

SageMaker forwards only the headers its ``InvokeEndpoint`` API defines; ``CustomAttributes``
(``X-Amzn-SageMaker-Custom-Attributes``, up to 1024 visible ASCII characters) reaches the
container verbatim, so the router puts the time it has left there: ``timeout-ms=<int>``, one
``key=value`` item of a ``;``-separated list (other items are ignored here). The model server
turns it into a ``time.monotonic()`` deadline on arrival: a relative budget, so the two
machines' clocks never need to agree. The local runtime path reads the same header, because
boto3 sends it there too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from serving.errors import InvalidRequest

CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
TIMEOUT_ATTRIBUTE = "timeout-ms"
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
