"""The router's hook after an answer is ready: request capture and shadow traffic.

``Tap.after`` runs on the request's thread once the caller's answer exists (or its error),
decides by the alias's rates whether this request is captured and whether it is shadowed,
and, when it is either, hands the work to the tap's own worker threads through a bounded
queue: ``after`` does a dictionary lookup, two random draws and one ``put_nowait``. The
caller's status, body and latency never depend on what happens next — a full queue drops
the sample (counted), a shadow that fails or times out is recorded as a failed shadow
answer, and nothing raised here reaches the request.

On the workers: the primary record is built (bodies decoded, sensitive inputs redacted per
the manifest), the shadow version is asked through the same ``InferenceService.infer`` the
caller's request took (validation included, with its own deadline), and both records go to
the capture writer. That is how it runs locally. In a Lambda sandbox, which is frozen once
its response is sent, a shadow call here could be frozen mid-flight (its latency with it), so
there the tap only captures the request marked with its shadow version (``defer_shadow``),
in an object whose creation has the batch function make the call (``functions.batch.shadow``);
the capture writer's thread runs while the sandbox is thawed (``functions.core.capture.writer``)
and never extends an invocation.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from functions.api.services.inference import InferenceResult, InferenceService, Target
from functions.api.services.lookup import CachedRegistryReads
from functions.core.capture.records import (
    PRIMARY,
    SHADOW,
    CaptureRecord,
    redact_inputs,
    request_tensors,
    response_tensors,
)
from functions.core.capture.writer import CaptureWriter
from functions.core.clock import utc_now
from functions.core.exceptions import ModelwayError
from functions.core.oip import header_length
from functions.core.registry.base import Alias, ModelVersion

logger = logging.getLogger("modelway.capture")

ServiceFactory = Callable[[], InferenceService]


@dataclass(frozen=True)
class Observed:
    """What the tap needs of one answered request (built on the request's thread)."""

    target: Target
    alias: Alias
    capture: bool
    shadow: int | None  # the shadow version to ask, when sampled
    body: bytes
    content_type: str | None
    json_header_length: str | None
    request_id: str
    key_id: str | None
    at: str
    latency_ms: float
    result: InferenceResult | None
    error: ModelwayError | None


class _Drain:
    """Put once per worker: each worker that takes it waits at the barrier (so no worker
    takes two), and when all have, everything queued before it is done."""

    def __init__(self, *, workers: int) -> None:
        self.done = threading.Event()
        self._barrier = threading.Barrier(workers, action=self.done.set)

    def reached(self) -> None:
        # Broken only when drain() gave up waiting; the workers carry on.
        with contextlib.suppress(threading.BrokenBarrierError):
            self._barrier.wait(timeout=60)


@dataclass
class TapStats:
    sampled: int = 0
    dropped: int = 0  # the tap's queue was full
    shadowed: int = 0
    shadow_failed: int = 0
    failed: int = 0  # building a record raised (a bug, logged)
    extra: dict[str, int] = field(default_factory=dict)


class Tap:
    def __init__(
        self,
        *,
        writer: CaptureWriter,
        service: ServiceFactory,
        rng: random.Random,
        shadow_timeout_seconds: float = 10.0,
        workers: int = 2,
        max_pending: int = 1000,
        max_pending_bytes: int = 64 * 1024 * 1024,
        defer_shadow: bool = False,
    ) -> None:
        """``defer_shadow`` (AWS): do not ask the shadow here; capture the request marked
        with its shadow version, in an object the batch function shadows when it is
        created (``functions.batch.shadow``)."""
        self.writer = writer
        self._defer_shadow = defer_shadow
        # Queued requests hold their bodies: bounded in bytes as well as in count.
        self._max_bytes = max_pending_bytes
        self._pending_bytes = 0
        self._bytes_lock = threading.Lock()
        self._service = service
        self._rng = rng
        self._shadow_timeout = shadow_timeout_seconds
        self._queue: queue.Queue[Observed | _Drain] = queue.Queue(maxsize=max_pending)
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.stats = TapStats()

    # The request's side --------------------------------------------------------------------
    def after(
        self,
        *,
        reads: CachedRegistryReads,
        target: Target,
        body: bytes,
        content_type: str | None,
        json_header_length: str | None,
        request_id: str | None,
        key_id: str | None,
        latency_ms: float,
        result: InferenceResult | None = None,
        error: ModelwayError | None = None,
    ) -> bool:
        """Sample the request and queue its capture/shadow work; True when queued. Never
        raises and never waits."""
        try:
            return self._after(
                reads=reads,
                target=target,
                body=body,
                content_type=content_type,
                json_header_length=json_header_length,
                request_id=request_id,
                key_id=key_id,
                latency_ms=latency_ms,
                result=result,
                error=error,
            )
        except Exception:  # the caller's answer is ready: nothing here may change it
            self.stats.failed += 1
            logger.exception("sampling request %s for capture failed", request_id)
            return False

    def _after(
        self,
        *,
        reads: CachedRegistryReads,
        target: Target,
        body: bytes,
        content_type: str | None,
        json_header_length: str | None,
        request_id: str | None,
        key_id: str | None,
        latency_ms: float,
        result: InferenceResult | None,
        error: ModelwayError | None,
    ) -> bool:
        if error is not None and error.status < 500:
            return False  # the caller's mistake (a bad tensor), not the version's failure
        if target.alias is None:
            return False  # a pinned version: captures are per alias
        try:
            alias = reads.get_alias(model=target.version.model, alias=target.alias)
        except ModelwayError:
            return False
        if not (alias.capture_percent or (alias.shadow_version and alias.shadow_percent)):
            return False
        shadow = None
        if (
            result is not None
            and alias.shadow_version is not None
            and alias.shadow_version != target.version.version
            and self._rng.random() * 100 < alias.shadow_percent
        ):
            shadow = alias.shadow_version
        capture = shadow is not None or self._rng.random() * 100 < alias.capture_percent
        if not capture:
            return False
        observed = Observed(
            target=target,
            alias=alias,
            capture=capture,
            shadow=shadow,
            body=body,
            content_type=content_type,
            json_header_length=json_header_length,
            request_id=request_id or f"tap-{time.time_ns()}",
            key_id=key_id,
            at=utc_now(),
            latency_ms=latency_ms,
            result=result,
            error=error,
        )
        self._ensure_workers()
        with self._bytes_lock:
            fits = self._pending_bytes + len(body) <= self._max_bytes
            if fits:
                self._pending_bytes += len(body)
        if not fits:
            self.stats.dropped += 1
            return False
        try:
            self._queue.put_nowait(observed)
        except queue.Full:
            self._release(len(body))
            self.stats.dropped += 1
            return False
        self.stats.sampled += 1
        return True

    def drain(self, *, timeout: float = 30.0) -> bool:
        """Finish every queued request's work and write its records (tests, CLI, benchmarks)."""
        self._ensure_workers()
        deadline = time.monotonic() + timeout
        marker = _Drain(workers=self._workers)
        for _ in range(self._workers):
            self._queue.put(marker, timeout=timeout)
        ok = marker.done.wait(max(0.0, deadline - time.monotonic()))
        return ok and self.writer.flush(timeout=max(0.1, deadline - time.monotonic()))

    def _release(self, size: int) -> None:
        with self._bytes_lock:
            self._pending_bytes -= size

    def _ensure_workers(self) -> None:
        if len(self._threads) == self._workers and all(t.is_alive() for t in self._threads):
            return
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            while len(self._threads) < self._workers:
                thread = threading.Thread(
                    target=self._run, name=f"modelway-tap-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    # The workers' side ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, _Drain):
                item.reached()
                continue
            try:
                self.writer.submit(self._records(item))
            except Exception:  # a bug here must not stop the tap; counted and logged
                self.stats.failed += 1
                logger.exception("capture of request %s failed", item.request_id)
            finally:
                self._release(len(item.body))

    def _records(self, item: Observed) -> list[CaptureRecord]:
        version = item.target.version
        primary = self._record(
            item,
            version=version,
            role=PRIMARY,
            latency_ms=item.latency_ms,
            result=item.result,
            error=item.error,
            with_inputs=True,
        )
        records = [primary]
        if item.shadow is not None and self._defer_shadow:
            if primary.inputs and primary.redacted is None:
                primary.extra["shadow_version"] = item.shadow
            else:
                # Inputs the manifest keeps out of captures cannot be sent on later.
                primary.extra["shadow_skipped"] = "inputs_not_captured"
        elif item.shadow is not None:
            records.append(self._shadow(item))
        return records

    def _shadow(self, item: Observed) -> CaptureRecord:
        model = item.target.version.model
        service = self._service()
        started = time.perf_counter()
        result: InferenceResult | None = None
        error: ModelwayError | None = None
        try:
            shadow = service.pinned(model=model, version=item.shadow or 0)
            result = service.infer(
                target=Target(version=shadow.version, alias=item.target.alias),
                body=item.body,
                json_header_length=item.json_header_length,
                content_type=item.content_type,
                deadline=time.time() + self._shadow_timeout,
                request_id=f"{item.request_id}:shadow",
            )
        except ModelwayError as exc:
            error = exc
        except Exception as exc:  # the shadow's own bug is its failure, not the router's
            error = ModelwayError(f"{type(exc).__name__}: {exc}")
        latency_ms = (time.perf_counter() - started) * 1000
        self.stats.shadowed += 1
        if error is not None:
            self.stats.shadow_failed += 1
        return self._record(
            item,
            version=None,
            version_number=item.shadow,
            role=SHADOW,
            latency_ms=latency_ms,
            result=result,
            error=error,
            with_inputs=False,
        )

    def _record(
        self,
        item: Observed,
        *,
        version: ModelVersion | None,
        role: str,
        latency_ms: float,
        result: InferenceResult | None,
        error: ModelwayError | None,
        with_inputs: bool,
        version_number: int | None = None,
    ) -> CaptureRecord:
        inputs = redacted = None
        if with_inputs and version is not None:
            json_length = header_length(
                content_type=item.content_type, header=item.json_header_length
            )
            try:
                tensors = request_tensors(item.body, json_length=json_length)
            except ModelwayError:
                tensors = []
            inputs, redacted = redact_inputs(tensors, policy=version.manifest.get("capture"))
        outputs = None
        if result is not None:
            try:
                outputs = response_tensors(result.body, json_length=result.json_header_size)
            except ModelwayError:
                outputs = None
        number = version.version if version is not None else version_number
        if result is not None:
            number = result.version
        return CaptureRecord(
            request_id=item.request_id,
            at=item.at,
            model=item.target.version.model,
            alias=item.alias.alias,
            version=int(number or 0),
            role=role,
            status=200 if error is None else error.status,
            latency_ms=round(latency_ms, 3),
            key_id=item.key_id,
            code=None if error is None else error.code,
            inputs=inputs,
            outputs=outputs,
            redacted=redacted,
        )
