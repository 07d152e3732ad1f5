"""The artifact store on a directory: the local stand-in for the S3 bucket.

Artifacts sit at ``{artifacts_dir}/{model}/{version}/model.tar.gz`` (``naming.artifact_key``
with an empty prefix), the layout the local model server scans. The data area (batch inputs
and outputs) maps keys onto relative paths under ``data_dir``.

Every write goes to a temporary file under ``{root}/.tmp`` first and is renamed into place
(``os.replace`` is atomic on one filesystem), so a reader — the model server, a batch
watcher — never sees half a file, and a crashed write leaves nothing at the real path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from functions.core.artifacts.exceptions import ArtifactNotFound, ObjectNotFound
from functions.core.exceptions import InvalidRequest
from functions.core.naming import artifact_key

TMP_DIR_NAME = ".tmp"
_COPY_CHUNK = 1024 * 1024


class DirectoryArtifactStore:
    def __init__(self, *, artifacts_dir: Path, data_dir: Path) -> None:
        self._artifacts_dir = Path(artifacts_dir).resolve()
        self._data_dir = Path(data_dir).resolve()

    # Artifacts ------------------------------------------------------------------------
    def _artifact_path(self, *, model: str, version: int) -> Path:
        return self._artifacts_dir / artifact_key(prefix="", model=model, version=version)

    def put_artifact(self, *, model: str, version: int, source: Path) -> str:
        dest = self._artifact_path(model=model, version=version)
        with open(source, "rb") as reader:
            _write_atomically(root=self._artifacts_dir, dest=dest, reader=reader)
        return dest.as_uri()

    def copy_artifact(
        self, *, model: str, version: int, source_key: str, source_version_id: str | None = None
    ) -> str:
        # No versions here (see ``open_object``): the file as it is now.
        dest = self._artifact_path(model=model, version=version)
        with self.open_object(key=source_key) as reader:
            _write_atomically(root=self._artifacts_dir, dest=dest, reader=reader)
        return dest.as_uri()

    def object_version(self, *, key: str) -> str | None:
        if not self._object_path(key).is_file():
            raise ObjectNotFound(f"no object {key!r}")
        return None

    def fetch_artifact(self, *, model: str, version: int, dest: Path) -> Path:
        source = self._artifact_path(model=model, version=version)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(source, dest)
        except FileNotFoundError:
            raise ArtifactNotFound(f"no artifact for {model} version {version}") from None
        return dest

    def delete_artifact(self, *, model: str, version: int) -> None:
        path = self._artifact_path(model=model, version=version)
        path.unlink(missing_ok=True)
        # Drop the emptied version directory so the server's scan sees no ghost version.
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    def artifact_uri(self, *, model: str, version: int) -> str:
        return self._artifact_path(model=model, version=version).as_uri()

    # Data area ------------------------------------------------------------------------
    def _object_path(self, key: str) -> Path:
        """Refuses keys that are empty, absolute, climb out with '..' or land in the temp dir."""
        parts = key.split("/")
        if "\\" in key or parts[0] == TMP_DIR_NAME or any(p in ("", ".", "..") for p in parts):
            raise InvalidRequest(f"invalid object key {key!r}", code="invalid_key")
        path = self._data_dir.joinpath(*parts)
        if not path.resolve().is_relative_to(self._data_dir):
            # A symlink inside the data area pointing out of it.
            raise InvalidRequest(f"invalid object key {key!r}", code="invalid_key")
        return path

    def object_uri(self, *, key: str) -> str:
        return self._object_path(key).as_uri()

    def open_object(self, *, key: str, version_id: str | None = None) -> BinaryIO:
        # Local files are not versioned: ``version_id`` is accepted (one interface) and
        # ignored, so a file replaced while it is read is read as it is now.
        path = self._object_path(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key!r}") from None

    def put_object(self, *, key: str, body: bytes) -> str:
        writer = self.open_writer(key=key)
        try:
            writer.write(body)
        except BaseException:
            writer.abort()
            raise
        return writer.commit()

    def open_writer(self, *, key: str) -> DirectoryObjectWriter:
        return DirectoryObjectWriter(root=self._data_dir, dest=self._object_path(key))

    def list_objects(self, *, prefix: str) -> Iterator[str]:
        """Keys starting with ``prefix`` (plain text prefix, as on S3), in sorted order."""
        if not self._data_dir.is_dir():
            return
        # Walk only the deepest directory the prefix names whole.
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self._data_dir.joinpath(*PurePosixPath(head).parts) if head else self._data_dir
        if not start.resolve().is_relative_to(self._data_dir) or not start.is_dir():
            return
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            base = Path(dirpath)
            if base == self._data_dir:
                dirnames[:] = [d for d in dirnames if d != TMP_DIR_NAME]
            for name in filenames:
                key = (base / name).relative_to(self._data_dir).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        yield from sorted(keys)


class DirectoryObjectWriter:
    """Streams into a temp file; ``commit`` renames it into place, ``abort`` deletes it."""

    def __init__(self, *, root: Path, dest: Path) -> None:
        self._root = root
        self._dest = dest
        self._tmp_path = _new_temp(root)
        self._file: IO[bytes] | None = open(self._tmp_path, "wb")  # noqa: SIM115

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise ValueError("writer already committed or aborted")
        self._file.write(data)

    def commit(self) -> str:
        if self._file is None:
            raise ValueError("writer already committed or aborted")
        file, self._file = self._file, None
        try:
            file.flush()
            os.fsync(file.fileno())
            file.close()
            self._dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp_path, self._dest)
        except BaseException:
            file.close()
            self._tmp_path.unlink(missing_ok=True)
            raise
        return self._dest.as_uri()

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp_path.unlink(missing_ok=True)


def _new_temp(root: Path) -> Path:
    tmp_dir = root / TMP_DIR_NAME
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=tmp_dir, suffix=".part")
    os.close(fd)
    # mkstemp makes 0600; published files should read like any other the user writes.
    os.chmod(name, 0o644)
    return Path(name)


def _write_atomically(*, root: Path, dest: Path, reader: IO[bytes]) -> None:
    writer = DirectoryObjectWriter(root=root, dest=dest)
    try:
        while chunk := reader.read(_COPY_CHUNK):
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    writer.commit()
