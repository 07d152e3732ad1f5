"""Publish a ``model.tar.gz`` as a new immutable version of its model.

The flow, and what each step guards against:

1. ``verify`` the artifact (injected: the CLI passes ``model_build.verify.verify_artifact``,
   which also checks the ONNX graph; the router passes ``archive.check_artifact``, which needs
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

Reading and checking the archive itself is ``functions.core.archive``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from functions.core import progress
from functions.core.archive import check_stream, restamp_archive
from functions.core.clock import utc_now
from functions.core.exceptions import InvalidArtifact
from functions.core.manifest import Manifest
from functions.core.naming import endpoint_name, is_model_name, variant_name
from functions.core.registry.base import DEFAULT_ALIAS, Alias, ModelVersion, PendingMove
from functions.core.registry.exceptions import AliasNotFound, DuplicateArtifact
from functions.core.registry.rules import check_alias_name

if TYPE_CHECKING:
    from functions.core.artifacts.base import ArtifactStore
    from functions.core.deploy.base import Deployer
    from functions.core.registry.base import Registry
    from functions.core.settings import Settings


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


@contextmanager
def _temp_file(*, suffix: str) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(suffix=suffix)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)
