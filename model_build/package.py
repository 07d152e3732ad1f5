"""Write ``model.tar.gz``: the model file and its manifest at the archive root, the layout
SageMaker's ``ModelDataUrl`` unpacks into ``/opt/ml/model``.

The archive is deterministic for given contents (sorted members, fixed mtimes and owners,
no gzip timestamp), so the bytes of an artifact depend only on what is in it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

from functions.core.manifest import MANIFEST_NAME, Manifest
from functions.core.publishing import manifest_bytes

_CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_artifact(*, model_path: Path, manifest: Manifest, dest: Path) -> Path:
    """Package ``model_path`` (stored as ``manifest.model_file``) and the manifest into
    ``dest``. All or nothing: the file appears at ``dest`` only once it is complete."""
    members = {
        manifest.model_file: model_path.read_bytes(),
        MANIFEST_NAME: manifest_bytes(manifest),
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        with (
            partial.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped,
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for name in sorted(members):
                data = members[name]
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest
