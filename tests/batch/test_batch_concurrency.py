"""Deliveries racing for one job, on real threads: taking a job over is a compare-and-set, so
of the deliveries that find a resumable job at the same moment exactly one runs it; and a
runner that lost its job stops instead of writing over the new owner's progress."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from functions.batch.dispatch import RetryableBatchFailure
from functions.batch.events import job_id_for, parse_notification
from tests.aws_testkit import serialize_moto
from tests.batch.batch_testkit import FakeContext, Stack, jsonl, records_sent, row, rows_of

PLENTY_MS = 600_000


class PausingRegistry:
    """The stack's registry, but each thread's first call of ``method`` waits at ``barrier``
    once it returned: every racer has read the job before any of them acts on it."""

    def __init__(self, real: Any, *, method: str, barrier: threading.Barrier) -> None:
        self._real = real
        self._method = method
        self._barrier = barrier
        self._seen = threading.local()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name != self._method:
            return attr

        def paused(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if not getattr(self._seen, "done", False):
                self._seen.done = True
                self._barrier.wait()
            return result

        return paused


def in_threads(count: int, fn: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return [f.result() for f in [pool.submit(fn) for _ in range(count)]]


@pytest.fixture
def racing(stack: Stack, backend: str, monkeypatch: pytest.MonkeyPatch) -> Stack:
    if backend == "aws":
        serialize_moto(monkeypatch)  # each moto request atomic, as AWS's are
    return stack


def scored_records(stack: Stack, stem: str) -> list[int]:
    return [line["record"] for line in stack.read_lines(stack.output(stem)) or []]


def test_concurrent_deliveries_of_a_retryable_failed_job_run_it_once(racing: Stack) -> None:
    stack = racing
    stack.settings.batch_max_records_per_request = 3
    stack.settings.batch_max_attempts = 1
    stack.runtime.fail_from_call = 1
    event = stack.upload("inputs/toy/default/race.jsonl", jsonl([row(n) for n in range(1, 11)]))
    with pytest.raises(RetryableBatchFailure):
        stack.run(event)
    (failed,) = stack.jobs()
    assert (failed.status, failed.extra["retryable"]) == ("failed", True)
    stack.runtime.fail_from_call = None
    before = len(stack.runtime.calls)
    # Two deliveries of the event (S3's redelivery and Lambda's retry) read the failed job.
    stack.registry = PausingRegistry(
        stack.registry, method="create_job", barrier=threading.Barrier(2, timeout=30)
    )

    summaries = in_threads(2, lambda: stack.run(event))

    assert sorted(s["jobs"][0]["action"] for s in summaries) == ["duplicate", "finished"]
    sent = [r for call in stack.runtime.calls[before:] for r in rows_of(call)]
    assert len(sent) == 10  # every record scored once, by one runner
    assert scored_records(stack, "race") == list(range(1, 11))
    (job,) = stack.jobs()
    assert (job.status, job.records, job.ok, job.extra["attempt"]) == ("succeeded", 10, 10, 2)


def test_concurrent_copies_of_a_continuation_run_the_slice_once(racing: Stack) -> None:
    stack = racing
    stack.hand_on = True
    stack.settings.batch_max_records_per_request = 2
    # The file cannot finish in one invocation at this rate: it is scored into segments.
    stack.settings.batch_estimated_bytes_per_second = 1
    event = stack.upload("inputs/toy/default/twice.jsonl", jsonl([row(n) for n in range(1, 41)]))
    stack.run(event, FakeContext(lambda: PLENTY_MS if not stack.runtime.calls else 1_000))
    assert stack.jobs()[0].extra["checkpoint"]["records"] == 2
    (continuation,) = stack.continued
    stack.continued.clear()
    # Lambda's async invocation is at least once too: two copies arrive together.
    stack.registry = PausingRegistry(
        stack.registry, method="get_job", barrier=threading.Barrier(2, timeout=30)
    )

    summaries = in_threads(2, lambda: stack.run(continuation, FakeContext(PLENTY_MS)))

    assert sorted(s["jobs"][0]["action"] for s in summaries) == ["duplicate", "finished"]
    assert records_sent(stack.runtime) == 40  # 2 before the hand-on, 38 by one of the copies
    assert scored_records(stack, "twice") == list(range(1, 41))
    (job,) = stack.jobs()
    assert job.status == "succeeded"


def test_a_runner_that_lost_its_job_stops_without_publishing(stack: Stack) -> None:
    """A runner still alive after its lease ran out: another delivery took the job over, so the
    runner's next write of the job is refused; it aborts its results and leaves the job be."""
    stack.settings.batch_max_records_per_request = 2
    event = stack.upload("inputs/toy/default/lost.jsonl", jsonl([row(n) for n in range(1, 9)]))
    (ref,) = parse_notification(event)
    real = stack.registry
    writes: list[int] = []

    class TakenOverMidRun:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def update_job(self, *, job: Any, expected_updated_at: str | None = None) -> Any:
            writes.append(1)
            if len(writes) == 2:  # the runner's first heartbeat, after one micro-batch
                current = real.get_job(job_id=job.job_id)
                real.update_job(
                    job=replace(
                        current,
                        updated_at="2999-01-01T00:00:00.000Z",
                        extra={**current.extra, "attempt": 2},
                    ),
                    expected_updated_at=current.updated_at,
                )
            return real.update_job(job=job, expected_updated_at=expected_updated_at)

    stack.registry = TakenOverMidRun()

    summary = stack.run(event)

    assert summary["jobs"][0]["action"] == "duplicate"
    assert len(stack.runtime.calls) == 1
    assert stack.read(stack.output("lost")) is None
    assert stack.read(stack.output("lost", errors=True)) is None
    job = real.get_job(job_id=job_id_for(ref))
    assert (job.status, job.extra["attempt"], job.records) == ("running", 2, 0)
