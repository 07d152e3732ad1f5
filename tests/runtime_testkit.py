"""The one fake ``RuntimeClient`` (what the router and batch send to a model server): it records
each call and answers like the model server would, or fails the way a test asks. The router
tests and the batch tests configure it where they differ (which model answers, which calls
fail) rather than keeping a copy each."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from functions.core.exceptions import ModelwayError, UpstreamUnavailable
from functions.core.runtime.base import JSON, RuntimeResponse


@dataclass
class Call:
    """One ``invoke``, as the client received it."""

    endpoint: str
    variant: str | None
    body: bytes
    content_type: str
    deadline: float | None = None
    request_id: str | None = None

    @property
    def document(self) -> Any:
        """The JSON request body (a v2 inference request)."""
        return json.loads(self.body)


def digit_label(call: Call) -> RuntimeResponse:
    """The digits demo's answer (label 3) from the variant the call was sent to."""
    document = {
        "model_name": "digits",
        "model_version": (call.variant or "v0")[1:],
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [1], "data": [3]}],
    }
    return RuntimeResponse(
        body=json.dumps(document).encode(), content_type=JSON, variant=call.variant
    )


@dataclass
class FakeRuntime:
    """A ``RuntimeClient`` fake. Each call is recorded, then: ``error`` (an exception) fails
    every call; ``fail_first`` / ``fail_from_call`` (1-based) fail those calls with
    ``failure("endpoint is down")``; otherwise ``answer`` says what the model server returns
    (the digits demo's label by default)."""

    calls: list[Call] = field(default_factory=list)
    error: Exception | None = None
    answer: Callable[[Call], RuntimeResponse] = digit_label
    fail_first: int = 0
    fail_from_call: int | None = None
    failure: Callable[[str], ModelwayError] = UpstreamUnavailable

    def invoke(
        self,
        *,
        endpoint: str,
        variant: str | None,
        body: bytes,
        content_type: str,
        deadline: float | None = None,
        request_id: str | None = None,
    ) -> RuntimeResponse:
        call = Call(
            endpoint=endpoint,
            variant=variant,
            body=body,
            content_type=content_type,
            deadline=deadline,
            request_id=request_id,
        )
        self.calls.append(call)
        number = len(self.calls)
        if self.error is not None:
            raise self.error
        if number <= self.fail_first or (
            self.fail_from_call is not None and number >= self.fail_from_call
        ):
            raise self.failure("endpoint is down")
        return self.answer(call)
