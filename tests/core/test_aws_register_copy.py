"""Registering an uploaded artifact through the router (POST /v1/models/{m}/versions) on its
AWS backends under moto, in a versioned bucket as the stack makes it: the archive is read once
as a stream to verify it and then copied server-side into artifacts/ (CopyObject, or
UploadPartCopy parts above the copy threshold), never downloaded to /tmp and uploaded again
(API Gateway gives the request 29 s). The read and the copy name the version id read first,
so the bytes verified are the bytes registered. The router makes every call, so the IAM proof
checks each (HeadObject / GetObject / CopyObject on a version: s3:GetObjectVersion) against
its role."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.core import publishing
from tests.artifact_testkit import MakeArtifact
from tests.aws_testkit import BUCKET, REGION

from .test_aws_router_mirror import Router
from .test_aws_router_mirror import router as router  # the fixture

ARTIFACT = "artifacts/digits/1/model.tar.gz"


@pytest.fixture
def versioned(bucket: str) -> str:
    boto3.client("s3", region_name=REGION).put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    return bucket


@pytest.fixture
def calls(router: Router, versioned: str) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The S3 operations the router's store sends, with their parameters."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen.append((model.name, dict(params)))

    events = router.backends.store._s3.meta.events
    events.register("before-parameter-build.s3", record, unique_id="register-copy-test")
    yield seen
    events.unregister("before-parameter-build.s3", unique_id="register-copy-test")


def stored(key: str) -> bytes:
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=BUCKET, Key=key)["Body"]
    return bytes(body.read())


def writes_to_artifacts(calls: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Operations that send bytes from the router into artifacts/ (not a server-side copy)."""
    return [
        op
        for op, params in calls
        if op in ("PutObject", "UploadPart", "CreateMultipartUpload")
        and str(params.get("Key", "")).startswith("artifacts/")
        and not any(o == "UploadPartCopy" for o, _ in calls)
    ]


def test_registering_copies_the_upload_server_side_as_uploaded(
    router: Router, calls: list[tuple[str, dict[str, Any]]], make_artifact: Any
) -> None:
    artifact = make_artifact(payload=b"one")
    response = router.publish(router.alice, artifact, "uploads/v1.tar.gz")
    assert response.status_code == 201, response.text
    assert response.json()["version"] == 1
    assert response.json()["manifest"]["version"] == 1  # the registry holds the stamped one

    copies = [params for op, params in calls if op == "CopyObject"]
    assert len(copies) == 1
    source = copies[0]["CopySource"]
    upload_version = boto3.client("s3", region_name=REGION).head_object(
        Bucket=BUCKET, Key="uploads/v1.tar.gz"
    )["VersionId"]
    # botocore's own rendering of CopySource, bucket/key?versionId=…
    assert source == f"{BUCKET}/uploads/v1.tar.gz?versionId={upload_version}"
    assert copies[0]["Key"] == ARTIFACT
    assert copies[0]["ServerSideEncryption"] == "AES256"
    assert writes_to_artifacts(calls) == []
    # Byte for byte the upload: nothing re-packed on the way.
    assert stored(ARTIFACT) == artifact.read_bytes()
    head = boto3.client("s3", region_name=REGION).head_object(Bucket=BUCKET, Key=ARTIFACT)
    assert head["ContentType"] == "application/gzip"


def test_a_large_upload_is_copied_in_parts(
    router: Router,
    calls: list[tuple[str, dict[str, Any]]],
    make_artifact: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from functions.core.artifacts import s3

    # S3's smallest part, so that an 11 MiB archive takes three UploadPartCopy calls.
    monkeypatch.setattr(s3, "COPY_THRESHOLD", 5 * 1024 * 1024)
    monkeypatch.setattr(s3, "COPY_CHUNK", 5 * 1024 * 1024)
    artifact = make_artifact(payload=os.urandom(11 * 1024 * 1024))
    response = router.publish(router.alice, artifact, "uploads/big.tar.gz")
    assert response.status_code == 201, response.text

    ops = [op for op, _ in calls]
    assert ops.count("UploadPartCopy") == 3
    assert "CopyObject" not in ops
    assert [op for op, p in calls if op == "PutObject" or op == "UploadPart"] == []
    assert all(
        p["CopySource"].startswith(f"{BUCKET}/uploads/big.tar.gz?versionId=")
        for op, p in calls
        if op == "UploadPartCopy"
    )
    assert stored(ARTIFACT) == artifact.read_bytes()


def test_the_registered_bytes_are_the_verified_ones_even_if_the_upload_is_replaced(
    router: Router,
    calls: list[tuple[str, dict[str, Any]]],
    make_artifact: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = make_artifact(payload=b"verified")
    other = make_artifact(payload=b"swapped in after the check")
    original = publishing.check_stream

    def check_then_replace(*, reader: Any) -> Any:
        manifest = original(reader=reader)
        # Straight into moto's bucket: the uploader is not the router (the IAM proof would
        # otherwise hold the router to this write).
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        s3_backends[DEFAULT_ACCOUNT_ID]["global"].put_object(
            BUCKET, "uploads/v1.tar.gz", other.read_bytes()
        )
        return manifest

    monkeypatch.setattr(publishing, "check_stream", check_then_replace)
    response = router.publish(router.alice, good, "uploads/v1.tar.gz")
    assert response.status_code == 201, response.text
    assert stored(ARTIFACT) == good.read_bytes()


def test_a_bad_upload_is_refused_and_nothing_is_copied(
    router: Router,
    calls: list[tuple[str, dict[str, Any]]],
    make_artifact: MakeArtifact,
    tmp_path: Path,
) -> None:
    artifact = make_artifact(payload=b"one")
    # Flip the model file's bytes inside the archive: its sha256 no longer matches.
    broken = tmp_path / "broken.tar.gz"
    with tarfile.open(artifact) as src, tarfile.open(broken, "w:gz") as out:
        for info in src.getmembers():
            data = src.extractfile(info)
            assert data is not None
            body = data.read()
            if info.name == "model.onnx":
                body = b"two"
            info.size = len(body)
            out.addfile(info, io.BytesIO(body))
    response = router.publish(router.alice, broken, "uploads/v1.tar.gz")
    assert response.status_code == 422, response.text
    assert "checksum mismatch" in response.json()["error"]
    assert [op for op, _ in calls if op in ("CopyObject", "UploadPartCopy")] == []
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(
        Bucket=BUCKET, Prefix="artifacts/"
    )
    assert listed.get("KeyCount", 0) == 0


def test_a_missing_upload_is_a_404(router: Router, versioned: str) -> None:
    response = router.call(
        router.alice,
        "POST",
        "/v1/models/digits/versions",
        json={"artifact_key": "uploads/never.tar.gz"},
    )
    assert response.status_code == 404, response.text


def test_a_copy_that_fails_halfway_leaves_no_parts_and_no_version(
    router: Router,
    calls: list[tuple[str, dict[str, Any]]],
    make_artifact: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    from functions.core.artifacts import s3

    monkeypatch.setattr(s3, "COPY_THRESHOLD", 5 * 1024 * 1024)
    monkeypatch.setattr(s3, "COPY_CHUNK", 5 * 1024 * 1024)
    artifact = make_artifact(payload=os.urandom(11 * 1024 * 1024))
    events = router.backends.store._s3.meta.events

    def refuse(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        error = {"Code": "InternalError", "Message": "S3 had a bad moment"}
        return AWSResponse("https://s3", 500, HTTPHeaders(), None), {"Error": error}

    events.register("before-call.s3.CompleteMultipartUpload", refuse, unique_id="refuse")
    try:
        response = router.publish(router.alice, artifact, "uploads/big.tar.gz")
    finally:
        events.unregister("before-call.s3.CompleteMultipartUpload", unique_id="refuse")
    assert response.status_code >= 500, response.text

    client = boto3.client("s3", region_name=REGION)
    assert "AbortMultipartUpload" in [op for op, _ in calls]
    assert client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=BUCKET, Prefix="artifacts/").get("KeyCount", 0) == 0
    listed = router.call(router.alice, "GET", "/v1/models/digits/versions")
    # No version (the model is not even known: its first version never registered).
    assert listed.status_code == 404 or listed.json()["versions"] == [], listed.text

    # The same upload registers once S3 is well again (the number reserved is skipped).
    again = router.publish(router.alice, artifact, "uploads/big.tar.gz")
    assert again.status_code == 201, again.text
    assert stored(f"artifacts/digits/{again.json()['version']}/model.tar.gz") == (
        artifact.read_bytes()
    )
