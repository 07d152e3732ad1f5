"""Batch jobs, read side: any key may read the jobs of the models in its scope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from functions.api.deps import CallerDep, RegistryDep
from functions.api.openapi import KEYED, error_responses
from functions.api.services.access import JobService

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=error_responses(*KEYED))


async def get_job_service(caller: CallerDep, registry: RegistryDep) -> JobService:
    return JobService(registry=registry, caller=caller)


JobsDep = Annotated[JobService, Depends(get_job_service)]


@router.get("")
def list_jobs(
    service: JobsDep,
    model: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Newest first."""
    return {"jobs": service.list(model=model, limit=limit)}


@router.get("/{job_id}", responses=error_responses(404))
def get_job(job_id: str, service: JobsDep) -> dict[str, Any]:
    return service.get(job_id=job_id)
