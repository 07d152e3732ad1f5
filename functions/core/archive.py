"""The ``model.tar.gz`` itself: writing it, reading its manifest and members safely, checking
it (manifest, the model file's sha256, the parity report) from a file or as a stream, and
re-packing it with a stamped manifest.

Pure python (tarfile, hashlib, gzip): the Lambda router runs these to check an upload,
``functions.core.publishing`` to publish, and ``model_build`` to write what it packaged.

The archive holds the model file and its manifest at the root, the layout SageMaker's
``ModelDataUrl`` unpacks into ``/opt/ml/model``. It is deterministic for given contents (sorted
members, fixed mtimes and owners, no gzip timestamp), so the bytes of an artifact depend only
on what is in it, whether written (``write_artifact``) or re-stamped (``restamp_archive``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from pydantic import ValidationError

from functions.core.exceptions import InvalidArtifact
from functions.core.manifest import MANIFEST_NAME, Manifest
from functions.core.naming import is_model_name

# A manifest is a few KiB; anything this large is not one, and is not worth parsing.
MAX_MANIFEST_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)


def read_manifest(*, path: Path) -> Manifest:
    """The manifest of the ``model.tar.gz`` at ``path``, without checking anything else.
    Raises ``InvalidArtifact`` if the archive or the manifest cannot be read."""
    with open_archive(path) as (tar, members):
        return parse_manifest(read_member(tar, members, MANIFEST_NAME, limit=MAX_MANIFEST_BYTES))


def check_artifact(*, path: Path) -> Manifest:
    """The light verification (no onnx): plain files at safe paths, a valid manifest whose
    parity passed, a valid model name, and a model file whose sha256 matches the manifest.
    A ``Verifier`` for ``publish_artifact``; raises ``InvalidArtifact`` naming the problem."""
    with open_archive(path) as (tar, members):
        manifest = parse_manifest(
            read_member(tar, members, MANIFEST_NAME, limit=MAX_MANIFEST_BYTES)
        )
        check_parity_report(manifest)
        if not is_model_name(manifest.name):
            raise InvalidArtifact(f"invalid model name {manifest.name!r} in {MANIFEST_NAME}")
        model_file = safe_member_name(manifest.model_file)
        member = members.get(model_file)
        if member is None:
            raise InvalidArtifact(f"the archive has no {model_file} (members: {sorted(members)})")
        try:
            handle = tar.extractfile(member)
            assert handle is not None  # regular files always have data
            digest = _sha256(handle)
        except _TAR_ERRORS as exc:
            raise InvalidArtifact(f"cannot read {model_file}: {exc}") from exc
    if digest != manifest.sha256:
        raise InvalidArtifact(
            f"checksum mismatch: sha256 of {model_file} is {digest}, "
            f"the manifest says {manifest.sha256}"
        )
    return manifest


def check_stream(*, reader: BinaryIO) -> Manifest:
    """``check_artifact`` over a stream (an S3 body), in one pass and without touching disk:
    every regular file's sha256 is taken as it passes (the manifest may come before or after
    the model file), the manifest is kept in memory (at most ``MAX_MANIFEST_BYTES``). It reads
    the whole archive once; nothing is written anywhere."""
    unreadable = "the artifact is not a readable tar archive"
    manifest_data: bytes | None = None
    digests: dict[str, str] = {}
    try:
        tar = tarfile.open(fileobj=reader, mode="r|*")  # noqa: SIM115 - closed by `with tar`
    except _TAR_ERRORS as exc:
        raise InvalidArtifact(f"{unreadable}: {exc}") from exc
    with tar:
        try:
            for info in tar:
                name = _file_member_name(info)
                if name is None:
                    continue
                if name in digests or (name == MANIFEST_NAME and manifest_data is not None):
                    raise InvalidArtifact(f"archive member {name!r} appears more than once")
                handle = tar.extractfile(info)
                assert handle is not None  # regular files always have data
                if name == MANIFEST_NAME:
                    if info.size > MAX_MANIFEST_BYTES:
                        raise InvalidArtifact(
                            f"{MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES} bytes"
                        )
                    manifest_data = handle.read()
                    continue
                digests[name] = _sha256(handle)
        except _TAR_ERRORS as exc:
            raise InvalidArtifact(f"{unreadable}: {exc}") from exc
    if manifest_data is None:
        raise InvalidArtifact(
            f"the archive has no {MANIFEST_NAME} (members: {sorted(digests) or 'none'})"
        )
    manifest = parse_manifest(manifest_data)
    check_parity_report(manifest)
    if not is_model_name(manifest.name):
        raise InvalidArtifact(f"invalid model name {manifest.name!r} in {MANIFEST_NAME}")
    model_file = safe_member_name(manifest.model_file)
    actual = digests.get(model_file)
    if actual is None:
        raise InvalidArtifact(f"the archive has no {model_file} (members: {sorted(digests)})")
    if actual != manifest.sha256:
        raise InvalidArtifact(
            f"checksum mismatch: sha256 of {model_file} is {actual}, "
            f"the manifest says {manifest.sha256}"
        )
    return manifest


def write_artifact(
    *,
    model_path: Path,
    manifest: Manifest,
    dest: Path,
    files: Mapping[str, Path] | None = None,
) -> Path:
    """Package ``model_path`` (stored as ``manifest.model_file``), the manifest and ``files``
    (archive name -> file on disk: what the manifest's processing reads, e.g. a tokenizer) into
    ``dest``. All or nothing: the file appears at ``dest`` only once it is complete."""
    members = {name: Path(path).read_bytes() for name, path in (files or {}).items()}
    members[manifest.model_file] = model_path.read_bytes()
    members[MANIFEST_NAME] = manifest_bytes(manifest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        with partial.open("wb") as raw, _deterministic_tar(raw) as tar:
            for name in sorted(members):
                data = members[name]
                _add_member(tar, name, size=len(data), data=io.BytesIO(data))
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest


def restamp_archive(*, source: Path, manifest: Manifest, dest: Path) -> Path:
    """Write ``source``'s members to ``dest`` with ``manifest`` replacing its manifest.

    Deterministic, in the layout ``write_artifact`` writes: members sorted by name at the
    archive root, PAX format, fixed mtimes, modes and owners, no gzip timestamp; every member
    but the manifest is copied byte for byte."""
    manifest_data = manifest_bytes(manifest)
    with (
        open_archive(source) as (src, members),
        open(dest, "wb") as raw,
        _deterministic_tar(raw) as out,
    ):
        names = sorted({*members, MANIFEST_NAME})
        for name in names:
            if name == MANIFEST_NAME:
                _add_member(out, name, size=len(manifest_data), data=io.BytesIO(manifest_data))
                continue
            member = members[name]
            try:
                _add_member(out, name, size=member.size, data=src.extractfile(member))
            except _TAR_ERRORS as exc:
                raise InvalidArtifact(f"cannot read {name}: {exc}") from exc
    return dest


@contextmanager
def _deterministic_tar(raw: BinaryIO) -> Iterator[tarfile.TarFile]:
    """A PAX tar, gzipped without a timestamp, written to ``raw``."""
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        yield tar


def _add_member(tar: tarfile.TarFile, name: str, *, size: int, data: IO[bytes] | None) -> None:
    """A regular file at the archive root with fixed mode, mtime and owners."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, data)


def sha256_file(path: Path) -> str:
    """The hex sha256 of the file at ``path`` (what a manifest's ``sha256`` records)."""
    with path.open("rb") as handle:
        return _sha256(handle)


def _sha256(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def manifest_bytes(manifest: Manifest) -> bytes:
    """The manifest file's exact bytes."""
    return (json.dumps(manifest.to_json_dict(), indent=2) + "\n").encode("utf-8")


@contextmanager
def open_archive(path: Path) -> Iterator[tuple[tarfile.TarFile, dict[str, tarfile.TarInfo]]]:
    """The open archive and its regular files by normalized name; refuses links, devices,
    absolute or '..' paths and duplicate names (the model server extracts these archives)."""
    unreadable = f"{Path(path).name} is not a readable tar archive"
    try:
        tar = tarfile.open(path, mode="r:*")  # noqa: SIM115 - closed by the `with tar` below
    except FileNotFoundError:
        raise InvalidArtifact(f"no artifact at {path}") from None
    except _TAR_ERRORS as exc:
        raise InvalidArtifact(f"{unreadable}: {exc}") from exc
    with tar:
        try:
            infos = tar.getmembers()
        except _TAR_ERRORS as exc:
            raise InvalidArtifact(f"{unreadable}: {exc}") from exc
        members: dict[str, tarfile.TarInfo] = {}
        for info in infos:
            name = _file_member_name(info)
            if name is None:
                continue
            if name in members:
                raise InvalidArtifact(f"archive member {name!r} appears more than once")
            members[name] = info
        yield tar, members


def read_member(
    tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str, *, limit: int
) -> bytes:
    member = members.get(name)
    if member is None:
        raise InvalidArtifact(f"the archive has no {name} (members: {sorted(members) or 'none'})")
    if member.size > limit:
        raise InvalidArtifact(f"{name} is larger than {limit} bytes")
    try:
        handle = tar.extractfile(member)
        assert handle is not None  # regular files always have data
        return handle.read()
    except _TAR_ERRORS as exc:
        raise InvalidArtifact(f"cannot read {name}: {exc}") from exc


def _file_member_name(info: tarfile.TarInfo) -> str | None:
    """A regular file's normalized name; None for a directory (skipped); refused for anything
    else (links, devices: the model server extracts these archives)."""
    if info.isdir():
        return None
    if not info.isfile():
        raise InvalidArtifact(
            f"unsafe archive member {info.name!r}: only regular files are allowed"
        )
    return safe_member_name(info.name)


def safe_member_name(raw: str) -> str:
    """``raw`` as a normalized relative path; refuses absolute paths and '..'."""
    if "\\" in raw or raw.startswith("/"):
        raise InvalidArtifact(f"unsafe path {raw!r}: must be relative, with '/' separators")
    parts = [part for part in PurePosixPath(raw).parts if part != "."]
    if ".." in parts:
        raise InvalidArtifact(f"unsafe path {raw!r}: '..' is not allowed")
    if not parts:
        raise InvalidArtifact(f"empty path {raw!r}")
    return "/".join(parts)


def parse_manifest(data: bytes) -> Manifest:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArtifact(f"{MANIFEST_NAME} is not valid JSON: {exc}") from exc
    try:
        return Manifest.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(root)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidArtifact(f"{MANIFEST_NAME} is not a valid manifest: {problems}") from exc


def check_parity_report(manifest: Manifest) -> None:
    parity = manifest.parity
    if not parity.passed:
        raise InvalidArtifact(
            f"parity check failed at build time: max abs diff {parity.max_abs_diff} "
            f"(tolerance {parity.tolerance}), argmax agreement {parity.argmax_agreement}"
        )
    if parity.max_abs_diff is None:
        # Only a model packaged with nothing to compare against may say so.
        if parity.reference != "none":
            raise InvalidArtifact(
                f"parity report compares with {parity.reference!r} but has no max abs diff"
            )
        return
    # A hand-edited report could say passed while its own numbers say otherwise.
    if not math.isfinite(parity.max_abs_diff) or parity.max_abs_diff > parity.tolerance:
        raise InvalidArtifact(
            f"parity report says passed but max abs diff {parity.max_abs_diff} "
            f"exceeds its tolerance {parity.tolerance}"
        )
