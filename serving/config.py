"""Server tuning, read once from the environment (``MODELWAY_*``, like the rest of modelway).

The server cannot import ``functions.core.settings`` (it ships alone), so it reads its few
knobs here with the standard library.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def usable_cpus() -> int:
    """CPUs this process may run on: container cpusets restrict affinity, not ``cpu_count``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def _env_int(name: str, default: int, *, minimum: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _env_float(name: str, default: float, *, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc
    if not value >= minimum:  # also rejects NaN
        raise ValueError(f"{name} must be >= {minimum}, got {raw!r}")
    return value


@dataclass(frozen=True)
class ServingConfig:
    # ONNX Runtime intra-op threads. One batch runs at a time per session (the batcher
    # serialises them), so a session may use every core it is allowed.
    ort_threads: int = field(default_factory=usable_cpus)
    # Dynamic batching: rows coalesced into one session.run, and how long the first request
    # of a batch may wait for company when company is coming (see ``batching``); a lone
    # client never waits. 0 ms still batches whatever queued up during the previous run.
    max_batch_size: int = 32
    max_queue_delay_ms: float = 2.0
    # Text models: run a batch's rows in groups of similar token length, each padded only to
    # its own longest, rather than all padded to the batch's longest (``processing.run``).
    length_buckets: bool = True
    # Requests waiting per version; beyond it the server answers 503 + Retry-After rather
    # than letting latency grow without bound.
    max_queue_size: int = 256
    # Request bodies above this are refused (413) before they are read into memory.
    max_request_bytes: int = 16 * 1024 * 1024
    # Version reported by the hosting contract when the manifest has none.
    model_version: str | None = None

    @classmethod
    def from_env(cls) -> ServingConfig:
        return cls(
            ort_threads=_env_int("MODELWAY_ORT_THREADS", usable_cpus(), minimum=1),
            max_batch_size=_env_int("MODELWAY_MAX_BATCH_SIZE", 32, minimum=1),
            max_queue_delay_ms=_env_float("MODELWAY_MAX_QUEUE_DELAY_MS", 2.0, minimum=0.0),
            max_queue_size=_env_int("MODELWAY_MAX_QUEUE_SIZE", 256, minimum=1),
            length_buckets=_env_int("MODELWAY_LENGTH_BUCKETS", 1, minimum=0) > 0,
            max_request_bytes=_env_int(
                "MODELWAY_MAX_REQUEST_BYTES", 16 * 1024 * 1024, minimum=1024
            ),
            model_version=os.environ.get("MODELWAY_MODEL_VERSION") or None,
        )
