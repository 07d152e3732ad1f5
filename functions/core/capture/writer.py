"""The capture writer: records in, JSON Lines objects out, batched, off the request path.

``submit`` never blocks and never raises: it puts the records (as their JSON lines) on a
queue bounded in count and in bytes (buffered batches included) and returns; past either
bound the records are dropped and counted: a capture must never slow, or starve of memory,
the requests it describes. One daemon thread drains the queue, groups records by model, alias and
day, and writes a group as one object (``captures/{model}/{alias}/{day}/{time}-{id}.jsonl``)
when it holds ``max_records`` records or its oldest is ``max_age_seconds`` old. A sink that
fails (S3 down) loses that batch, counted and logged, and the writer carries on.

In a Lambda sandbox the thread runs only while the sandbox is thawed, i.e. during later
invocations: a busy router writes continuously, an idle one keeps at most one batch's worth
in memory until its next request, and loses it if the sandbox is reclaimed first. That is the
price of never holding an invocation past its response; the ``dropped`` counters say when it
is paid.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from functions.core.capture.records import PENDING_SUFFIX, CaptureRecord, capture_key

logger = logging.getLogger("modelway.capture")

Sink = Callable[[str, bytes], object]  # (key, body) -> anything; raises on failure
# One object holds at most about this much (a group is written once it is reached).
MAX_OBJECT_BYTES = 16 * 1024 * 1024


@dataclass
class WriterStats:
    submitted: int = 0
    written: int = 0
    objects: int = 0
    dropped_full: int = 0  # the queue was full
    dropped_failed: int = 0  # the sink failed


@dataclass
class _Group:
    started: float
    lines: list[bytes] = field(default_factory=list)
    size: int = 0


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


class CaptureWriter:
    def __init__(
        self,
        *,
        sink: Sink,
        max_records: int = 500,
        max_age_seconds: float = 2.0,
        max_queue: int = 20_000,
        max_queue_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._max_records = max_records
        self._max_age = max_age_seconds
        # Records wait encoded (their JSON line), bounded in count and in bytes: a burst of
        # large requests is dropped, not held until the process runs out of memory.
        self._queue: queue.Queue[tuple[tuple[str, str, str, bool], bytes] | _Flush] = queue.Queue(
            maxsize=max_queue
        )
        self._max_bytes = max_queue_bytes
        self._queued_bytes = 0
        self._bytes_lock = threading.Lock()
        self._clock = clock
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.stats = WriterStats()

    # The request side --------------------------------------------------------------------
    def submit(self, records: Iterable[CaptureRecord]) -> int:
        """Queue ``records`` for writing; returns how many were queued (the rest dropped)."""
        self._ensure_thread()
        queued = 0
        for record in records:
            line = record.to_line()
            with self._bytes_lock:
                fits = self._queued_bytes + len(line) <= self._max_bytes
                if fits:
                    self._queued_bytes += len(line)
            if not fits:
                self.stats.dropped_full += 1
                continue
            # Records waiting for a shadow call travel in their own objects, whose creation
            # starts that call on AWS (functions.batch.shadow).
            key = (record.model, record.alias, record.at[:10], record.pending_shadow is not None)
            try:
                self._queue.put_nowait((key, line))
            except queue.Full:
                self._release(len(line))
                self.stats.dropped_full += 1
                continue
            queued += 1
        self.stats.submitted += queued
        return queued

    def _release(self, size: int) -> None:
        with self._bytes_lock:
            self._queued_bytes -= size

    def flush(self, *, timeout: float = 10.0) -> bool:
        """Write everything submitted so far (CLI runs, tests, shutdown); True when done."""
        self._ensure_thread()
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="modelway-capture-writer", daemon=True
                )
                self._thread.start()

    # The writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        groups: dict[tuple[str, str, str, bool], _Group] = {}
        while True:
            wait = self._next_deadline(groups)
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if isinstance(item, _Flush):
                self._write_all(groups, force=True)
                item.done.set()
                continue
            if item is not None:
                key, line = item
                group = groups.get(key)
                if group is None:
                    group = groups[key] = _Group(started=self._clock())
                group.lines.append(line)
                group.size += len(line)
            self._write_all(groups, force=False)

    def _next_deadline(self, groups: dict[tuple[str, str, str, bool], _Group]) -> float | None:
        if not groups:
            return None  # sleep until a record (or a flush) arrives
        oldest = min(g.started for g in groups.values())
        return max(0.0, oldest + self._max_age - self._clock())

    def _write_all(self, groups: dict[tuple[str, str, str, bool], _Group], *, force: bool) -> None:
        now = self._clock()
        for key in list(groups):
            group = groups[key]
            if (
                force
                or len(group.lines) >= self._max_records
                or group.size >= MAX_OBJECT_BYTES
                or now - group.started >= self._max_age
            ):
                del groups[key]
                self._write(key, group.lines)
                # Queued bytes count until written, buffered ones included.
                self._release(group.size)

    def _write(self, key: tuple[str, str, str, bool], lines: list[bytes]) -> None:
        model, alias, day, pending = key
        suffix = PENDING_SUFFIX if pending else ".jsonl"
        name = f"{time.strftime('%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:12]}{suffix}"
        object_key = capture_key(model=model, alias=alias, at=day, name=name)
        try:
            self._sink(object_key, b"".join(lines))
        except Exception:  # a capture must never take the router down; counted and logged
            self.stats.dropped_failed += len(lines)
            logger.exception("could not write %d capture record(s) to %s", len(lines), object_key)
            return
        self.stats.written += len(lines)
        self.stats.objects += 1
