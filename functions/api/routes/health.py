"""Server liveness, readiness and metadata (Open Inference Protocol); no key needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from functions.api.deps import RegistryDep
from functions.api.openapi import PUBLIC, error_responses
from functions.core.exceptions import UpstreamUnavailable
from functions.core.registry.exceptions import KeyNotFound

router = APIRouter(tags=["health"], responses=error_responses(*PUBLIC))

SERVER_NAME = "modelway"
EXTENSIONS = ["binary_tensor_data"]
# A key id no key can have (ids are "key_" + hex): reading it is one cheap point lookup.
_PROBE_KEY_ID = "readiness-probe"


@router.get("/v2")
async def server_metadata() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        server_version = version("modelway")
    except PackageNotFoundError:
        server_version = "unknown"
    return {"name": SERVER_NAME, "version": server_version, "extensions": EXTENSIONS}


@router.get("/v2/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/v2/health/ready", responses=error_responses(503))
def ready(registry: RegistryDep) -> dict[str, bool]:
    """Ready when the registry answers: every routed request needs it."""
    try:
        registry.get_key(key_id=_PROBE_KEY_ID)
    except KeyNotFound:
        pass
    except Exception as exc:
        raise UpstreamUnavailable("the registry is unreachable", code="not_ready") from exc
    return {"ready": True}
