"""Publish a ``model.tar.gz`` as a new immutable version of its model.

The flow, and what each step guards against:

1. ``verify`` the artifact (injected: the CLI passes ``model_build.verify.verify_artifact``,
   which also checks the ONNX graph; the router passes ``check_artifact`` below, which needs
   no onnx). Nothing is stored for an artifact that fails.
2. Deduplicate by the model file's sha256: publishing the same file again names the existing
   version (``created=False``) and creates nothing; it resumes what a publish interrupted
   left undone (the endpoint change, the alias), so a publish either completes or can be
   finished by running it again.
3. Reserve the next version number (never reused, even when a later step fails).
4. Re-pack the archive with that number stamped into the manifest (``model.onnx`` byte for
   byte unchanged; the archive deterministic for given contents). An archive already in the
   store (``publish_uploaded``: the router's path) is copied server-side instead, as uploaded.
5. Upload (or copy) it, then register the version. A racing publisher of the same file that
   registered first wins: our upload is deleted and the winner returned with
   ``created=False``. Any other failure after the upload deletes it too, so there is never
   half a version.
6. Point aliases at the new version (the rule is in ``publish_artifact``'s docstring).

The pure-python archive helpers here (``read_manifest``, ``check_artifact``) use only tarfile
and hashlib, so the Lambda router can run them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO, Protocol

from pydantic import ValidationError

from functions.core import progress
from functions.core.clock import utc_now
from functions.core.errors import InvalidArtifact
from functions.core.manifest import MANIFEST_NAME, Manifest
from functions.core.naming import endpoint_name, is_model_name, variant_name
from functions.core.registry.base import DEFAULT_ALIAS, Alias, ModelVersion, PendingMove
from functions.core.registry.exceptions import AliasNotFound, DuplicateArtifact
from functions.core.registry.rules import check_alias_name

if TYPE_CHECKING:
    from functions.core.artifacts.base import ArtifactStore
    from functions.core.deploy.base import Deployer
    from functions.core.registry.base import Registry
    from functions.core.settings import Settings

# A manifest is a few KiB; anything this large is not one, and is not worth parsing.
MAX_MANIFEST_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)


class Verifier(Protocol):
    def __call__(self, *, path: Path) -> Manifest:
        """Return the artifact's manifest, or raise ``InvalidArtifact``."""


@dataclass(frozen=True)
class PublishResult:
    version: ModelVersion
    # False when the same model file was already registered; ``version`` is that one.
    created: bool
    # The aliases this publish moved or created, in the order they were set.
    aliases: tuple[Alias, ...] = ()
    # The alias moves waiting for the new version to be live on the endpoint (``rollout``).
    pending: tuple[PendingMove, ...] = ()
    # The aliases this publish would have moved but the environment's approval gate held:
    # the version is not approved (yet). ``approval.NotApproved``'s message says what to do.
    held: tuple[str, ...] = ()
    held_reason: str | None = None


def publish_artifact(
    *,
    path: Path,
    registry: Registry,
    store: ArtifactStore,
    settings: Settings,
    actor: str,
    alias: str | None = DEFAULT_ALIAS,
    verify: Verifier,
    deployer: Deployer | None = None,
) -> PublishResult:
    """Publish the artifact at ``path``; see the module docstring for the flow.

    Alias rule: a newly created version is pointed at by ``alias`` (created if missing, moved
    if it exists; ``None`` moves nothing), and a model's first version always gets ``default``
    as well, so a freshly published model serves at once. A publish that finds the file
    already registered moves no alias: re-running a publish is harmless.

    ``deployer`` (AWS: SageMaker) makes the new version servable before any alias moves to
    it; ``None`` (local) leaves serving to the model server, which serves every version.
    """
    if alias is not None:
        check_alias_name(alias)
    progress.report("verifying the artifact")
    manifest = verify(path=path)

    def store_version(*, model: str, number: int, stamped: Manifest) -> str:
        with _temp_file(suffix=".tar.gz") as repacked:
            restamp_archive(source=path, manifest=stamped, dest=repacked)
            size = repacked.stat().st_size
            progress.report("uploading", done=0, total=size)
            uri = store.put_artifact(model=model, version=number, source=repacked)
            progress.report("uploading", done=size, total=size)
        return uri

    return _publish(
        manifest=manifest,
        store_version=store_version,
        registry=registry,
        store=store,
        settings=settings,
        actor=actor,
        alias=alias,
        deployer=deployer,
    )


def publish_uploaded(
    *,
    key: str,
    registry: Registry,
    store: ArtifactStore,
    settings: Settings,
    actor: str,
    alias: str | None = DEFAULT_ALIAS,
    check: Callable[[Manifest], None] | None = None,
    deployer: Deployer | None = None,
) -> PublishResult:
    """Publish the archive already in the store's data area at ``key`` (the router's path:
    a caller uploaded it under ``uploads/``), without downloading or re-uploading it.

    The archive is read once, as a stream (``check_stream``: no disk, memory for the manifest
    only), and verified like ``check_artifact``; ``check`` adds the caller's own rules. The
    bytes verified are the bytes stored: the object's version id is read first and both the
    read and the server-side copy name it. The copy is the archive as uploaded, not re-stamped:
    the registry holds the manifest with its version number, and a server learns its version
    from where it finds the archive (locally) or from its container environment (SageMaker).
    """
    if alias is not None:
        check_alias_name(alias)
    version_id = store.object_version(key=key)
    progress.report("verifying the artifact")
    with store.open_object(key=key, version_id=version_id) as reader:
        manifest = check_stream(reader=reader)
    if check is not None:
        check(manifest)

    def store_version(*, model: str, number: int, stamped: Manifest) -> str:
        progress.report("copying")
        return store.copy_artifact(
            model=model, version=number, source_key=key, source_version_id=version_id
        )

    return _publish(
        manifest=manifest,
        store_version=store_version,
        registry=registry,
        store=store,
        settings=settings,
        actor=actor,
        alias=alias,
        deployer=deployer,
    )


class _StoreVersion(Protocol):
    def __call__(self, *, model: str, number: int, stamped: Manifest) -> str:
        """Store the version's artifact; returns its URI."""


def _publish(
    *,
    manifest: Manifest,
    store_version: _StoreVersion,
    registry: Registry,
    store: ArtifactStore,
    settings: Settings,
    actor: str,
    alias: str | None,
    deployer: Deployer | None,
) -> PublishResult:
    model = manifest.name
    if not is_model_name(model):
        raise InvalidArtifact(
            f"invalid model name {model!r}: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 40 characters "
            "(SageMaker's naming rule)"
        )
    existing = registry.find_by_sha256(model=model, sha256=manifest.sha256)
    if existing is not None:
        return _point_aliases(
            registry=registry,
            deployer=deployer,
            version=existing,
            alias=alias,
            actor=actor,
            created=False,
            gated=settings.require_approval,
        )

    number = registry.next_version(model=model)
    stamped = manifest.model_copy(update={"version": number})
    uploaded = False
    try:
        uploaded = True  # from here on a failure may leave an object behind: delete it
        uri = store_version(model=model, number=number, stamped=stamped)
        progress.report("registering the version")
        prefix = settings.resolved_endpoint_prefix
        version = registry.register_version(
            version=ModelVersion(
                model=model,
                version=number,
                sha256=manifest.sha256,
                artifact_uri=uri,
                manifest=stamped.to_json_dict(),
                created_at=utc_now(),
                created_by=actor,
                endpoint_name=endpoint_name(prefix=prefix, model=model),
                variant_name=variant_name(version=number),
            )
        )
    except DuplicateArtifact as exc:
        # Another publisher registered the same file between our check and our write.
        store.delete_artifact(model=model, version=number)
        return PublishResult(version=exc.existing, created=False)
    except BaseException:
        if uploaded:
            store.delete_artifact(model=model, version=number)
        raise

    return _point_aliases(
        registry=registry,
        deployer=deployer,
        version=version,
        alias=alias,
        actor=actor,
        created=True,
        gated=settings.require_approval,
    )


def _point_aliases(
    *,
    registry: Registry,
    deployer: Deployer | None,
    version: ModelVersion,
    alias: str | None,
    actor: str,
    created: bool,
    gated: bool = False,
) -> PublishResult:
    """Make ``version`` servable and point ``alias`` (and ``default`` for a first version)
    at it. For a version published before (``created=False``) only what is not done yet: a
    retry after an endpoint that was busy, or a failure half-way, finishes the publish."""
    from functions.core import approval
    from functions.core.deploy import rollout

    model = version.model
    targets = [alias] if alias is not None else []
    if DEFAULT_ALIAS not in targets and not _has_alias(registry, model, DEFAULT_ALIAS):
        targets.append(DEFAULT_ALIAS)
    held: tuple[str, ...] = ()
    held_reason = None
    if gated and targets:
        # An approval-gated environment: a version nobody has approved yet serves only
        # pinned; its aliases follow once another admin approves it (re-running the publish
        # then moves them, as ``modelway alias set`` does).
        try:
            approval.check_move(registry=registry, model=model, versions=(version.version,))
        except approval.NotApproved as exc:
            held, held_reason, targets = tuple(targets), exc.message, []
    if not created:
        if version.status != "active":
            return PublishResult(version=version, created=False)
        if deployer is not None:
            rollout.complete_pending_moves(
                registry=registry, deployer=deployer, model=model, require_approval=gated
            )
        targets = [name for name in targets if not _points_at(registry, model, name, version)]
        if not targets:
            waiting = registry.list_pending_moves(model=model)
            return PublishResult(
                version=version,
                created=False,
                pending=tuple(m for m in waiting if m.version == version.version),
                held=held,
                held_reason=held_reason,
            )
    if deployer is not None:
        progress.report("deploying to the endpoint")
        rollout.deploy_published(registry=registry, deployer=deployer, version=version)
    progress.report("moving aliases")
    moved: list[Alias] = []
    pending: list[PendingMove] = []
    for name in targets:
        outcome = rollout.set_alias(
            registry=registry,
            deployer=deployer,
            model=model,
            alias=name,
            version=version.version,
            actor=actor,
            require_approval=gated,
        )
        if isinstance(outcome, PendingMove):
            pending.append(outcome)
        else:
            moved.append(outcome)
    return PublishResult(
        version=version,
        created=created,
        aliases=tuple(moved),
        pending=tuple(pending),
        held=held,
        held_reason=held_reason,
    )


def _points_at(registry: Registry, model: str, alias: str, version: ModelVersion) -> bool:
    """Whether ``alias`` already names ``version`` alone, or a move there is pending."""
    try:
        current = registry.get_alias(model=model, alias=alias)
    except AliasNotFound:
        current = None
    if current is not None and current.version == version.version and not current.canary_version:
        return True
    return any(
        m.alias == alias and m.version == version.version and m.canary_version is None
        for m in registry.list_pending_moves(model=model)
    )


def _has_alias(registry: Registry, model: str, alias: str) -> bool:
    try:
        registry.get_alias(model=model, alias=alias)
    except AliasNotFound:
        return False
    return True


# The archive ----------------------------------------------------------------------------------
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
        digest = hashlib.sha256()
        try:
            handle = tar.extractfile(member)
            assert handle is not None  # regular files always have data
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        except _TAR_ERRORS as exc:
            raise InvalidArtifact(f"cannot read {model_file}: {exc}") from exc
    if digest.hexdigest() != manifest.sha256:
        raise InvalidArtifact(
            f"checksum mismatch: sha256 of {model_file} is {digest.hexdigest()}, "
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
                if info.isdir():
                    continue
                if not info.isfile():
                    raise InvalidArtifact(
                        f"unsafe archive member {info.name!r}: only regular files are allowed"
                    )
                name = safe_member_name(info.name)
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
                digest = hashlib.sha256()
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                digests[name] = digest.hexdigest()
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


def restamp_archive(*, source: Path, manifest: Manifest, dest: Path) -> Path:
    """Write ``source``'s members to ``dest`` with ``manifest`` replacing its manifest.

    Deterministic, in the layout ``model_build.package`` writes: members sorted by name at
    the archive root, PAX format, fixed mtimes, modes and owners, no gzip timestamp; every
    member but the manifest is copied byte for byte."""
    manifest_data = manifest_bytes(manifest)
    with (
        open_archive(source) as (src, members),
        open(dest, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as out,
    ):
        names = sorted({*members, MANIFEST_NAME})
        for name in names:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if name == MANIFEST_NAME:
                info.size = len(manifest_data)
                out.addfile(info, io.BytesIO(manifest_data))
                continue
            member = members[name]
            info.size = member.size
            try:
                out.addfile(info, src.extractfile(member))
            except _TAR_ERRORS as exc:
                raise InvalidArtifact(f"cannot read {name}: {exc}") from exc
    return dest


def manifest_bytes(manifest: Manifest) -> bytes:
    """The manifest file's exact bytes (the same rendering ``model_build.package`` uses)."""
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
            if info.isdir():
                continue
            if not info.isfile():
                raise InvalidArtifact(
                    f"unsafe archive member {info.name!r}: only regular files are allowed"
                )
            name = safe_member_name(info.name)
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


@contextmanager
def _temp_file(*, suffix: str) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(suffix=suffix)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)
