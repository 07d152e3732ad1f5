"""The capture writer: records in, JSON Lines objects out, batched, off the request path.

``submit`` never blocks and never raises: it puts the records on a bounded queue and returns
(when the queue is full the records are dropped and counted; a capture must never slow the
request it describes). One daemon thread drains the queue, groups records by model, alias and
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._max_records = max_records
        self._max_age = max_age_seconds
        self._queue: queue.Queue[CaptureRecord | _Flush] = queue.Queue(maxsize=max_queue)
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
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                self.stats.dropped_full += 1
                continue
            queued += 1
        self.stats.submitted += queued
        return queued

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
                # Records waiting for a shadow call travel in their own objects, whose
                # creation starts that call on AWS (functions.batch.shadow).
                key = (item.model, item.alias, item.at[:10], item.pending_shadow is not None)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = _Group(started=self._clock())
                group.lines.append(item.to_line())
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
                or now - group.started >= self._max_age
            ):
                del groups[key]
                self._write(key, group.lines)

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
