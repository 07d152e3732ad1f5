"""What handling one object came to, as the event's summary reports it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Outcome:
    job_id: str | None
    action: str  # "finished" | "continued" | "duplicate" | "ignored"
    retryable: bool = False
    note: str | None = None
