"""The ArtifactStore contract (functions/core/artifacts/base.py), for every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from functions.core.artifacts.exceptions import ArtifactNotFound, ObjectNotFound


# Artifacts ------------------------------------------------------------------------------------
def test_put_fetch_delete_an_artifact(store: Any, tmp_path: Path) -> None:
    source = tmp_path / "model.tar.gz"
    source.write_bytes(b"\x1f\x8b archive bytes" * 1000)

    uri = store.put_artifact(model="digits", version=3, source=source)

    assert uri == store.artifact_uri(model="digits", version=3)
    assert uri.startswith(("s3://", "file://"))
    assert uri.endswith("digits/3/model.tar.gz")
    fetched = store.fetch_artifact(model="digits", version=3, dest=tmp_path / "out" / "a.tar.gz")
    assert fetched == tmp_path / "out" / "a.tar.gz"
    assert fetched.read_bytes() == source.read_bytes()

    store.delete_artifact(model="digits", version=3)
    store.delete_artifact(model="digits", version=3)  # idempotent
    with pytest.raises(ArtifactNotFound):
        store.fetch_artifact(model="digits", version=3, dest=tmp_path / "again.tar.gz")


def test_versions_do_not_share_artifacts(store: Any, tmp_path: Path) -> None:
    for n in (1, 2):
        source = tmp_path / f"{n}.tar.gz"
        source.write_bytes(f"version {n}".encode())
        store.put_artifact(model="digits", version=n, source=source)

    store.delete_artifact(model="digits", version=1)

    out = store.fetch_artifact(model="digits", version=2, dest=tmp_path / "2-out.tar.gz")
    assert out.read_bytes() == b"version 2"
    assert store.artifact_uri(model="digits", version=1) != store.artifact_uri(
        model="digits", version=2
    )
    with pytest.raises(ArtifactNotFound):
        store.fetch_artifact(model="digits", version=1, dest=tmp_path / "1-out.tar.gz")


def test_fetching_an_unknown_artifact(store: Any, tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound):
        store.fetch_artifact(model="nope", version=1, dest=tmp_path / "x.tar.gz")


# Data area ------------------------------------------------------------------------------------
def test_put_and_read_an_object(store: Any) -> None:
    uri = store.put_object(key="inputs/digits/default/a.jsonl", body=b'{"x": 1}\n')
    assert uri.startswith(("s3://", "file://"))
    assert uri.endswith("inputs/digits/default/a.jsonl")
    # The URI a job records for its input is the one the store wrote it under.
    assert store.object_uri(key="inputs/digits/default/a.jsonl") == uri

    with store.open_object(key="inputs/digits/default/a.jsonl") as stream:
        assert stream.read() == b'{"x": 1}\n'

    # Overwriting replaces the whole object.
    store.put_object(key="inputs/digits/default/a.jsonl", body=b"second\n")
    with store.open_object(key="inputs/digits/default/a.jsonl") as stream:
        assert stream.read() == b"second\n"


def test_reading_an_unknown_object(store: Any) -> None:
    with pytest.raises(ObjectNotFound):
        store.open_object(key="inputs/digits/default/missing.jsonl")


def test_an_object_can_be_read_at_the_version_a_reader_started_with(
    store: Any, backend: str
) -> None:
    """S3 (versioning on, as the stack's bucket is) reads the version asked for; the directory
    store keeps no versions and reads the file as it is now."""
    key = "inputs/digits/default/versioned.jsonl"
    s3 = None
    if backend == "aws":
        import boto3

        s3 = boto3.client("s3")
        s3.put_bucket_versioning(Bucket=store.bucket, VersioningConfiguration={"Status": "Enabled"})
    store.put_object(key=key, body=b"first upload\n")
    first = s3.head_object(Bucket=store.bucket, Key=key)["VersionId"] if s3 else "v-first"

    store.put_object(key=key, body=b"second upload\n")

    with store.open_object(key=key) as stream:
        assert stream.read() == b"second upload\n"
    with store.open_object(key=key, version_id=first) as stream:
        older = stream.read()
    with store.open_object(key=key, version_id=None) as stream:
        assert stream.read() == b"second upload\n"
    if s3 is None:
        assert older == b"second upload\n"  # local files are not versioned
        return
    assert older == b"first upload\n"
    # A version id of another key names no version of this one.
    other = s3.put_object(Bucket=store.bucket, Key="inputs/digits/default/other.jsonl", Body=b"")
    with pytest.raises(ObjectNotFound):
        store.open_object(key=key, version_id=other["VersionId"])


def test_objects_stream_in_chunks(store: Any) -> None:
    line = b'{"inputs": [0.5, 0.25, 0.125]}\n'
    store.put_object(key="inputs/m/default/big.jsonl", body=line * 20_000)

    with store.open_object(key="inputs/m/default/big.jsonl") as stream:
        first = stream.read(1000)
        rest = stream.read()
    assert first + rest == line * 20_000


def test_a_writer_publishes_only_on_commit(store: Any) -> None:
    # More than S3's 5 MiB minimum part, so a multipart upload really has several parts.
    chunk = bytes(range(256)) * 4096  # 1 MiB
    writer = store.open_writer(key="outputs/m/big.jsonl")
    for _ in range(11):
        writer.write(chunk)

    with pytest.raises(ObjectNotFound):
        store.open_object(key="outputs/m/big.jsonl")
    assert list(store.list_objects(prefix="outputs/")) == []

    uri = writer.commit()
    assert uri.endswith("outputs/m/big.jsonl")
    with store.open_object(key="outputs/m/big.jsonl") as stream:
        assert stream.read() == chunk * 11
    assert list(store.list_objects(prefix="outputs/")) == ["outputs/m/big.jsonl"]


def test_a_small_writer_and_an_empty_one(store: Any) -> None:
    writer = store.open_writer(key="outputs/m/small.jsonl")
    writer.write(b"one\n")
    writer.write(b"two\n")
    writer.commit()
    with store.open_object(key="outputs/m/small.jsonl") as stream:
        assert stream.read() == b"one\ntwo\n"

    empty = store.open_writer(key="outputs/m/empty.errors.jsonl")
    empty.commit()
    with store.open_object(key="outputs/m/empty.errors.jsonl") as stream:
        assert stream.read() == b""


def test_an_aborted_writer_leaves_nothing(store: Any) -> None:
    writer = store.open_writer(key="outputs/m/aborted.jsonl")
    writer.write(b"x" * (6 * 1024 * 1024))
    writer.abort()

    with pytest.raises(ObjectNotFound):
        store.open_object(key="outputs/m/aborted.jsonl")
    assert list(store.list_objects(prefix="")) == []


def test_list_objects_by_prefix(store: Any) -> None:
    keys = [
        "inputs/digits/default/b.jsonl",
        "inputs/digits/default/a.jsonl",
        "inputs/digits/v2/c.jsonl",
        "inputs/digits-large/default/d.jsonl",
        "outputs/digits/a.jsonl",
    ]
    for key in keys:
        store.put_object(key=key, body=b"{}\n")

    assert list(store.list_objects(prefix="inputs/digits/")) == [
        "inputs/digits/default/a.jsonl",
        "inputs/digits/default/b.jsonl",
        "inputs/digits/v2/c.jsonl",
    ]
    # A plain text prefix, as on S3: it need not end at a "/".
    assert list(store.list_objects(prefix="inputs/digits")) == sorted(keys[:4])
    assert list(store.list_objects(prefix="inputs/digits/default/a")) == [
        "inputs/digits/default/a.jsonl"
    ]
    assert list(store.list_objects(prefix="")) == sorted(keys)
    assert list(store.list_objects(prefix="nothing/")) == []
