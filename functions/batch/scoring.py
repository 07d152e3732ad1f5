"""Sending micro-batches to the model: retries with backoff, and bisection of refused batches.

- The endpoint failing (``UpstreamError``, ``UpstreamUnavailable``, ``UpstreamTimeout``) is
  retried with exponential backoff, ``batch_max_attempts`` tries in all; then ``EndpointFailed``
  ends the job. A retry that would run past the time kept for checkpointing raises
  ``OutOfTime`` instead, so the job goes on in a fresh invocation rather than failing.
- The model refusing a batch as bad input (a 4xx passed through as ``InvalidInput``, or 413)
  means some record got past validation but not past the model: the batch is split in halves
  until the records at fault are alone, and only those go to the error file.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from functions.batch.batching import MicroBatch, split_outputs
from functions.core.exceptions import (
    InvalidInput,
    ModelwayError,
    PayloadTooLarge,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from functions.core.runtime.base import JSON, RuntimeClient

_RETRYABLE = (UpstreamError, UpstreamUnavailable, UpstreamTimeout)
_REFUSED = (InvalidInput, PayloadTooLarge)


class EndpointFailed(ModelwayError):
    """The endpoint kept failing after every retry: the job fails."""

    status = 502
    code = "endpoint_failed"


class OutOfTime(Exception):
    """Not enough of the invocation left to try again and still checkpoint."""


@dataclass(frozen=True)
class Scored:
    record: int
    outputs: list[dict[str, Any]]
    id: Any = None


@dataclass(frozen=True)
class Refused:
    record: int
    reason: str
    code: str


class Deadline:
    """The time left in this invocation (Lambda's ``context``), less a margin; none locally."""

    def __init__(self, *, context: Any, margin_seconds: float) -> None:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        self._remaining_ms: Callable[[], int] | None = remaining if callable(remaining) else None
        self.margin_seconds = margin_seconds
        if self._remaining_ms is not None:
            # A function configured with a short timeout still gets three quarters of it.
            self.margin_seconds = min(margin_seconds, self._remaining_ms() / 1000.0 / 4)

    @property
    def bounded(self) -> bool:
        return self._remaining_ms is not None

    def seconds_left(self) -> float | None:
        """Seconds until the margin is reached (negative past it); None without a deadline."""
        if self._remaining_ms is None:
            return None
        return self._remaining_ms() / 1000.0 - self.margin_seconds

    def expired(self) -> bool:
        left = self.seconds_left()
        return left is not None and left <= 0


@dataclass
class Scorer:
    runtime: RuntimeClient
    endpoint: str
    variant: str | None
    deadline: Deadline
    max_attempts: int
    backoff_base: float
    backoff_max: float
    sleep: Callable[[float], None] = time.sleep
    requests: int = 0  # requests sent, retries included
    retries: int = 0

    def score(self, batch: MicroBatch) -> list[Scored | Refused]:
        """Results for every sample of ``batch``, in its order."""
        return self._score(batch, slice(0, len(batch)))

    def _score(self, batch: MicroBatch, window: slice) -> list[Scored | Refused]:
        samples = batch.samples[window]
        try:
            body = self._invoke(batch.body(window))
        except _REFUSED as exc:
            if len(samples) == 1:
                return [Refused(record=samples[0].record, reason=exc.message, code=exc.code)]
            middle = window.start + len(samples) // 2
            return [
                *self._score(batch, slice(window.start, middle)),
                *self._score(batch, slice(middle, window.stop)),
            ]
        outputs, _ = split_outputs(body=body, count=len(samples), batched=batch.batched)
        return [
            Scored(record=sample.record, outputs=result, id=sample.id)
            for sample, result in zip(samples, outputs, strict=True)
        ]

    def _invoke(self, body: bytes) -> bytes:
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            try:
                response = self.runtime.invoke(
                    endpoint=self.endpoint, variant=self.variant, body=body, content_type=JSON
                )
                return response.body
            except _RETRYABLE as exc:
                if attempt >= self.max_attempts:
                    tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
                    raise EndpointFailed(
                        f"the model endpoint kept failing ({tries}): {exc.message}"
                    ) from exc
                delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)  # jitter: retries of many jobs spread out
                left = self.deadline.seconds_left()
                if left is not None and left <= delay:
                    raise OutOfTime() from exc
                self.retries += 1
                self.sleep(delay)
