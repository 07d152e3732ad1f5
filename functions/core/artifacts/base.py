"""The artifact store contract: one ``model.tar.gz`` per version, plus the data area that
batch inputs and outputs live in. S3 (``s3.py``) and a directory (``local.py``) keep it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol


class ArtifactStore(Protocol):
    def put_artifact(self, *, model: str, version: int, source: Path) -> str:
        """Store the file as the version's artifact; returns its URI (s3://… or file://…).
        Writes are all-or-nothing: a reader never sees a partial artifact."""

    def copy_artifact(
        self, *, model: str, version: int, source_key: str, source_version_id: str | None = None
    ) -> str:
        """Store the data-area object ``source_key`` (its version ``source_version_id`` where
        the store keeps versions) as the version's artifact, byte for byte, without the bytes
        passing through this process where the store can copy them itself (S3: CopyObject, or
        UploadPartCopy in parts for large objects). All-or-nothing like ``put_artifact``;
        returns its URI. Raises ``ObjectNotFound``."""

    def object_version(self, *, key: str) -> str | None:
        """The current version id of the data-area object ``key`` (``None`` where the store
        keeps no versions), to read and copy exactly those bytes. Raises ``ObjectNotFound``."""

    def fetch_artifact(self, *, model: str, version: int, dest: Path) -> Path:
        """Copy the version's artifact to ``dest`` (a file path). Raises ``ArtifactNotFound``."""

    def delete_artifact(self, *, model: str, version: int) -> None:
        """Idempotent."""

    def artifact_uri(self, *, model: str, version: int) -> str: ...

    # Data area (batch inputs/outputs): keys are relative, e.g. "inputs/digits/default/a.jsonl".
    def open_object(self, *, key: str, version_id: str | None = None) -> BinaryIO:
        """A streaming reader of the object, or of its version ``version_id`` where the store
        keeps versions (S3 with versioning on); ``None`` reads the latest. A store without
        versions (the directory) ignores ``version_id`` and reads what is there. Raises
        ``ObjectNotFound`` (also for an unknown version)."""

    def put_object(self, *, key: str, body: bytes) -> str: ...

    def object_uri(self, *, key: str) -> str:
        """Where the data-area object ``key`` lives (s3://bucket/key or file://…)."""

    def open_writer(self, *, key: str) -> ObjectWriter:
        """A streaming writer (multipart on S3) that publishes the object only on ``commit``."""

    def list_objects(self, *, prefix: str) -> Iterator[str]: ...


class ObjectWriter(Protocol):
    def write(self, data: bytes) -> None: ...

    def commit(self) -> str:
        """Finish and publish; returns the object's URI."""

    def abort(self) -> None:
        """Discard everything written; nothing becomes visible."""
