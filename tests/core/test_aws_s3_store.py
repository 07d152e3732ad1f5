"""The S3 artifact store's own guarantees: encryption asked for on every write, multipart
for large artifacts, a streaming writer that shows nothing before commit and leaves nothing
after abort, paginated listing. (Behaviour shared with the directory store: tests/contract.)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.core.artifacts.exceptions import ArtifactNotFound, ObjectNotFound
from tests.aws_testkit import REGION

MIB = 1024 * 1024


def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def test_every_write_asks_for_server_side_encryption(
    aws_store: Any, bucket: str, tmp_path: Path
) -> None:
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"artifact")
    uri = aws_store.put_artifact(model="digits", version=1, source=artifact)
    assert uri == f"s3://{bucket}/artifacts/digits/1/model.tar.gz"
    aws_store.put_object(key="outputs/a.jsonl", body=b"{}\n")
    writer = aws_store.open_writer(key="outputs/b.jsonl")
    writer.write(b"{}\n")
    writer.commit()
    for key in ("artifacts/digits/1/model.tar.gz", "outputs/a.jsonl", "outputs/b.jsonl"):
        assert s3().head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256"


def test_kms_encryption_names_the_key(bucket: str) -> None:
    from functions.core.artifacts.s3 import S3ArtifactStore

    kms = S3ArtifactStore(bucket=bucket, region=REGION, sse="aws:kms", kms_key_id="alias/modelway")
    kms.put_object(key="outputs/k.jsonl", body=b"x")
    head = s3().head_object(Bucket=bucket, Key="outputs/k.jsonl")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert "modelway" in head["SSEKMSKeyId"]


def test_large_artifacts_go_up_in_parts(
    aws_store: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.core.artifacts import s3 as s3_module

    monkeypatch.setattr(s3_module, "MULTIPART_THRESHOLD", 5 * MIB)
    monkeypatch.setattr(s3_module, "MULTIPART_CHUNK", 5 * MIB)
    artifact = tmp_path / "model.tar.gz"
    data = os.urandom(11 * MIB)
    artifact.write_bytes(data)
    aws_store.put_artifact(model="digits", version=2, source=artifact)
    head = s3().head_object(Bucket=bucket, Key="artifacts/digits/2/model.tar.gz")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of 3 parts
    assert head["ServerSideEncryption"] == "AES256"
    fetched = aws_store.fetch_artifact(
        model="digits", version=2, dest=tmp_path / "out" / "m.tar.gz"
    )
    assert fetched.read_bytes() == data


def test_fetch_of_a_missing_artifact_leaves_no_file(aws_store: Any, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "model.tar.gz"
    with pytest.raises(ArtifactNotFound):
        aws_store.fetch_artifact(model="digits", version=9, dest=dest)
    assert list(dest.parent.iterdir()) == []


def test_streaming_writer_is_invisible_until_commit(aws_store: Any, bucket: str) -> None:
    from functions.core.artifacts.s3 import S3ArtifactStore

    writer = S3ArtifactStore(bucket=bucket, region=REGION, part_size=5 * MIB).open_writer(
        key="outputs/big.jsonl"
    )
    chunk = b"y" * MIB
    for _ in range(12):
        writer.write(chunk)
    # Two full parts are uploaded, yet no object exists.
    assert list(aws_store.list_objects(prefix="outputs/")) == []
    uploads = s3().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["outputs/big.jsonl"]
    writer.commit()
    assert list(aws_store.list_objects(prefix="outputs/")) == ["outputs/big.jsonl"]
    assert aws_store.open_object(key="outputs/big.jsonl").read() == chunk * 12
    assert s3().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_aborted_writer_leaves_no_object_and_no_parts(aws_store: Any, bucket: str) -> None:
    from functions.core.artifacts.s3 import S3ArtifactStore

    writer = S3ArtifactStore(bucket=bucket, region=REGION, part_size=5 * MIB).open_writer(
        key="outputs/gone.jsonl"
    )
    writer.write(b"z" * (6 * MIB))
    writer.abort()
    assert list(aws_store.list_objects(prefix="outputs/")) == []
    assert s3().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ValueError, match="already"):
        writer.write(b"more")


def test_open_object_streams_and_missing_is_not_found(aws_store: Any) -> None:
    aws_store.put_object(key="inputs/digits/default/a.jsonl", body=b"line1\nline2\n")
    with aws_store.open_object(key="inputs/digits/default/a.jsonl") as body:
        assert list(body) == [b"line1\n", b"line2\n"]
    with aws_store.open_object(key="inputs/digits/default/a.jsonl") as body:
        assert body.read(3) == b"lin"
        assert body.read() == b"e1\nline2\n"
    with pytest.raises(ObjectNotFound):
        aws_store.open_object(key="inputs/digits/default/missing.jsonl")


def test_listing_pages_past_a_thousand_keys(aws_store: Any, bucket: str) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    # Straight into moto's backend: 1005 API calls would only make the test slow.
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    for i in range(1005):
        backend.put_object(bucket, f"inputs/many/{i:05d}.jsonl", b"")
    keys = list(aws_store.list_objects(prefix="inputs/many/"))
    assert len(keys) == 1005
    assert keys[0] == "inputs/many/00000.jsonl"
    assert keys[-1] == "inputs/many/01004.jsonl"
