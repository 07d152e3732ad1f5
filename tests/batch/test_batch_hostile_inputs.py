"""Inputs that can never be scored fail their job once, for good, with the reason on the job;
only failures another delivery may fix are retried (and finally dead-lettered). And every
job's results are its own, whatever else was uploaded.

The classification, per input (both backends):

==========================================  ===========================================
input                                       outcome
==========================================  ===========================================
empty file                                  succeeded, empty results
non-UTF-8 line, bad JSON, wrong tensor      that record in the error file
a line over the payload limit               that record in the error file
a CSV row with a field over csv's limit     that record in the error file
unknown extension, content not sniffable    failed, permanent (``unknown input format``)
CSV header over csv's field limit, not      failed, permanent (the header is the schema)
UTF-8, CR-only line endings, columns that
do not fit the signature
a first line over the payload limit         failed, permanent
corrupt or truncated gzip                   failed, permanent
key with an empty / '.' / '..' segment      failed, permanent (no result key exists)
key too long to leave room for its result   failed, permanent
version segment past 64 bits                failed, permanent
unknown alias/version, retired version      failed, permanent
the endpoint keeps failing (5xx)            failed, retryable
the store or registry failing               failed, retryable
==========================================  ===========================================
"""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from functions.batch.dispatch import RetryableBatchFailure
from tests.batch.batch_testkit import MODEL, Stack, jsonl, row

ROW = ",".join(str(v) for v in row(1)).encode()


def only_job(summary: dict[str, Any]) -> dict[str, Any]:
    (job,) = summary["jobs"]
    return job


def assert_failed_for_good(stack: Stack, key: str, body: bytes, *, reason: str) -> None:
    """One delivery fails the job without raising (no Lambda retry), with ``reason``; a
    second delivery of the same object leaves the job as it is."""
    event = stack.upload(key, body)
    job = only_job(stack.run(event))
    assert job["status"] == "failed", job
    assert reason in job["reason"], job["reason"]
    (record,) = [j for j in stack.jobs() if j.job_id == job["job_id"]]
    assert record.extra["retryable"] is False
    again = only_job(stack.run(event))
    assert again["action"] == "duplicate"


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        # A header field over the csv module's field limit (131072 characters).
        ("wide.csv", b"id," + b"p" * 200_000 + b",b,c,d\n" + ROW + b"\n", "CSV header"),
        ("latin.csv", b"a,b,c,\xe9\n" + ROW + b"\n", "not UTF-8"),
        # Old Mac line endings (CR only): the whole file is one line csv cannot read.
        ("classic-mac.csv", b"a,b,c,d\r" + ROW + b"\r", "CSV header"),
        # No extension: sniffed from a first line csv cannot read.
        ("sniffed", b"a," + b"p" * 200_000 + b",c,d\n" + ROW + b"\n", "CSV header"),
        ("blob.bin", b"\x00\xff\xfe\x00\n", "unknown input format"),
        ("broken.jsonl.gz", b"\x1f\x8b" + b"not gzip at all", "could not be read"),
        ("cut.jsonl.gz", gzip.compress(jsonl([row(n) for n in range(50)]))[:-30], "could not"),
    ],
)
def test_a_file_that_can_never_be_scored_fails_once_for_good(
    stack: Stack, name: str, body: bytes, reason: str
) -> None:
    assert_failed_for_good(stack, f"inputs/toy/default/{name}", body, reason=reason)
    assert stack.runtime.calls == []


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("inputs/toy/default/sub//a.jsonl", "empty, '.' or '..' path segment"),
        ("inputs/toy/default/./a.jsonl", "empty, '.' or '..' path segment"),
        ("inputs/toy/default/../a.jsonl", "empty, '.' or '..' path segment"),
        ("inputs/toy/default/" + "n" * 950 + ".jsonl", "shorter name"),
        ("inputs/toy/99999999999999999999/a.jsonl", "is not valid"),
    ],
)
def test_a_key_that_can_never_be_scored_fails_once_for_good(
    stack: Stack, key: str, reason: str
) -> None:
    if stack.s3 is None and "n" * 950 in key:
        pytest.skip("a file name this long is over the local filesystem's limit")
    if stack.s3 is None and ("/./" in key or "/../" in key or "//" in key):
        # The directory store cannot even hold such a key: deliver the event S3 would send
        # for it, as for an object that exists.
        event = stack.upload("inputs/toy/default/placeholder.jsonl", jsonl([row(1)]))
        event["Records"][0]["s3"]["object"]["key"] = key
        job = only_job(stack.run(event))
        assert job["status"] == "failed"
        assert reason in job["reason"]
        return
    assert_failed_for_good(stack, key, jsonl([row(1)]), reason=reason)
    assert stack.runtime.calls == []


def test_records_that_cannot_be_read_are_bad_records_not_a_failed_job(stack: Stack) -> None:
    stack.settings.max_payload_bytes = 1000
    lines = [
        jsonl([row(1)]).rstrip(),
        b"\xff\xfe not utf-8",
        b"[" * 2000,  # over the payload limit
        jsonl([row(4)]).rstrip(),
    ]
    job = only_job(stack.run(stack.upload("inputs/toy/default/mixed.jsonl", b"\n".join(lines))))
    assert (job["status"], job["ok"], job["errors"]) == ("partial", 2, 2)
    codes = [e["code"] for e in stack.read_lines(stack.output("mixed", errors=True)) or []]
    assert codes == ["invalid_request", "payload_too_large"]

    wide_cell = b"a,b,c,d\n" + ROW + b"\n" + b"1,2,3," + b"9" * 200_000 + b"\n"
    stack.settings.max_payload_bytes = 1_000_000
    job = only_job(stack.run(stack.upload("inputs/toy/default/cell.csv", wide_cell)))
    assert (job["status"], job["ok"], job["errors"]) == ("partial", 1, 1)


def test_an_endpoint_that_keeps_failing_is_retryable(stack: Stack) -> None:
    stack.runtime.fail_first = 10_000
    with pytest.raises(RetryableBatchFailure):
        stack.run(stack.upload("inputs/toy/default/down.jsonl", jsonl([row(1)])))
    (job,) = stack.jobs()
    assert (job.status, job.extra["retryable"]) == ("failed", True)


def test_two_uploads_with_one_stem_keep_their_own_results(stack: Stack) -> None:
    first = only_job(stack.run(stack.upload("inputs/toy/default/a.jsonl", jsonl([row(1)]))))
    second = only_job(stack.run(stack.upload("inputs/toy/default/a.csv", b"a,b,c,d\n" + ROW)))
    third = only_job(stack.run(stack.upload("inputs/toy/1/a.jsonl", jsonl([row(3), row(4)]))))
    uris = {first["output_uri"], second["output_uri"], third["output_uri"]}
    assert len(uris) == 3
    by_job = {j.job_id: j for j in stack.jobs()}
    for summary, records in ((first, 1), (second, 1), (third, 2)):
        job = by_job[summary["job_id"]]
        assert job.output_uri == summary["output_uri"]
        key = job.output_uri.split(f"outputs/{MODEL}/", 1)[1]
        assert len(stack.read_lines(f"outputs/{MODEL}/{key}") or []) == records
