"""What only the directory store has to prove: the on-disk layout the local model server
scans, atomic writes, and keys that cannot escape the data area. (Behaviour common to both
backends is in tests/contract.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from functions.core.artifacts.local import DirectoryArtifactStore
from functions.core.exceptions import InvalidRequest


@pytest.fixture
def store(tmp_path: Path) -> DirectoryArtifactStore:
    return DirectoryArtifactStore(artifacts_dir=tmp_path / "artifacts", data_dir=tmp_path / "data")


def test_artifacts_land_where_the_model_server_scans(
    store: DirectoryArtifactStore, tmp_path: Path
) -> None:
    source = tmp_path / "built.tar.gz"
    source.write_bytes(b"archive")

    uri = store.put_artifact(model="digits", version=3, source=source)

    path = tmp_path / "artifacts" / "digits" / "3" / "model.tar.gz"
    assert uri == path.resolve().as_uri()
    assert path.read_bytes() == b"archive"
    # Nothing else is left in the scanned tree (temp files live under .tmp).
    visible = [
        p.relative_to(tmp_path / "artifacts").as_posix()
        for p in (tmp_path / "artifacts").rglob("*")
        if p.is_file() and ".tmp" not in p.parts
    ]
    assert visible == ["digits/3/model.tar.gz"]

    store.delete_artifact(model="digits", version=3)
    assert not (tmp_path / "artifacts" / "digits" / "3").exists()


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../outside", "a/../../outside", "a//b", "./a", "a/", ".tmp/x", "a\\b"],
)
def test_keys_that_escape_or_are_malformed_are_refused(
    store: DirectoryArtifactStore, key: str
) -> None:
    with pytest.raises(InvalidRequest):
        store.put_object(key=key, body=b"x")
    with pytest.raises(InvalidRequest):
        store.open_object(key=key)


def test_a_symlink_out_of_the_data_area_is_refused(
    store: DirectoryArtifactStore, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret").write_bytes(b"s")
    os.symlink(tmp_path / "elsewhere", tmp_path / "data" / "link")

    with pytest.raises(InvalidRequest):
        store.open_object(key="link/secret")


def test_an_uncommitted_writer_leaves_nothing_at_the_key(
    store: DirectoryArtifactStore, tmp_path: Path
) -> None:
    writer = store.open_writer(key="outputs/m/a.jsonl")
    writer.write(b"partial")

    assert not (tmp_path / "data" / "outputs" / "m" / "a.jsonl").exists()
    assert list(store.list_objects(prefix="")) == []

    writer.abort()
    assert list((tmp_path / "data" / ".tmp").iterdir()) == []

    with pytest.raises(ValueError, match="already"):
        writer.write(b"more")


def test_files_are_readable_like_any_other(store: DirectoryArtifactStore, tmp_path: Path) -> None:
    store.put_object(key="inputs/m/default/a.jsonl", body=b"{}\n")
    mode = (tmp_path / "data" / "inputs" / "m" / "default" / "a.jsonl").stat().st_mode
    assert mode & 0o644 == 0o644
