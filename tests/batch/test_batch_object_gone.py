"""An upload deleted before it is scored: the job fails for good, saying so, on both
backends. On AWS, S3 answers 404 for a missing object only to a caller allowed
``s3:ListBucket`` (403 otherwise), so this branch runs there only because the batch role has
it — ``tests/iam_proof`` checks that against the synthesized template."""

from __future__ import annotations

from tests.batch.batch_testkit import Stack


def test_an_input_deleted_before_scoring_fails_its_job_with_a_reason(stack: Stack) -> None:
    key = "inputs/toy/default/gone.jsonl"
    event = stack.upload(key, b'{"x": [1, 2, 3, 4]}\n')
    if stack.s3 is not None:
        version = event["Records"][0]["s3"]["object"]["versionId"]
        stack.s3.delete_object(Bucket=stack.settings.bucket_name, Key=key, VersionId=version)
    else:
        (stack.settings.data_dir / key).unlink()
    stack.run(event)
    (job,) = stack.jobs()
    assert job.status == "failed"
    assert "no longer exists" in (job.reason or "")
    assert stack.read("outputs/toy/1/gone.jsonl") is None
