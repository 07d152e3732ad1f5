"""Files that outlast one Lambda invocation: the job checkpoints, hands itself on to a fresh
invocation (a continuation event) and finishes there, with one complete result; and the
leases that keep duplicate deliveries from scoring a running job twice."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from functions.batch.dispatch import RetryableBatchFailure
from functions.batch.events import job_id_for, parse_notification
from tests.batch.batch_testkit import MODEL, FakeContext, Stack, jsonl, records_sent, row, row_sum

PLENTY_MS = 600_000  # ten minutes
SHORT_MS = 1_000  # under the 90 s margin: time to stop


def after_calls(stack: Stack, calls: int) -> FakeContext:
    """Plenty of time until the endpoint has answered ``calls`` requests, then none."""
    return FakeContext(lambda: PLENTY_MS if len(stack.runtime.calls) < calls else SHORT_MS)


def starved() -> FakeContext:
    """An invocation already at its margin when the work would start."""
    answers = iter([PLENTY_MS])
    return FakeContext(lambda: next(answers, SHORT_MS))


def drain(stack: Stack, context: Any = None) -> list[dict[str, Any]]:
    """Deliver every continuation event the function sent itself, as Lambda would."""
    summaries = []
    while stack.continued:
        event = stack.continued.pop(0)
        summaries.append(stack.run(event, context or FakeContext(PLENTY_MS)))
    return summaries


def scored_records(stack: Stack, stem: str, version: int = 1) -> list[int]:
    lines = stack.read_lines(stack.output(stem, version=version)) or []
    return [line["record"] for line in lines]


def test_a_file_too_big_for_one_invocation_continues_from_a_checkpoint(stack: Stack) -> None:
    stack.hand_on = True
    stack.settings.batch_max_records_per_request = 10
    # The size estimate says the file cannot finish in the time left: write segments.
    stack.settings.batch_estimated_bytes_per_second = 1
    body = jsonl([row(n) for n in range(1, 101)] + [b"oops"] + [row(n) for n in range(102, 121)])
    event = stack.upload("inputs/toy/default/big.jsonl", body)

    first = stack.run(event, after_calls(stack, 4))

    assert first["jobs"][0]["action"] == "continued"
    assert first["jobs"][0]["status"] == "running"
    assert stack.read(stack.output("big")) is None  # nothing final yet
    (job,) = stack.jobs()
    checkpoint = job.extra["checkpoint"]
    assert (checkpoint["records"], checkpoint["segments"]) == (40, 1)
    assert checkpoint["offset"] == len(jsonl([row(n) for n in range(1, 41)]))
    (continuation,) = stack.continued
    assert continuation["job_id"] == job.job_id
    assert continuation["slice"] == 1
    # The alias moves meanwhile: the job keeps the version it started with.
    stack.registry.set_alias(model=MODEL, alias="default", version=2, actor="test")

    (last,) = drain(stack)

    assert last["jobs"][0]["status"] == "partial"
    assert scored_records(stack, "big") == [n for n in range(1, 121) if n != 101]
    lines = stack.read_lines(stack.output("big")) or []
    assert [line["outputs"][0]["data"][0] for line in lines[:3]] == [row_sum(n) for n in (1, 2, 3)]
    assert [e["record"] for e in stack.read_lines(stack.output("big", errors=True)) or []] == [101]
    assert {c.variant for c in stack.runtime.calls} == {"v1"}
    assert records_sent(stack.runtime) == 119  # each record scored once
    (job,) = stack.jobs()
    assert (job.records, job.ok, job.errors, job.extra["slices"]) == (120, 119, 1, 2)


def test_a_final_write_that_runs_short_is_dropped_and_redone_from_the_checkpoint(
    stack: Stack,
) -> None:
    stack.hand_on = True
    stack.settings.batch_max_records_per_request = 5
    event = stack.upload("inputs/toy/default/slow.jsonl", jsonl([row(n) for n in range(1, 31)]))

    # The estimate says it fits, but the endpoint is slower than hoped.
    first = stack.run(event, after_calls(stack, 2))

    assert first["jobs"][0]["action"] == "continued"
    assert stack.read(stack.output("slow")) is None  # never half-written
    # A duplicate S3 delivery meanwhile finds the job held by the continuation.
    assert stack.run(event)["jobs"][0]["action"] == "duplicate"

    drain(stack)

    assert scored_records(stack, "slow") == list(range(1, 31))
    (job,) = stack.jobs()
    assert job.status == "succeeded"
    assert job.records == 30


def test_a_job_that_never_gets_time_fails_after_the_slice_limit(stack: Stack) -> None:
    stack.hand_on = True
    stack.settings.batch_max_slices = 3
    event = stack.upload("inputs/toy/default/starved.jsonl", jsonl([row(1), row(2)]))

    stack.run(event, starved())
    while stack.continued:
        stack.run(stack.continued.pop(0), starved())

    (job,) = stack.jobs()
    assert job.status == "failed"
    assert "more than 3 invocations" in (job.reason or "")
    assert stack.runtime.calls == []
    assert stack.read(stack.output("starved")) is None


def test_records_of_an_event_not_reached_in_time_are_handed_on(stack: Stack) -> None:
    stack.hand_on = True
    first = stack.upload("inputs/toy/default/one.jsonl", jsonl([row(1)]))
    second = stack.upload("inputs/toy/default/two.jsonl", jsonl([row(2)]))
    event = {"Records": first["Records"] + second["Records"]}

    summary = stack.run(event, after_calls(stack, 1))

    assert [j["status"] for j in summary["jobs"]] == ["succeeded"]
    (rest,) = stack.continued
    assert [ref.key for ref in parse_notification(rest)] == ["inputs/toy/default/two.jsonl"]
    drain(stack)
    assert scored_records(stack, "two") == [1]


def test_a_short_function_timeout_still_leaves_time_to_work(stack: Stack) -> None:
    """The margin shrinks to a quarter of an invocation configured shorter than it."""
    stack.hand_on = True
    clock = iter(range(60_000, 0, -100))  # a 60 s function, 0.1 s per look at the clock
    event = stack.upload("inputs/toy/default/short.jsonl", jsonl([row(n) for n in range(1, 6)]))
    summary = stack.run(event, FakeContext(lambda: next(clock)))
    assert summary["jobs"][0]["status"] == "succeeded"
    assert stack.continued == []


def test_local_runs_have_no_deadline_and_finish_in_one_go(local_stack: Stack) -> None:
    local_stack.settings.batch_estimated_bytes_per_second = 1
    summary = local_stack.run(
        local_stack.upload("inputs/toy/default/local.jsonl", jsonl([row(n) for n in range(50)]))
    )
    assert summary["jobs"][0]["status"] == "succeeded"
    (job,) = local_stack.jobs()
    assert job.extra["slices"] == 1


def test_a_continuation_in_process_when_no_one_can_be_invoked(local_stack: Stack) -> None:
    """Without a function to invoke (the local stack), a slice out of time goes straight on."""
    local_stack.settings.batch_max_records_per_request = 2
    local_stack.settings.batch_estimated_bytes_per_second = 1
    event = local_stack.upload("inputs/toy/default/inproc.jsonl", jsonl([row(n) for n in range(9)]))
    summary = local_stack.run(event, after_calls(local_stack, 2))
    assert summary["jobs"][0]["status"] == "succeeded"
    assert scored_records(local_stack, "inproc") == list(range(1, 10))


def test_a_running_job_with_a_live_lease_is_left_alone_and_a_dead_one_taken_over(
    stack: Stack,
) -> None:
    event = stack.upload("inputs/toy/default/lease.jsonl", jsonl([row(1), row(2)]))
    (ref,) = parse_notification(event)
    stack.run(event)
    job = stack.registry.get_job(job_id=job_id_for(ref))
    # Make it look like a runner is still at it...
    live = replace(job, status="running", extra={**job.extra, "lease_until": 4e9})
    stack.registry.update_job(job=live)
    calls = len(stack.runtime.calls)
    assert stack.run(event)["jobs"][0]["action"] == "duplicate"
    assert len(stack.runtime.calls) == calls
    # ... and like one that died (its Lambda deadline passed) half-way.
    stack.registry.update_job(job=replace(live, extra={**live.extra, "lease_until": 1.0}))
    summary = stack.run(event)
    assert summary["jobs"][0]["status"] == "succeeded"
    assert scored_records(stack, "lease") == [1, 2]
    assert len(stack.jobs()) == 1


def test_a_replayed_continuation_event_is_ignored(stack: Stack) -> None:
    stack.hand_on = True
    stack.settings.batch_max_records_per_request = 2
    stack.settings.batch_estimated_bytes_per_second = 1
    event = stack.upload("inputs/toy/default/replay.jsonl", jsonl([row(n) for n in range(8)]))
    stack.run(event, after_calls(stack, 1))
    (continuation,) = stack.continued
    drain(stack)
    calls = len(stack.runtime.calls)

    summary = stack.run(continuation, FakeContext(PLENTY_MS))

    assert summary["jobs"][0]["action"] == "duplicate"
    assert len(stack.runtime.calls) == calls
    assert scored_records(stack, "replay") == list(range(1, 9))


def test_an_in_process_continuation_that_fails_keeps_the_real_reason(local_stack: Stack) -> None:
    local_stack.settings.batch_max_records_per_request = 2
    local_stack.settings.batch_estimated_bytes_per_second = 1
    local_stack.settings.batch_max_attempts = 1
    local_stack.runtime.fail_from_call = 3
    event = local_stack.upload("inputs/toy/default/f.jsonl", jsonl([row(n) for n in range(9)]))

    with pytest.raises(RetryableBatchFailure):
        local_stack.run(event, after_calls(local_stack, 2))

    (job,) = local_stack.jobs()
    assert job.status == "failed"
    assert "kept failing (1 attempt)" in (job.reason or "")
    assert job.extra["retryable"] is True


@pytest.mark.parametrize("backend", ["aws"])  # S3 keeps versions; local files have none
def test_every_slice_reads_the_upload_the_job_was_made_for(stack: Stack) -> None:
    stack.hand_on = True
    stack.settings.batch_max_records_per_request = 10
    stack.settings.batch_estimated_bytes_per_second = 1
    key = "inputs/toy/default/moving.jsonl"
    event = stack.upload(key, jsonl([row(n) for n in range(1, 61)]))
    stack.run(event, after_calls(stack, 2))
    (job,) = stack.jobs()
    assert job.extra["checkpoint"]["records"] == 20

    # The key is overwritten between two slices of the job (its own event is another job).
    stack.upload(key, jsonl([row(n) for n in range(500, 700)]))
    (last,) = drain(stack)

    assert last["jobs"][0]["status"] == "succeeded"
    lines = stack.read_lines(stack.output("moving")) or []
    assert [line["record"] for line in lines] == list(range(1, 61))
    assert [line["outputs"][0]["data"][0] for line in lines] == [row_sum(n) for n in range(1, 61)]
    assert records_sent(stack.runtime) == 60
    job = stack.registry.get_job(job_id=job.job_id)
    assert (job.records, job.ok) == (60, 60)
