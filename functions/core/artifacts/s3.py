"""The artifact store on S3: the AWS backend.

One bucket holds both areas: artifacts under ``{artifacts_prefix}{model}/{version}/model.tar.gz``
(``naming.artifact_key``; the URI is the SageMaker ``ModelDataUrl``) and the data area (batch
inputs and outputs) at the keys callers name.

Every write asks for server-side encryption (``AES256`` or ``aws:kms`` with an optional key,
from settings), so an object is encrypted even if the bucket's default changes. S3 makes a
``PutObject`` and a completed multipart upload visible atomically: readers never see a
partial artifact. Large artifacts go up in parts through boto3's managed transfer; the
streaming writer drives a multipart upload itself so that nothing is visible before
``commit`` and ``abort`` leaves no parts behind (the bucket's lifecycle rule for incomplete
uploads is the backstop for a process that dies in between).
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

from functions.core import progress
from functions.core.artifacts.exceptions import ArtifactNotFound, ObjectNotFound
from functions.core.aws_clients import LazyClient
from functions.core.exceptions import InvalidRequest
from functions.core.naming import artifact_key

SseMode = Literal["AES256", "aws:kms"]

# Above this an artifact goes up (and down) in parallel parts; below it one request is faster.
MULTIPART_THRESHOLD = 64 * 1024 * 1024
MULTIPART_CHUNK = 16 * 1024 * 1024
# Server-side copies: one CopyObject up to here, UploadPartCopy parts of COPY_CHUNK above.
COPY_THRESHOLD = 256 * 1024 * 1024
COPY_CHUNK = 128 * 1024 * 1024
# S3 refuses parts under 5 MiB except the last; 8 MiB keeps a writer's memory small.
WRITER_PART_SIZE = 8 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024

_NOT_FOUND = {"404", "NoSuchKey", "NoSuchVersion", "NotFound"}
_READ_BUFFER = 1024 * 1024


class S3ArtifactStore:
    def __init__(
        self,
        *,
        bucket: str,
        artifacts_prefix: str = "artifacts/",
        region: str | None = None,
        sse: SseMode = "AES256",
        kms_key_id: str | None = None,
        client: Any = None,
        part_size: int = WRITER_PART_SIZE,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        self._bucket = bucket
        self._prefix = artifacts_prefix
        self._sse = sse
        self._kms_key_id = kms_key_id
        self._client = LazyClient(
            "s3", region=region, connect_timeout=5, read_timeout=60, client=client
        )
        self._part_size = part_size

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def _s3(self) -> Any:
        return self._client.get()

    def _encryption(self) -> dict[str, str]:
        args: dict[str, str] = {"ServerSideEncryption": self._sse}
        if self._sse == "aws:kms" and self._kms_key_id:
            args["SSEKMSKeyId"] = self._kms_key_id
        return args

    def _uri(self, key: str) -> str:
        return f"s3://{self._bucket}/{key}"

    def object_uri(self, *, key: str) -> str:
        return self._uri(key)

    # Artifacts ------------------------------------------------------------------------
    def _artifact_key(self, *, model: str, version: int) -> str:
        return artifact_key(prefix=self._prefix, model=model, version=version)

    def put_artifact(self, *, model: str, version: int, source: Path) -> str:
        key = self._artifact_key(model=model, version=version)
        self._s3.upload_file(
            Filename=str(source),
            Bucket=self._bucket,
            Key=key,
            ExtraArgs={**self._encryption(), "ContentType": "application/gzip"},
            Config=_transfer_config(),
            Callback=_UploadProgress(total=source.stat().st_size),
        )
        return self._uri(key)

    def copy_artifact(
        self, *, model: str, version: int, source_key: str, source_version_id: str | None = None
    ) -> str:
        """Server-side: boto3's managed copy reads the source's size (HeadObject), then sends
        one CopyObject below ``COPY_THRESHOLD`` or a multipart upload of UploadPartCopy parts
        (CopyObject's limit is 5 GB), aborted on failure. No byte passes through the caller,
        so a large artifact is registered in the time S3 takes, not in a Lambda's /tmp."""
        from botocore.exceptions import ClientError

        _check_key(source_key)
        key = self._artifact_key(model=model, version=version)
        source = {"Bucket": self._bucket, "Key": source_key}
        if source_version_id:
            source["VersionId"] = source_version_id
        try:
            self._s3.copy(
                CopySource=source,
                Bucket=self._bucket,
                Key=key,
                # REPLACE: CopyObject keeps the source's metadata and ignores ContentType
                # otherwise; encryption is asked for again, as on every write.
                ExtraArgs={
                    **self._encryption(),
                    "ContentType": "application/gzip",
                    "MetadataDirective": "REPLACE",
                },
                Config=_copy_config(),
            )
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                suffix = f" version {source_version_id!r}" if source_version_id else ""
                raise ObjectNotFound(f"no object {source_key!r}{suffix}") from None
            raise
        return self._uri(key)

    def object_version(self, *, key: str) -> str | None:
        from botocore.exceptions import ClientError

        _check_key(key)
        try:
            resp = self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise ObjectNotFound(f"no object {key!r}") from None
            raise
        version = resp.get("VersionId")
        # An unversioned bucket answers no id (or "null"): read and copy the latest.
        return str(version) if version and version != "null" else None

    def fetch_artifact(self, *, model: str, version: int, dest: Path) -> Path:
        from botocore.exceptions import ClientError

        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Download beside the destination and rename: ``dest`` is never a partial file.
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        try:
            self._s3.download_file(
                Bucket=self._bucket,
                Key=self._artifact_key(model=model, version=version),
                Filename=tmp,
                Config=_transfer_config(),
            )
            os.replace(tmp, dest)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise ArtifactNotFound(f"no artifact for {model} version {version}") from None
            raise
        finally:
            Path(tmp).unlink(missing_ok=True)
        return dest

    def delete_artifact(self, *, model: str, version: int) -> None:
        # DeleteObject is idempotent on S3: a missing key is not an error.
        self._s3.delete_object(
            Bucket=self._bucket, Key=self._artifact_key(model=model, version=version)
        )

    def artifact_uri(self, *, model: str, version: int) -> str:
        return self._uri(self._artifact_key(model=model, version=version))

    # Data area ------------------------------------------------------------------------
    def open_object(self, *, key: str, version_id: str | None = None) -> BinaryIO:
        from botocore.exceptions import ClientError

        _check_key(key)
        # A version id pins one upload: a reader that comes back later (a batch job's next
        # invocation) reads the same bytes even if the key was overwritten meanwhile.
        version = {"VersionId": version_id} if version_id else {}
        try:
            resp = self._s3.get_object(Bucket=self._bucket, Key=key, **version)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                suffix = f" version {version_id!r}" if version_id else ""
                raise ObjectNotFound(f"no object {key!r}{suffix}") from None
            raise
        # A buffered file over the response stream: read(n), readline(), line iteration and
        # ``with``, as the directory store's open(path, "rb") gives.
        return io.BufferedReader(_StreamingRaw(resp["Body"]), buffer_size=_READ_BUFFER)

    def put_object(self, *, key: str, body: bytes) -> str:
        _check_key(key)
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, **self._encryption())
        return self._uri(key)

    def open_writer(self, *, key: str) -> S3ObjectWriter:
        _check_key(key)
        return S3ObjectWriter(
            client=self._s3,
            bucket=self._bucket,
            key=key,
            encryption=self._encryption(),
            part_size=self._part_size,
        )

    def list_objects(self, *, prefix: str) -> Iterator[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield str(obj["Key"])


class S3ObjectWriter:
    """Buffers up to one part; the first full part starts a multipart upload. ``commit``
    completes it (or, for an object smaller than one part, sends a single PutObject), so the
    object appears whole or not at all; ``abort`` aborts the upload and discards its parts."""

    def __init__(
        self, *, client: Any, bucket: str, key: str, encryption: dict[str, str], part_size: int
    ) -> None:
        self._s3 = client
        self._bucket = bucket
        self._key = key
        self._encryption = encryption
        self._part_size = part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._open = True

    def write(self, data: bytes) -> None:
        if not self._open:
            raise ValueError("writer already committed or aborted")
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            self._upload_part(bytes(self._buffer[: self._part_size]))
            del self._buffer[: self._part_size]

    def _upload_part(self, chunk: bytes) -> None:
        if self._upload_id is None:
            resp = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=self._key, **self._encryption
            )
            self._upload_id = str(resp["UploadId"])
        number = len(self._parts) + 1
        resp = self._s3.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=chunk,
        )
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"]})

    def commit(self) -> str:
        if not self._open:
            raise ValueError("writer already committed or aborted")
        self._open = False
        try:
            if self._upload_id is None:
                self._s3.put_object(
                    Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer), **self._encryption
                )
            else:
                if self._buffer:
                    self._upload_part(bytes(self._buffer))
                self._s3.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        except BaseException:
            self._abort_upload()
            raise
        finally:
            self._buffer = bytearray()
        return f"s3://{self._bucket}/{self._key}"

    def abort(self) -> None:
        self._open = False
        self._buffer = bytearray()
        self._abort_upload()

    def _abort_upload(self) -> None:
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=upload_id)


class _StreamingRaw(io.RawIOBase):
    """botocore's StreamingBody as a raw stream, so ``io.BufferedReader`` can wrap it."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _copy_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    # Copies go in parts above COPY_THRESHOLD: parallel UploadPartCopy calls are faster than
    # one CopyObject for large objects, and CopyObject refuses sources over 5 GB.
    return TransferConfig(
        multipart_threshold=COPY_THRESHOLD,
        multipart_chunksize=COPY_CHUNK,
        preferred_transfer_client="classic",
    )


def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=MULTIPART_CHUNK,
        # The classic (botocore) transfer manager even where awscrt happens to be installed:
        # CRT bypasses botocore's retry settings and event hooks (and so moto).
        preferred_transfer_client="classic",
    )


def _check_key(key: str) -> None:
    """Refuses the keys the directory store refuses, so both backends accept the same keys."""
    parts = key.split("/")
    if "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise InvalidRequest(f"invalid object key {key!r}", code="invalid_key")


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _UploadProgress:
    """boto3's transfer callback (bytes since the last call, from its worker threads) as
    ``uploading`` progress (``functions.core.progress``)."""

    def __init__(self, *, total: int) -> None:
        self.total = total
        self.done = 0
        self._lock = threading.Lock()

    def __call__(self, sent: int) -> None:
        with self._lock:
            self.done += sent
            done = self.done
        progress.report("uploading", done=done, total=self.total)
