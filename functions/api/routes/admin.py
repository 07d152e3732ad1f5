"""The control plane (admin scope): models, versions, aliases, keys.

Moves are recorded with the caller's key as the actor (``"<name> (<key id>)"``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Response, status
from fastapi.responses import HTMLResponse

from functions.api.deps import AdminDep, RegistryDep, StateDep, StoreDep
from functions.api.openapi import KEYED, error_responses
from functions.api.schemas import CreateKey, Decide, RegisterVersion, SetAlias, VersionPath
from functions.api.services.access import KeyService
from functions.api.services.catalog import CatalogService
from functions.core.registry.base import ApiKey

router = APIRouter(prefix="/v1", tags=["admin"], responses=error_responses(*KEYED))


def actor_of(key: ApiKey) -> str:
    return key.key_id if key.name == key.key_id else f"{key.name} ({key.key_id})"


async def get_catalog(
    admin: AdminDep, state: StateDep, registry: RegistryDep, store: StoreDep
) -> CatalogService:
    return CatalogService(
        registry=registry,
        store=store,
        settings=state.settings,
        lookups=state.lookups,
        actor=actor_of(admin),
        caller=admin,
        deployer=state.deployer,
        mirror=state.mirror,
    )


async def get_key_service(admin: AdminDep, state: StateDep, registry: RegistryDep) -> KeyService:
    return KeyService(
        registry=registry, key_cache=state.key_cache, gateway=state.key_gateway, caller=admin
    )


CatalogDep = Annotated[CatalogService, Depends(get_catalog)]
KeysDep = Annotated[KeyService, Depends(get_key_service)]


# Models and versions --------------------------------------------------------------------
@router.get("/models")
def list_models(catalog: CatalogDep) -> dict[str, Any]:
    return {"models": catalog.list_models()}


@router.get("/models/{model}/versions", responses=error_responses(404))
def list_versions(model: str, catalog: CatalogDep) -> dict[str, Any]:
    return {"model": model, "versions": catalog.list_versions(model=model)}


@router.post(
    "/models/{model}/versions",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "The file was registered already: that version."},
        **error_responses(404, 409, 422),
    },
)
def register_version(
    model: str, body: RegisterVersion, catalog: CatalogDep, response: Response
) -> dict[str, Any]:
    """201 with the new version; 200 with the existing one when the file was registered.
    Where the environment needs approval, ``held`` names the aliases not moved and why
    (publishing the same file again after an approval moves them). On AWS, ``mirror`` says
    whether the SageMaker Model Registry was written (``failed`` names the retry)."""
    version, created = catalog.register(
        model=model, artifact_key=body.artifact_key, alias=body.alias
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return version


@router.get("/models/{model}/versions/{version}", responses=error_responses(404))
def get_version(model: str, version: VersionPath, catalog: CatalogDep) -> dict[str, Any]:
    return catalog.get_version(model=model, version=version)


@router.delete("/models/{model}/versions/{version}", responses=error_responses(404, 409))
def retire_version(model: str, version: VersionPath, catalog: CatalogDep) -> dict[str, Any]:
    """Retire the version: it stops serving (404 ``version_retired`` on the data plane) but
    stays readable here with ``status: retired``; retiring it again answers the same record.
    409 while an alias (or its canary) points at it."""
    return catalog.retire(model=model, version=version)


# Aliases ----------------------------------------------------------------------------------
@router.get("/models/{model}/aliases", responses=error_responses(404))
def list_aliases(model: str, catalog: CatalogDep) -> dict[str, Any]:
    return {"model": model, "aliases": catalog.list_aliases(model=model)}


@router.put("/models/{model}/aliases/{alias}", responses=error_responses(404, 409, 422))
def set_alias(
    model: str, alias: str, body: SetAlias, catalog: CatalogDep, response: Response
) -> dict[str, Any]:
    """200 with the alias moved; 202 with the move pending until its target serves. Shadow
    and capture settings given (``shadow_version``, ``shadow_percent``, ``capture_percent``)
    apply at once, with or without a move (a body of only those leaves the alias where it
    is); each change is in the alias's history."""
    view: dict[str, Any] | None = None
    if body.version is not None:
        view = catalog.set_alias(
            model=model,
            alias=alias,
            version=body.version,
            canary_version=body.canary_version,
            canary_weight=body.canary_weight,
        )
    if body.traffic_fields():
        # A null rate keeps the rate; a null shadow_version removes the shadow.
        given = {
            name: getattr(body, name)
            for name in body.traffic_fields()
            if name == "shadow_version" or getattr(body, name) is not None
        }
        traffic = catalog.set_traffic(model=model, alias=alias, **given)
        view = traffic if view is None or not view.get("pending") else view
    assert view is not None  # the body's validator asks for a move or a traffic setting
    if view.get("pending"):
        response.status_code = status.HTTP_202_ACCEPTED
    return view


@router.post("/models/{model}/aliases/{alias}/rollback", responses=error_responses(404, 409, 422))
def rollback_alias(model: str, alias: str, catalog: CatalogDep) -> dict[str, Any]:
    return catalog.rollback(model=model, alias=alias)


@router.get("/models/{model}/history", responses=error_responses(404))
def alias_history(
    model: str, catalog: CatalogDep, alias: Annotated[str | None, Query()] = None
) -> dict[str, Any]:
    """The alias moves (``events``) and, beside them, the approval decisions on the model's
    versions (``decisions``), each oldest first."""
    events = catalog.history(model=model, alias=alias)
    return {"model": model, "events": events, "decisions": catalog.decisions(model=model)}


@router.get(
    "/models/{model}/compare",
    responses={
        200: {
            "description": "The report (JSON), or with `format=html` a web page of it.",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        **error_responses(400, 404, 422),
    },
)
def compare(
    model: str,
    catalog: CatalogDep,
    alias: Annotated[str, Query(description="The alias whose captures to read.")] = "default",
    since: Annotated[
        str | None,
        Query(description="An ISO date/time, or an age such as `24h` or `7d`.", max_length=40),
    ] = None,
    format: Annotated[Literal["json", "html"], Query()] = "json",
) -> Any:
    """Per version: requests, error rate, p50/p99 latency and input drift (PSI against the
    version's build-time reference); per primary/shadow pair: agreement (argmax, cosine or
    max |Δ| by output), overall and over time. 404 ``no_captures`` when nothing was captured."""
    report = catalog.compare(model=model, alias=alias, since=since, html=format == "html")
    if isinstance(report, str):
        return HTMLResponse(report)
    return report


# Approval ---------------------------------------------------------------------------------
# The body is optional: a decision without a reason is still a decision.
DecideBody = Annotated[
    Decide | None,
    Body(openapi_examples={"with a reason": {"value": {"reason": "parity and latency ok"}}}),
]


@router.post("/models/{model}/versions/{version}/approve", responses=error_responses(404, 409, 422))
def approve_version(
    model: str, version: VersionPath, catalog: CatalogDep, body: DecideBody = None
) -> dict[str, Any]:
    """Record an approval. 409 ``self_approval`` where the environment needs two people and
    the caller published the version. On AWS, ``mirror`` says whether the package's
    ModelApprovalStatus in the SageMaker Model Registry followed."""
    reason = body.reason if body is not None else ""
    return catalog.decide(model=model, version=version, decision="approved", reason=reason)


@router.post("/models/{model}/versions/{version}/reject", responses=error_responses(404, 422))
def reject_version(
    model: str, version: VersionPath, catalog: CatalogDep, body: DecideBody = None
) -> dict[str, Any]:
    """Record a rejection: no alias moves to the version where the environment needs
    approval. On AWS, ``mirror`` as for approve."""
    reason = body.reason if body is not None else ""
    return catalog.decide(model=model, version=version, decision="rejected", reason=reason)


# Keys -------------------------------------------------------------------------------------
@router.post("/keys", status_code=status.HTTP_201_CREATED, responses=error_responses(422))
def create_key(body: CreateKey, service: KeysDep) -> dict[str, Any]:
    """The secret is in this response and nowhere else, ever."""
    return service.create(name=body.name, models=body.models, admin=body.admin, tenant=body.tenant)


@router.get("/keys")
def list_keys(service: KeysDep) -> dict[str, Any]:
    return {"keys": service.list()}


@router.get("/keys/{key_id}", responses=error_responses(404))
def get_key(key_id: str, service: KeysDep) -> dict[str, Any]:
    return service.get(key_id=key_id)


@router.delete("/keys/{key_id}", responses=error_responses(404))
def revoke_key(key_id: str, service: KeysDep) -> dict[str, Any]:
    """Revoke the key: it stops authenticating at once (401 ``key_revoked``) but stays
    readable here with ``active: false`` and ``revoked_at``, for audit; revoking it again
    answers the same record. A key this admin does not administer is 404."""
    return service.revoke(key_id=key_id)


@router.post("/keys/{key_id}/rotate", responses=error_responses(404, 409))
def rotate_key(key_id: str, service: KeysDep) -> dict[str, Any]:
    """A new secret for the key (shown once), same id and scopes; the old one stops at once.
    409 ``key_revoked`` for a revoked key."""
    return service.rotate(key_id=key_id)
