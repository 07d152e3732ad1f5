"""Opening a version: ``model.tar.gz`` (extracted safely) or an unpacked directory.

SageMaker mounts the unpacked artifact at ``/opt/ml/model``; local mode keeps the archives and
extracts each into a private scratch directory on first use.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from serving.exceptions import ArtifactError
from serving.signature import Signature, signature_from_manifest

MANIFEST_NAME = "modelway.json"
ARCHIVE_NAME = "model.tar.gz"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# An artifact is two files; anything near this many members is not one of ours.
_MAX_MEMBERS = 1000


@dataclass
class Artifact:
    root: Path
    model_path: Path
    manifest: dict[str, Any]
    name: str
    version: int | None
    signature: Signature
    # The scratch directory this artifact was extracted into, removed by ``cleanup``.
    scratch: Path | None = None

    def cleanup(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract only plain files and directories that stay inside ``dest``.

    The explicit checks give a clear error for a hostile archive; ``filter="data"`` is the
    standard library's second line of defence (absolute names, ``..``, links, devices, modes).
    """
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            members: list[tarfile.TarInfo] = []
            for member in tar:
                if len(members) >= _MAX_MEMBERS:
                    raise ArtifactError(f"{archive.name} has more than {_MAX_MEMBERS} members")
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts or "\\" in member.name:
                    raise ArtifactError(f"unsafe path in {archive.name}: {member.name!r}")
                if not (member.isfile() or member.isdir()):
                    raise ArtifactError(
                        f"{archive.name} member {member.name!r} is not a regular file"
                    )
                members.append(member)
            tar.extractall(dest, members=members, filter="data")
    except ArtifactError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ArtifactError(f"cannot extract {archive.name}: {exc}") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(f"artifact has no {MANIFEST_NAME}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"unreadable {MANIFEST_NAME}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{MANIFEST_NAME} must hold a JSON object")
    return manifest


def _load_unpacked(root: Path) -> Artifact:
    manifest = _read_manifest(root)
    name = manifest.get("name")
    if not isinstance(name, str) or not name:
        raise ArtifactError("manifest has no name")
    version = manifest.get("version")
    if version is not None and (type(version) is not int or version < 1):
        raise ArtifactError(f"manifest version must be a positive integer or null, got {version!r}")
    model_file = manifest.get("model_file", "model.onnx")
    if (
        not isinstance(model_file, str)
        or PurePosixPath(model_file).name != model_file
        or (model_file in ("", ".", ".."))
    ):
        raise ArtifactError(f"manifest model_file must be a bare file name, got {model_file!r}")
    model_path = root / model_file
    if not model_path.is_file():
        raise ArtifactError(f"artifact has no {model_file}")
    expected = manifest.get("sha256")
    if not isinstance(expected, str) or not _SHA256_RE.fullmatch(expected):
        raise ArtifactError("manifest sha256 must be 64 lowercase hex characters")
    actual = _sha256(model_path)
    if actual != expected:
        raise ArtifactError(f"{model_file} sha256 {actual} does not match the manifest")
    return Artifact(
        root=root,
        model_path=model_path,
        manifest=manifest,
        name=name,
        version=version,
        signature=signature_from_manifest(manifest.get("signature")),
    )


def open_artifact(source: Path, *, scratch_parent: Path | None = None) -> Artifact:
    """``source`` is a ``model.tar.gz``, or a directory holding either the unpacked files or
    a ``model.tar.gz``. Archives are extracted under ``scratch_parent`` (default: the system
    temp directory); call ``Artifact.cleanup`` when the version is unloaded."""
    packed = source / ARCHIVE_NAME
    if source.is_dir() and not (source / MANIFEST_NAME).exists() and packed.is_file():
        source = packed
    if source.is_dir():
        return _load_unpacked(source)
    if not source.is_file():
        raise ArtifactError(f"no artifact at {source}")
    scratch = Path(tempfile.mkdtemp(prefix="modelway-", dir=scratch_parent))
    try:
        safe_extract(source, scratch)
        artifact = _load_unpacked(scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    artifact.scratch = scratch
    return artifact
