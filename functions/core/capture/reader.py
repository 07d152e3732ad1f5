"""Reading captures back: the objects under ``captures/{model}/{alias}/`` since a time."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.core.artifacts.base import ArtifactStore
from functions.core.capture.exceptions import InvalidCapture
from functions.core.capture.records import CaptureRecord, prefix_for
from functions.core.registry.base import Registry
from functions.core.registry.exceptions import VersionNotFound

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str | None, *, now: datetime | None = None) -> str | None:
    """``--since``: an ISO date or time (``2026-12-03``, ``2026-12-03T18:00``) or an age
    (``90s``, ``30m``, ``24h``, ``7d``), as the ISO-8601 UTC text capture times sort against."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    match = _RELATIVE.match(value)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        moment = (now or datetime.now(UTC)) - delta
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidCapture(
                f"--since {value!r} is neither an ISO date/time nor an age like 24h or 7d"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read_captures(
    store: ArtifactStore, *, model: str, alias: str, since: str | None = None
) -> Iterator[CaptureRecord]:
    """Every record captured for the alias at or after ``since`` (all when None). Only the
    day folders from ``since``'s day on are read."""
    prefix = prefix_for(model=model, alias=alias)
    day = since[:10] if since else None
    for key in sorted(store.list_objects(prefix=prefix)):
        folder = key[len(prefix) :].split("/", 1)[0]
        if day is not None and folder < day:
            continue
        yield from read_capture_object(store, key=key, since=since)


def read_capture_object(
    store: ArtifactStore, *, key: str, since: str | None = None
) -> Iterator[CaptureRecord]:
    with store.open_object(key=key) as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                data: Any = json.loads(line)
                record = CaptureRecord.from_dict(data)
            except (ValueError, TypeError) as exc:
                raise InvalidCapture(
                    f"{key} line {number} is not a capture record: {exc}"
                ) from None
            if since is None or record.at >= since:
                yield record


def manifests_for(registry: Registry, *, model: str, versions: set[int]) -> dict[int, Any]:
    """The manifests of the versions a report names (a version deleted since is left out)."""
    found = {}
    for version in sorted(versions):
        try:
            found[version] = registry.get_version(model=model, version=version).manifest
        except VersionNotFound:
            continue
    return found
