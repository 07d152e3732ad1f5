"""The sample events in ``events/`` (what Lambda, S3 and EventBridge deliver, the same files
``modelway invoke`` takes): the one place tests find them, as Powertools' ``load_event`` does
for its own event files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"


def sample_path(name: str) -> Path:
    """The file of sample event ``name`` (``"authorizer-request.json"``); it must exist."""
    path = EVENTS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"no sample event {name!r} in {EVENTS_DIR}")
    return path


def sample_event(name: str) -> dict[str, Any]:
    """A fresh copy of sample event ``name``, free to change."""
    event: dict[str, Any] = json.loads(sample_path(name).read_text())
    return event
