"""The data plane: Open Inference Protocol model metadata, readiness and inference.

Every route needs a key allowed the path's model. Inference answers carry ``x-model-version``
(the version that answered) and, when an alias chose it, ``x-model-alias``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from functions.api.deps import (
    BodyDep,
    ClockDep,
    ModelCallerDep,
    RegistryDep,
    RngDep,
    RuntimeDep,
    StateDep,
)
from functions.api.errors import VERSION_HEADER
from functions.api.schemas import VersionPath
from functions.api.services.inference import InferenceResult, InferenceService
from functions.api.services.lookup import CachedRegistryReads

router = APIRouter(prefix="/v2/models", tags=["inference"])

ALIAS_HEADER = "x-model-alias"
BINARY_HEADER = "inference-header-content-length"
BINARY_RESPONSE_TYPE = "application/octet-stream"


async def get_inference_service(
    state: StateDep, registry: RegistryDep, runtime: RuntimeDep, rng: RngDep, clock: ClockDep
) -> InferenceService:
    reads = CachedRegistryReads(registry=registry, cache=state.lookups, now=clock())
    return InferenceService(reads=reads, runtime=runtime, rng=rng)


ServiceDep = Annotated[InferenceService, Depends(get_inference_service)]
AliasHeader = Annotated[str | None, Header(alias=ALIAS_HEADER)]
AliasQuery = Annotated[str | None, Query(alias="alias")]
BinaryHeader = Annotated[str | None, Header(alias=BINARY_HEADER)]


@router.get("/{model}")
def model_metadata(model: str, caller: ModelCallerDep, service: ServiceDep) -> dict[str, Any]:
    return service.model_metadata(model=model)


@router.get("/{model}/ready")
def model_ready(
    model: str,
    caller: ModelCallerDep,
    service: ServiceDep,
    alias_header: AliasHeader = None,
    alias_query: AliasQuery = None,
) -> dict[str, Any]:
    target = service.by_alias(model=model, alias=alias_header or alias_query)
    return {"name": model, "version": str(target.version.version), "ready": True}


@router.get("/{model}/versions/{version}")
def version_metadata(
    model: str, version: VersionPath, caller: ModelCallerDep, service: ServiceDep
) -> dict[str, Any]:
    return service.version_metadata(model=model, version=version)


@router.get("/{model}/versions/{version}/ready")
def version_ready(
    model: str, version: VersionPath, caller: ModelCallerDep, service: ServiceDep
) -> dict[str, Any]:
    service.pinned(model=model, version=version)
    return {"name": model, "version": str(version), "ready": True}


@router.post("/{model}/infer")
def infer(
    model: str,
    request: Request,
    caller: ModelCallerDep,
    body: BodyDep,
    service: ServiceDep,
    alias_header: AliasHeader = None,
    alias_query: AliasQuery = None,
    binary_header: BinaryHeader = None,
) -> Response:
    target = service.by_alias(model=model, alias=alias_header or alias_query)
    _observe(request, model=model, version=target.version.version)
    result = service.infer(target=target, body=body, json_header_length=binary_header)
    return _response(request, model=model, result=result)


@router.post("/{model}/versions/{version}/infer")
def infer_version(
    model: str,
    version: VersionPath,
    request: Request,
    caller: ModelCallerDep,
    body: BodyDep,
    service: ServiceDep,
    binary_header: BinaryHeader = None,
) -> Response:
    target = service.pinned(model=model, version=version)
    _observe(request, model=model, version=version)
    result = service.infer(target=target, body=body, json_header_length=binary_header)
    return _response(request, model=model, result=result)


def _observe(request: Request, *, model: str, version: int) -> None:
    """What the request metrics are labelled with (see ``functions.api.observability``)."""
    request.state.model = model
    request.state.model_version = version


def _response(request: Request, *, model: str, result: InferenceResult) -> Response:
    _observe(request, model=model, version=result.version)
    headers = {VERSION_HEADER: str(result.version)}
    if result.alias is not None:
        headers[ALIAS_HEADER] = result.alias
    media_type = result.content_type
    if result.json_header_size is not None:
        # The binary extension's own framing: the client finds the JSON header by this length.
        headers[BINARY_HEADER] = str(result.json_header_size)
        media_type = BINARY_RESPONSE_TYPE
    return Response(content=result.body, media_type=media_type, headers=headers)
