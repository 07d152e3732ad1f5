"""The control plane over models: versions, registration, aliases, history.

An admin key administers the models in its scope (``*``: all): other models are 403, and
``list_models`` shows only its own. Every write clears the router's lookup cache, so this
container serves the change at once (others within ``registry_cache_ttl_seconds``).
"""

from __future__ import annotations

from typing import Any

from functions.api.services.lookup import LookupCache
from functions.api.views import (
    alias_event_view,
    alias_view,
    decision_view,
    pending_move_view,
    version_view,
)
from functions.core import approval, keys, publishing
from functions.core.artifacts.base import ArtifactStore
from functions.core.deploy import rollout
from functions.core.deploy.base import Deployer
from functions.core.exceptions import InvalidArtifact, InvalidRequest
from functions.core.manifest import Manifest
from functions.core.mirror import Mirror, NoMirror, sync_after_write
from functions.core.registry.base import ApiKey, PendingMove, Registry
from functions.core.settings import Settings

# Admins register what they uploaded to the data area under this prefix, nothing else in it.
UPLOADS_PREFIX = "uploads/"


class CatalogService:
    def __init__(
        self,
        *,
        registry: Registry,
        store: ArtifactStore,
        settings: Settings,
        lookups: LookupCache,
        actor: str,
        caller: ApiKey,
        deployer: Deployer | None = None,
        mirror: Mirror | None = None,
    ) -> None:
        self.registry = registry
        self.deployer = deployer
        self.mirror: Mirror = mirror if mirror is not None else NoMirror()
        self.store = store
        self.settings = settings
        self.lookups = lookups
        self.actor = actor
        self.caller = caller

    # Reads ----------------------------------------------------------------------------
    def list_models(self) -> list[dict[str, Any]]:
        """The models in the caller's scope."""
        models = []
        for name in self.registry.list_models():
            if not self.caller.may_call(name):
                continue
            versions = self.registry.list_versions(model=name)
            active = [v.version for v in versions if v.status == "active"]
            aliases = self.registry.list_aliases(model=name)
            models.append(
                {
                    "name": name,
                    "latest_version": versions[-1].version,
                    "active_versions": active,
                    "aliases": {a.alias: a.version for a in aliases},
                }
            )
        return models

    def list_versions(self, *, model: str) -> list[dict[str, Any]]:
        keys.authorize_model(self.caller, model)
        return [version_view(v) for v in self.registry.list_versions(model=model)]

    def get_version(self, *, model: str, version: int) -> dict[str, Any]:
        keys.authorize_model(self.caller, model)
        record = self.registry.get_version(model=model, version=version)
        return version_view(record, with_manifest=True)

    def list_aliases(self, *, model: str) -> list[dict[str, Any]]:
        keys.authorize_model(self.caller, model)
        self.registry.list_versions(model=model)  # 404 for an unknown model, not an empty list
        return [alias_view(a) for a in self.registry.list_aliases(model=model)]

    def history(self, *, model: str, alias: str | None) -> list[dict[str, Any]]:
        keys.authorize_model(self.caller, model)
        self.registry.list_versions(model=model)
        return [alias_event_view(e) for e in self.registry.alias_history(model=model, alias=alias)]

    def decisions(self, *, model: str) -> list[dict[str, Any]]:
        keys.authorize_model(self.caller, model)
        return [decision_view(d) for d in self.registry.list_decisions(model=model)]

    # Writes ---------------------------------------------------------------------------
    def register(
        self, *, model: str, artifact_key: str, alias: str | None
    ) -> tuple[dict[str, Any], bool]:
        """Publish an uploaded ``model.tar.gz`` as ``model``'s next version.

        Returns the version and whether it was created (False: the same model file was
        already registered, as that version). The artifact is checked without onnx
        (``archive.check_artifact``): manifest, checksum, parity report, and that the
        manifest names ``model``.
        """
        keys.authorize_model(self.caller, model)
        if not artifact_key.startswith(UPLOADS_PREFIX):
            raise InvalidRequest(
                f"artifact_key must name an object under {UPLOADS_PREFIX!r}",
                code="invalid_artifact_key",
            )

        def names_model(manifest: Manifest) -> None:
            if manifest.name != model:
                raise InvalidArtifact(
                    f"the artifact's manifest names model {manifest.name!r}, not {model!r}"
                )

        # Read once as a stream and copied server-side: API Gateway gives the whole request
        # 29 s, and /tmp is no place for a large artifact.
        result = publishing.publish_uploaded(
            key=artifact_key,
            registry=self.registry,
            store=self.store,
            settings=self.settings,
            actor=self.actor,
            alias=alias,
            check=names_model,
            deployer=self.deployer,
        )
        self.lookups.clear()
        view = version_view(result.version, with_manifest=True)
        view["aliases"] = [alias_view(a) for a in result.aliases]
        view["pending"] = [pending_move_view(m) for m in result.pending]
        if result.held:
            view["held"] = {"aliases": list(result.held), "reason": result.held_reason}
        self._mirror(view, model=model, version=result.version.version)
        return view, result.created

    def decide(self, *, model: str, version: int, decision: str, reason: str) -> dict[str, Any]:
        keys.authorize_model(self.caller, model)
        record = approval.decide(
            registry=self.registry,
            model=model,
            version=version,
            decision=decision,
            actor=self.actor,
            reason=reason,
            two_person=self.settings.require_approval,
        )
        view = decision_view(record)
        self._mirror(view, model=model, version=version)
        return view

    def _mirror(self, view: dict[str, Any], *, model: str, version: int) -> None:
        """After the registry write: the SageMaker Model Registry (AWS). Its outcome goes in
        the answer as ``mirror``; a failure there leaves the recorded version or decision
        as it is (``functions.core.mirror.sync_after_write``)."""
        result = sync_after_write(
            mirror=self.mirror, registry=self.registry, model=model, version=version
        )
        if result.status != "off":
            view["mirror"] = result.view()

    def retire(self, *, model: str, version: int) -> dict[str, Any]:
        keys.authorize_model(self.caller, model)
        record = self.registry.retire_version(model=model, version=version, actor=self.actor)
        self.lookups.clear()
        return version_view(record)

    def set_alias(
        self,
        *,
        model: str,
        alias: str,
        version: int,
        canary_version: int | None,
        canary_weight: int,
    ) -> dict[str, Any]:
        keys.authorize_model(self.caller, model)
        record = rollout.set_alias(
            registry=self.registry,
            deployer=self.deployer,
            model=model,
            alias=alias,
            version=version,
            actor=self.actor,
            canary_version=canary_version,
            canary_weight=canary_weight,
            require_approval=self.settings.require_approval,
        )
        self.lookups.clear()
        if isinstance(record, PendingMove):
            return pending_move_view(record)
        return alias_view(record)

    def set_traffic(self, *, model: str, alias: str, **given: Any) -> dict[str, Any]:
        """Change the alias's shadow version and rates (those given; the others stay)."""
        from functions.core.capture.traffic import set_traffic

        keys.authorize_model(self.caller, model)
        record = set_traffic(
            registry=self.registry, model=model, alias=alias, actor=self.actor, **given
        )
        self.lookups.clear()
        return alias_view(record)

    def compare(
        self, *, model: str, alias: str, since: str | None, html: bool = False
    ) -> dict[str, Any] | str:
        """The comparison report of the alias's captures (``functions.core.capture``)."""
        from functions.core import capture
        from functions.core.registry.rules import check_alias_name

        keys.authorize_model(self.caller, model)
        check_alias_name(alias)
        report = capture.compare_alias(
            registry=self.registry, store=self.store, model=model, alias=alias, since=since
        )
        if html:
            from functions.core.capture.html import render_html

            return render_html(report)
        return report

    def rollback(self, *, model: str, alias: str) -> dict[str, Any]:
        keys.authorize_model(self.caller, model)
        record = rollout.rollback_alias(
            registry=self.registry,
            deployer=self.deployer,
            model=model,
            alias=alias,
            actor=self.actor,
            require_approval=self.settings.require_approval,
        )
        self.lookups.clear()
        return alias_view(record)
