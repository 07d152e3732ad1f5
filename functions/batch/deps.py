"""What handling one object is given: the settings and clients (``BatchDeps``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from functions.core.artifacts.base import ArtifactStore
from functions.core.registry.base import Registry
from functions.core.runtime.base import RuntimeClient
from functions.core.settings import Settings


@dataclass
class BatchDeps:
    settings: Settings
    registry: Registry
    store: ArtifactStore
    runtime: RuntimeClient
    sleep: Callable[[float], None] = time.sleep
    # Sends an event to a fresh invocation of this function (async). None: go on in-process,
    # without a deadline (the local stack).
    continue_later: Callable[[dict[str, Any]], None] | None = None
    now: Callable[[], float] = time.time
