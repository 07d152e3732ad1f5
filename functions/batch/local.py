"""The local stand-in for the bucket notification: S3 events for files in the local data area.

``modelway batch submit`` and the inputs watcher (``watch.py``) build their events here, from
the stored file itself: the ETag is the MD5 of its content (as S3's is for a single-part
upload) and the sequencer its modification time. So the same stored file always yields the
same event, and with it the same job id: the CLI and the watcher noticing one file make one
job, and a restarted watcher re-scores nothing. Replacing the file makes a new job.
"""

from __future__ import annotations

import hashlib
from typing import Any

from functions.batch.events import s3_put_event
from functions.core.artifacts.exceptions import ObjectNotFound
from functions.core.settings import Settings

_CHUNK = 1 << 20


def local_object_event(*, settings: Settings, key: str) -> dict[str, Any]:
    """An ``ObjectCreated:Put`` notification for the data-area object ``key``."""
    path = settings.data_dir.joinpath(*key.split("/"))
    try:
        stat = path.stat()
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ObjectNotFound(f"no object {key!r}") from None
    return s3_put_event(
        bucket=settings.bucket_name,
        key=key,
        size=stat.st_size,
        etag=digest.hexdigest(),
        sequencer=f"{stat.st_mtime_ns:020X}",
        region=settings.region or "us-east-1",
    )
