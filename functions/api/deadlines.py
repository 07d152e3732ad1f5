"""Every inference has a deadline, and the model server hears it.

API Gateway gives an integration 29 s; after that the caller has its 504 whatever happens
behind. A client may ask for less with the ``X-Request-Timeout`` header (seconds, a decimal
number > 0, e.g. ``X-Request-Timeout: 2.5``); more than the limit is the limit. The clock starts
when API Gateway received the request (``requestContext.requestTimeEpoch`` of the Lambda event;
time spent in a cold start counts), or when the router did where there is no such event (the
local stack). The deadline travels to the model server with the invoke call (SageMaker's
``CustomAttributes``, see ``functions.core.runtime``), where a request still queued at its
deadline is dropped instead of computed; the caller then gets 504 ``model_timeout``.
"""

from __future__ import annotations

import math
import time
from typing import Any

from functions.core.exceptions import InvalidRequest

TIMEOUT_HEADER = "x-request-timeout"


def request_deadline(
    *, headers: Any, event: dict[str, Any] | None, limit_seconds: float, now: float | None = None
) -> float:
    """The deadline (epoch seconds) of a request with ``headers`` and, under Lambda, ``event``."""
    now = time.time() if now is None else now
    start = now
    context = (event or {}).get("requestContext") or {}
    received_ms = context.get("requestTimeEpoch")
    if isinstance(received_ms, int | float) and not isinstance(received_ms, bool):
        received = received_ms / 1000.0
        # A receipt time ahead of now (two machines' clocks) counts as now; one older than the
        # whole budget cannot come from API Gateway, which has given up by then: a replayed
        # event (``modelway invoke api events/...``), timed from now.
        if now - limit_seconds < received <= now:
            start = received
    budget = limit_seconds
    raw = headers.get(TIMEOUT_HEADER)
    if raw is not None:
        try:
            asked = float(raw)
        except ValueError:
            asked = math.nan
        if not (asked > 0 and math.isfinite(asked)):
            raise InvalidRequest(
                f"{TIMEOUT_HEADER} must be a number of seconds greater than 0, got {raw[:40]!r}"
            )
        budget = min(budget, asked)
    return start + budget
