"""The batch function end to end over both backends (local; DynamoDB + S3 under moto), with a
fake endpoint: what a user sees in the bucket and in the job record."""

from __future__ import annotations

import gzip
import json
from typing import Any
from urllib.parse import quote_plus

import pytest

from functions.batch.dispatch import RetryableBatchFailure
from functions.batch.events import job_id_for, parse_notification
from functions.core.exceptions import UpstreamError
from tests.batch.batch_testkit import (
    MODEL,
    Stack,
    jsonl,
    merge_events,
    row,
    row_sum,
    rows_of,
    toy_model,
)

OUT = f"outputs/{MODEL}/1"


def results(stack: Stack, stem: str, version: int = 1) -> list[dict[str, Any]] | None:
    return stack.read_lines(stack.output(stem, version=version))


def errors(stack: Stack, stem: str, version: int = 1) -> list[dict[str, Any]] | None:
    return stack.read_lines(stack.output(stem, version=version, errors=True))


def test_multi_record_event_scores_each_object_in_order(stack: Stack) -> None:
    stack.settings.batch_max_records_per_request = 4
    first = stack.upload("inputs/toy/default/a.jsonl", jsonl([row(n) for n in range(1, 11)]))
    second = stack.upload("inputs/toy/1/b.jsonl", jsonl([row(n) for n in range(1, 4)]))

    summary = stack.run(merge_events(first, second))

    assert [j["status"] for j in summary["jobs"]] == ["succeeded", "succeeded"]
    lines = results(stack, "a")
    assert lines is not None
    assert [line["record"] for line in lines] == list(range(1, 11))
    assert [line["outputs"][0]["data"] for line in lines] == [[row_sum(n)] for n in range(1, 11)]
    assert lines[0]["outputs"][0] == {
        "name": "sum",
        "datatype": "FP32",
        "shape": [1],
        "data": [7.0],
    }
    assert errors(stack, "a") == []
    assert len(results(stack, "b") or []) == 3
    # Ten records in micro-batches of at most four, all to the alias's version.
    assert [len(rows_of(c)) for c in stack.runtime.calls] == [4, 4, 2, 3]
    assert {c.variant for c in stack.runtime.calls} == {"v1"}
    assert {c.endpoint for c in stack.runtime.calls} == {"modelway-test-toy"}
    jobs = {j.input_uri: j for j in stack.jobs()}
    job = jobs[stack.store.object_uri(key="inputs/toy/default/a.jsonl")]
    assert (job.status, job.records, job.ok, job.errors, job.version, job.target) == (
        "succeeded", 10, 10, 0, 1, "default"
    )  # fmt: skip
    assert job.output_uri is not None
    assert job.output_uri.endswith(f"{OUT}/{job.job_id}/a.jsonl")
    assert job.errors_uri is not None
    assert job.errors_uri.endswith(f"{OUT}/{job.job_id}/a.errors.jsonl")
    assert job.extra["format"] == "jsonl"
    assert job.extra["duration_seconds"] >= 0


def test_duplicate_delivery_makes_one_job_and_one_result(stack: Stack) -> None:
    event = stack.upload("inputs/toy/default/dup.jsonl", jsonl([row(n) for n in range(1, 6)]))
    stack.run(event)
    first_result = stack.read(stack.output("dup"))
    assert first_result is not None
    calls = len(stack.runtime.calls)

    again = stack.run(event)

    assert again["jobs"][0]["action"] == "duplicate"
    assert again["jobs"][0]["status"] == "succeeded"
    assert len(stack.runtime.calls) == calls  # nothing scored twice
    assert len(stack.jobs()) == 1
    assert stack.read(stack.output("dup")) == first_result


def test_a_new_upload_of_the_same_key_is_a_new_job(stack: Stack) -> None:
    body = jsonl([row(1)])
    one = stack.run(stack.upload("inputs/toy/default/same.jsonl", body))["jobs"][0]
    second = stack.upload("inputs/toy/default/same.jsonl", jsonl([row(1), row(2)]))
    two = stack.run(second)["jobs"][0]
    assert len(stack.jobs()) == 2
    # Each job's results are its own: the first still points at its one record.
    for summary, records in ((one, 1), (two, 2)):
        key = summary["output_uri"].split(f"/{OUT}/", 1)[1]
        assert len(stack.read_lines(f"{OUT}/{key}") or []) == records


def test_bad_records_go_to_the_error_file_and_good_ones_are_scored(stack: Stack) -> None:
    body = jsonl(
        [
            row(1),
            b"{not json",
            [1.0, 2.0],  # wrong element count
            row(4),
            b"",  # blank: not a record
            ["a", "b", "c", "d"],  # not numbers
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": row(7) * 2}]},
            {
                "id": "eight",
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": row(8)}],
            },
            {"inputs": [{"name": "y", "datatype": "FP32", "shape": [1, 4], "data": row(9)}]},
            "just a string",
            [[10.0, 1.0, 2.0, 3.0]],  # nested, with the batch axis
        ]
    )
    summary = stack.run(stack.upload("inputs/toy/default/mixed.jsonl", body))

    (job,) = summary["jobs"]
    assert (job["status"], job["records"], job["ok"], job["errors"]) == ("partial", 10, 4, 6)
    assert "6 of 10 records are invalid" in job["reason"]
    good = results(stack, "mixed")
    assert good is not None
    assert [(g["record"], g["outputs"][0]["data"][0]) for g in good] == [
        (1, row_sum(1)), (4, row_sum(4)), (8, row_sum(8)), (11, row_sum(10))
    ]  # fmt: skip
    assert good[2]["id"] == "eight"
    bad = errors(stack, "mixed")
    assert bad is not None
    assert [b["record"] for b in bad] == [2, 3, 6, 7, 9, 10]
    by_record = {b["record"]: b for b in bad}
    assert "not valid JSON" in by_record[2]["error"]
    assert by_record[3]["code"] == "invalid_tensor"
    assert "must be numbers" in by_record[6]["error"]
    assert "one line is one sample" in by_record[7]["error"]
    assert "unknown input 'y'" in by_record[9]["error"]
    assert all(set(b) == {"record", "error", "code"} for b in bad)


def test_a_file_of_only_bad_records_fails_but_says_why_per_record(stack: Stack) -> None:
    summary = stack.run(stack.upload("inputs/toy/default/bad.jsonl", b"1\n2\n"))
    (job,) = summary["jobs"]
    assert job["status"] == "failed"
    assert "none of the 2 records is valid" in job["reason"]
    assert [b["record"] for b in errors(stack, "bad") or []] == [1, 2]
    assert stack.runtime.calls == []


def test_endpoint_failing_mid_file_retries_then_fails_without_a_complete_looking_result(
    stack: Stack,
) -> None:
    stack.settings.batch_max_records_per_request = 2
    stack.runtime.fail_from_call = 3  # two batches go through, then the endpoint is down
    event = stack.upload("inputs/toy/default/outage.jsonl", jsonl([row(n) for n in range(1, 8)]))

    with pytest.raises(RetryableBatchFailure):
        stack.run(event)

    (job,) = stack.jobs()
    assert job.status == "failed"
    assert "kept failing (5 attempts)" in (job.reason or "")
    assert "records 5-6" in (job.reason or "")
    assert (job.ok, job.errors, job.extra["first_unscored_record"]) == (4, 0, 5)
    assert job.output_uri is None
    assert job.errors_uri is None
    assert results(stack, "outage") is None
    assert errors(stack, "outage") is None
    # Four retries with exponential backoff (jittered down to half at most).
    assert len(stack.sleeps) == 4
    for attempt, delay in enumerate(stack.sleeps):
        assert 0.25 * 2**attempt <= delay <= 0.5 * 2**attempt

    # The endpoint is back: S3's (or Lambda's) next delivery retries the failed job.
    stack.runtime.fail_from_call = None
    summary = stack.run(event)
    assert summary["jobs"][0]["status"] == "succeeded"
    assert [r["record"] for r in results(stack, "outage") or []] == list(range(1, 8))
    (job,) = stack.jobs()
    assert (job.records, job.ok, job.extra["attempt"]) == (7, 7, 2)


def test_a_transient_failure_is_retried_and_the_job_succeeds(stack: Stack) -> None:
    stack.runtime.fail_first = 2
    summary = stack.run(stack.upload("inputs/toy/default/blip.jsonl", jsonl([row(1), row(2)])))
    assert summary["jobs"][0]["status"] == "succeeded"
    assert len(stack.sleeps) == 2
    assert len(results(stack, "blip") or []) == 2


def test_a_model_error_response_fails_the_job(stack: Stack) -> None:
    stack.runtime.fail_first = 99
    stack.runtime.failure = UpstreamError
    stack.settings.batch_max_attempts = 2
    with pytest.raises(RetryableBatchFailure):
        stack.run(stack.upload("inputs/toy/default/err.jsonl", jsonl([row(1)])))
    (job,) = stack.jobs()
    assert job.status == "failed"
    assert job.extra["retryable"] is True
    assert len(stack.runtime.calls) == 2


def test_records_the_model_refuses_are_isolated_by_bisection(stack: Stack) -> None:
    stack.runtime.answer = toy_model(refuse=lambda r: r[0] == 13.0)
    rows = [row(n) for n in range(1, 17)]
    summary = stack.run(stack.upload("inputs/toy/default/refused.jsonl", jsonl(rows)))
    assert summary["jobs"][0]["status"] == "partial"
    assert [b["record"] for b in errors(stack, "refused") or []] == [13]
    assert (errors(stack, "refused") or [])[0]["error"] == "the model refuses 13"
    assert [r["record"] for r in results(stack, "refused") or []] == [
        n for n in range(1, 17) if n != 13
    ]
    # 1 batch + halving down to the one record: a handful of requests, not one per record.
    assert len(stack.runtime.calls) <= 1 + 2 * 4


def test_url_encoded_keys_with_spaces_and_plus_signs(stack: Stack) -> None:
    key = "inputs/toy/default/my data+more (1).jsonl"
    event = stack.upload(key, jsonl([row(1)]))
    raw_key = event["Records"][0]["s3"]["object"]["key"]
    assert raw_key == quote_plus(key, safe="/")
    assert " " not in raw_key

    summary = stack.run(event)

    assert summary["jobs"][0]["status"] == "succeeded"
    assert results(stack, "my data+more (1)") == [
        {"record": 1, "outputs": [
            {"name": "sum", "datatype": "FP32", "shape": [1], "data": [7.0]},
            {"name": "first", "datatype": "INT64", "shape": [1], "data": [1]},
        ]}
    ]  # fmt: skip
    (job,) = stack.jobs()
    # The job names the decoded key ("+" in the event is a space, "%2B" a plus).
    assert job.input_uri == stack.store.object_uri(key="inputs/toy/default/my data+more (1).jsonl")


def test_an_unknown_format_fails_the_job_with_a_clear_reason(stack: Stack) -> None:
    summary = stack.run(stack.upload("inputs/toy/default/notes.txt", b"hello world\nbye\n"))
    (job,) = summary["jobs"]
    assert job["status"] == "failed"
    assert "unknown input format" in job["reason"]
    assert job["output_uri"] is None
    assert results(stack, "notes") is None
    # Not worth retrying: a second delivery leaves it be.
    assert stack.run(stack.upload("inputs/toy/default/x.bin", b"\x00\xff\x00"))["jobs"][0][
        "status"
    ] == "failed"  # fmt: skip


def test_csv_rows_are_samples_with_an_optional_id_column(stack: Stack) -> None:
    body = b"id,p0,p1,p2,p3\r\nr1,1,1,2,3\r\nr2,2,1,2,three\r\n\r\nr4,4,1.5,2,3\r\nr5,5,1\r\n"
    summary = stack.run(stack.upload("inputs/toy/default/table.csv", body))
    (job,) = summary["jobs"]
    assert (job["status"], job["records"], job["ok"], job["errors"]) == ("partial", 4, 2, 2)
    good = results(stack, "table") or []
    assert [(g["record"], g["id"], g["outputs"][0]["data"][0]) for g in good] == [
        (1, "r1", 7.0), (4, "r4", 10.5)
    ]  # fmt: skip
    bad = errors(stack, "table") or []
    assert [(b["record"], b["code"]) for b in bad] == [
        (2, "invalid_tensor"),
        (5, "invalid_request"),
    ]
    assert "'three' is not a number" in bad[0]["error"]
    assert "4 fields, the header 5" not in bad[1]["error"]
    assert "3 fields" in bad[1]["error"]


def test_a_csv_header_that_does_not_fit_the_signature_fails_the_job(stack: Stack) -> None:
    summary = stack.run(stack.upload("inputs/toy/default/wide.csv", b"a,b,c\n1,2,3\n"))
    (job,) = summary["jobs"]
    assert job["status"] == "failed"
    assert "3 columns for input 'x', which takes 4 values" in job["reason"]


def test_format_is_sniffed_when_the_name_does_not_say(stack: Stack) -> None:
    stack.run(stack.upload("inputs/toy/default/lines", jsonl([row(1), row(2)])))
    stack.run(stack.upload("inputs/toy/default/table.data", b"a,b,c,d\n1,2,3,4\n"))
    assert [r["record"] for r in results(stack, "lines") or []] == [1, 2]
    assert [r["outputs"][0]["data"] for r in results(stack, "table.data") or []] == [[10.0]]
    formats = sorted(j.extra["format"] for j in stack.jobs())
    assert formats == ["csv", "jsonl"]


def test_gzip_inputs_are_read_on_the_fly(stack: Stack) -> None:
    body = gzip.compress(jsonl([row(n) for n in range(1, 4)]))
    stack.run(stack.upload("inputs/toy/default/packed.jsonl.gz", body))
    assert [r["record"] for r in results(stack, "packed") or []] == [1, 2, 3]


def test_version_segments_and_unknown_targets(stack: Stack) -> None:
    stack.run(stack.upload("inputs/toy/v2/pinned.jsonl", jsonl([row(1)])))
    assert results(stack, "pinned", version=2) is not None
    assert stack.runtime.calls[-1].variant == "v2"

    summary = stack.run(
        merge_events(
            stack.upload("inputs/toy/nosuch/a.jsonl", jsonl([row(1)])),
            stack.upload("inputs/toy/9/a.jsonl", jsonl([row(1)])),
            stack.upload("inputs/toy/a.jsonl", jsonl([row(1)])),
        )
    )
    reasons = [(j["status"], j["reason"]) for j in summary["jobs"]]
    assert all(status == "failed" for status, _ in reasons)
    assert "nosuch" in reasons[0][1]
    assert "9" in reasons[1][1]
    assert "inputs/{model}/{alias-or-version}/{name}" in reasons[2][1]


def test_a_canary_alias_scores_the_whole_file_with_its_main_version(stack: Stack) -> None:
    stack.registry.set_alias(
        model=MODEL, alias="default", version=1, canary_version=2, canary_weight=50, actor="test"
    )
    stack.settings.batch_max_records_per_request = 1
    stack.run(stack.upload("inputs/toy/default/canary.jsonl", jsonl([row(n) for n in range(20)])))
    assert {c.variant for c in stack.runtime.calls} == {"v1"}
    assert len(results(stack, "canary") or []) == 20


def test_objects_outside_the_layout_and_test_events_are_ignored(stack: Stack) -> None:
    assert stack.run({"Service": "Amazon S3", "Event": "s3:TestEvent"}) == {"jobs": []}
    folder = stack.upload("inputs/toy/default/x.jsonl", b"")
    folder["Records"][0]["s3"]["object"]["key"] = "inputs/toy/default/"
    assert stack.run(folder) == {"jobs": []}
    outside = stack.upload("inputs/Not A Model.jsonl", jsonl([row(1)]))
    summary = stack.run(outside)
    assert summary["jobs"][0]["action"] == "ignored"
    assert stack.jobs() == []


def test_an_empty_file_succeeds_with_empty_results(stack: Stack) -> None:
    summary = stack.run(stack.upload("inputs/toy/default/empty.jsonl", b""))
    assert summary["jobs"][0]["status"] == "succeeded"
    assert results(stack, "empty") == []
    assert errors(stack, "empty") == []


def test_a_record_over_the_payload_limit_is_a_bad_record(stack: Stack) -> None:
    stack.settings.max_payload_bytes = 200
    big = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": row(1)}],
           "id": "x" * 300}  # fmt: skip
    summary = stack.run(stack.upload("inputs/toy/default/big.jsonl", jsonl([row(1), big, row(3)])))
    assert summary["jobs"][0]["status"] == "partial"
    assert [(b["record"], b["code"]) for b in errors(stack, "big") or []] == [
        (2, "payload_too_large")
    ]
    # Every request stayed under the limit.
    assert all(len(c.body) <= 200 for c in stack.runtime.calls)


def test_micro_batches_stay_under_the_payload_limit(stack: Stack) -> None:
    stack.settings.max_payload_bytes = 400
    rows = [[n + 0.123456789, 1e10 + n, -2.5, 3.0] for n in range(60)]
    stack.run(stack.upload("inputs/toy/default/sized.jsonl", jsonl(rows)))
    sizes = [len(c.body) for c in stack.runtime.calls]
    assert max(sizes) <= 400
    assert sum(len(rows_of(c)) for c in stack.runtime.calls) == 60
    assert len(sizes) < 60  # still batched
    assert [r["record"] for r in results(stack, "sized") or []] == list(range(1, 61))


def test_job_ids_follow_the_object_version() -> None:
    from functions.batch.events import s3_put_event

    def ref(**kwargs: Any) -> Any:
        base = {"bucket": "b", "key": "inputs/m/default/a.jsonl", "size": 1, "etag": "e",
                "sequencer": "01"}  # fmt: skip
        return parse_notification(s3_put_event(**{**base, **kwargs}))[0]

    assert job_id_for(ref(version_id="v1")) == job_id_for(ref(version_id="v1", sequencer="02"))
    assert job_id_for(ref(version_id="v1")) != job_id_for(ref(version_id="v2"))
    # Unversioned buckets (no versionId, or "null"): content and PUT order decide.
    assert job_id_for(ref()) == job_id_for(ref(version_id="null"))
    assert job_id_for(ref()) != job_id_for(ref(sequencer="02"))
    assert job_id_for(ref()) != job_id_for(ref(etag="f"))


def test_the_sample_event_file_is_a_real_s3_notification() -> None:
    from pathlib import Path

    event = json.loads(Path("events/s3-put.json").read_text())
    record = event["Records"][0]
    assert record["eventSource"] == "aws:s3"
    assert record["eventName"] == "ObjectCreated:Put"
    assert set(record["s3"]["object"]) == {"key", "size", "eTag", "versionId", "sequencer"}
    (ref,) = parse_notification(event)
    assert ref.key == "inputs/digits/default/sample.jsonl"
    sample = Path("events/sample.jsonl").read_bytes()
    assert ref.size == len(sample)
