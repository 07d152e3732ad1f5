"""Dynamic batching: concurrent requests for one version share one ``session.run``.

One worker thread per session takes the oldest waiting request, gathers every queued request
whose tensors differ from it only in the batch axis (axis 0), runs the stacked batch once and
hands each caller its own rows back. Requests with other non-batch dims or dtypes stay queued
in order for a later batch: they are never mixed. The queue is bounded; a full queue is an
``Overloaded`` error (503) at submit time, not unbounded latency.

Deadlines. A request may carry a deadline (the caller's, passed down from the router). One
whose deadline has passed when its batch forms is dropped with ``DeadlineExceeded`` (504)
instead of being computed: its caller has given up, and computing it would only delay the
requests behind it. One that cannot make its deadline from the start (the queue ahead of it,
at the measured time per batch, takes longer than it has) is refused at submit time with
``Overloaded`` (503 + Retry-After): under overload callers hear so at once, rather than waiting
to time out.

Waiting for company is adaptive, so a lone client never pays for batching: the first request
of a batch waits (at most ``max_queue_delay`` after it arrived, and only until the batch is
full) when there is evidence that company is coming, i.e. a request has been announced (the
server is reading or decoding it) but not submitted yet, or the previous batch coalesced
several requests (the version is under concurrent load). Otherwise it runs at once; requests
that arrive while it runs queue up and form the next batch anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving.exceptions import DeadlineExceeded, ModelFailure, Overloaded, ServingError

log = logging.getLogger("serving")

Tensors = dict[str, np.ndarray]
RunFn = Callable[[Tensors], Tensors]


@dataclass
class BatchStats:
    """What the worker did; read by tests and the benchmark to see batching happen."""

    runs: int = 0
    requests: int = 0
    rows: int = 0
    # requests coalesced per session.run -> how many runs had that many.
    requests_per_run: Counter[int] = field(default_factory=Counter)
    # Requests dropped because their deadline passed in the queue (never computed), and
    # requests refused at submit because they could not have made theirs.
    expired: int = 0
    refused: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "requests": self.requests,
            "rows": self.rows,
            "requests_per_run": dict(sorted(self.requests_per_run.items())),
            "expired": self.expired,
            "refused": self.refused,
        }


@dataclass
class RequestTiming:
    """Where one request's time went here (seconds), set before its future resolves: the
    router folds them into its ``Server-Timing`` (``queue``, ``compute``)."""

    queued: float = 0.0  # from submit until its batch started
    computed: float = 0.0  # its batch's run


@dataclass
class _Pending:
    inputs: Tensors
    rows: int
    # Everything but the batch axis: only requests with equal keys are stacked together.
    key: tuple[tuple[str, str, tuple[int, ...]], ...]
    future: Future[Tensors]
    arrived: float
    deadline: float | None = None  # time.monotonic(); None: none
    timing: RequestTiming | None = None


def _batch_key(inputs: Mapping[str, np.ndarray]) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
    return tuple((name, arr.dtype.str, arr.shape[1:]) for name, arr in sorted(inputs.items()))


class DynamicBatcher:
    def __init__(
        self,
        *,
        run: RunFn,
        name: str,
        max_batch_size: int = 32,
        max_queue_delay_s: float = 0.002,
        max_queue_size: int = 256,
        batchable: bool = True,
    ) -> None:
        self._run = run
        self._name = name
        # A model whose axis 0 is not a free batch axis still gets one worker and the
        # bounded queue, but runs each request alone.
        self._max_rows = max_batch_size if batchable else 1
        self._delay = max_queue_delay_s if batchable and max_batch_size > 1 else 0.0
        self._max_queue = max_queue_size
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._closed = False
        # Requests the server has started handling but not submitted yet.
        self._incoming = 0
        self._under_load = False
        # Seconds per session.run, smoothed: what a place in the queue costs.
        self._run_seconds = 0.0
        self.stats = BatchStats()
        self._thread = threading.Thread(target=self._work, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def announce(self) -> None:
        """A request is on its way (being read/decoded): a waiting batch may wait for it.
        Follow with ``submit(..., announced=True)`` or, if it fails first, ``withdraw()``."""
        with self._cond:
            self._incoming += 1

    def withdraw(self) -> None:
        with self._cond:
            self._incoming = max(0, self._incoming - 1)
            self._cond.notify()

    def submit(
        self,
        inputs: Tensors,
        *,
        announced: bool = False,
        deadline: float | None = None,
        timing: RequestTiming | None = None,
    ) -> Future[Tensors]:
        """Queue one request (all inputs share axis 0); the future resolves to all outputs
        for its rows, or to a ``ServingError``. ``deadline`` (``time.monotonic()``): see the
        module's docstring."""
        rows = int(next(iter(inputs.values())).shape[0]) if inputs else 1
        now = time.monotonic()
        pending = _Pending(
            inputs=inputs,
            rows=rows,
            key=_batch_key(inputs),
            future=Future(),
            arrived=now,
            deadline=deadline,
            timing=timing,
        )
        with self._cond:
            if announced:
                self._incoming = max(0, self._incoming - 1)
            if self._closed:
                raise Overloaded(f"{self._name} is shutting down")
            if len(self._queue) >= self._max_queue:
                self.stats.refused += 1
                raise Overloaded(f"{self._name} has {len(self._queue)} requests waiting")
            if deadline is not None:
                if deadline <= now:
                    self.stats.expired += 1
                    raise DeadlineExceeded("the request's deadline passed before it was queued")
                wait = self._expected_wait(rows)
                # An empty queue always gets its chance: a short deadline is not overload.
                if self._queue and wait > deadline - now:
                    self.stats.refused += 1
                    raise Overloaded(
                        f"{self._name} is overloaded: the {len(self._queue)} requests waiting "
                        f"take about {wait:.2f} s, longer than the request's "
                        f"{deadline - now:.2f} s left"
                    )
            self._queue.append(pending)
            self._cond.notify()
        return pending.future

    def _expected_wait(self, rows: int) -> float:
        """Seconds until a request of ``rows`` rows submitted now would be computed: the
        batches queued ahead of it plus its own, at the measured time per batch. Caller holds
        the lock."""
        if self._run_seconds <= 0.0:
            return 0.0
        queued_rows = sum(p.rows for p in self._queue) + rows
        batches = -(-queued_rows // self._max_rows)
        return batches * self._run_seconds

    def close(self, *, timeout: float | None = 30.0) -> None:
        """Stop accepting work; what is already queued still runs. Waits up to ``timeout``
        seconds for that (None: do not wait)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if timeout is not None and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- worker ------------------------------------------------------------------------

    def _take_matching(self, batch: list[_Pending], rows: int) -> tuple[int, bool]:
        """Move queued requests that stack with ``batch[0]`` into ``batch``, oldest first,
        until the row budget is spent. Returns the rows now in the batch and whether it is
        closed (the next stackable request does not fit). Caller holds the lock."""
        key = batch[0].key
        kept: deque[_Pending] = deque()
        full = False
        while self._queue:
            item = self._queue.popleft()
            if item.key == key and rows + item.rows <= self._max_rows:
                batch.append(item)
                rows += item.rows
            else:
                kept.append(item)
                if item.key == key:  # it waits for the next batch; later ones keep order
                    full = True
                    break
        kept.extend(self._queue)
        self._queue = kept
        return rows, full or rows >= self._max_rows

    def _next_batch(self) -> list[_Pending] | None:
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            batch = [self._queue.popleft()]
            rows, full = self._take_matching(batch, batch[0].rows)
            deadline = batch[0].arrived + self._delay
            while not full and not self._closed and (self._incoming or self._under_load):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
                rows, full = self._take_matching(batch, rows)
            self._under_load = len(batch) > 1
            return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            # A caller that went away (client disconnect cancels the future, or its deadline
            # passed while it waited) costs nothing.
            now = time.monotonic()
            live = []
            for p in batch:
                expired = p.deadline is not None and p.deadline <= now
                if not p.future.set_running_or_notify_cancel():
                    # Cancelled: by a disconnect, or by the server at the deadline.
                    self.stats.expired += expired
                elif expired:
                    self.stats.expired += 1
                    p.future.set_exception(
                        DeadlineExceeded(
                            f"the request's deadline passed after {now - p.arrived:.3f} s in "
                            "the queue; it was not computed"
                        )
                    )
                else:
                    live.append(p)
            if live:
                self._execute(live)

    def _call_run(self, inputs: Tensors, *, batch: list[_Pending], rows: int) -> Tensors:
        started = time.monotonic()
        requests = len(batch)
        try:
            return self._run(inputs)
        finally:
            took = time.monotonic() - started
            for p in batch:
                if p.timing is not None:
                    p.timing.queued, p.timing.computed = started - p.arrived, took
            self._run_seconds = (
                took if self._run_seconds <= 0.0 else 0.8 * self._run_seconds + 0.2 * took
            )
            self.stats.runs += 1
            self.stats.requests += requests
            self.stats.rows += rows
            self.stats.requests_per_run[requests] += 1

    def _run_alone(self, pending: _Pending) -> None:
        try:
            outputs = self._call_run(pending.inputs, batch=[pending], rows=pending.rows)
        except ServingError as exc:
            pending.future.set_exception(exc)
        except Exception as exc:
            log.exception("%s: session.run failed", self._name)
            pending.future.set_exception(ModelFailure(f"inference failed: {exc}"))
        else:
            pending.future.set_result(outputs)

    def _execute(self, batch: list[_Pending]) -> None:
        if len(batch) == 1:
            self._run_alone(batch[0])
            return
        total = sum(p.rows for p in batch)
        try:
            inputs = {
                name: np.concatenate([p.inputs[name] for p in batch], axis=0)
                for name in batch[0].inputs
            }
            outputs = self._call_run(inputs, batch=batch, rows=total)
            for name, arr in outputs.items():
                if arr.ndim == 0 or arr.shape[0] != total:
                    raise ModelFailure(
                        f"output {name!r} has shape {list(arr.shape)}: no batch axis to split "
                        f"{total} rows along"
                    )
        except Exception:
            # One request's bad values (say, an index out of range) must not fail the others
            # it happened to be batched with: run each alone so only the culprit fails.
            log.warning(
                "%s: a batch of %d requests failed; running them one by one",
                self._name,
                len(batch),
                exc_info=True,
            )
            for p in batch:
                self._run_alone(p)
            return
        start = 0
        for p in batch:
            end = start + p.rows
            p.future.set_result({name: arr[start:end] for name, arr in outputs.items()})
            start = end
