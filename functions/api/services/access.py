"""The control plane over API keys and the read side of batch jobs."""

from __future__ import annotations

from typing import Any

from functions.api.callers import KeyCache
from functions.api.views import job_view
from functions.core import keys
from functions.core.registry.base import ApiKey, Registry


class KeyService:
    """Key administration. Revoking or rotating drops the key from this container's cache
    at once; other containers stop accepting the old secret within the key cache TTL."""

    def __init__(
        self, *, registry: Registry, key_cache: KeyCache, gateway: keys.KeyGateway | None
    ) -> None:
        self.registry = registry
        self.key_cache = key_cache
        self.gateway = gateway

    def create(self, *, name: str, models: list[str], admin: bool, tenant: str) -> dict[str, Any]:
        key, secret = keys.create_key(
            registry=self.registry,
            name=name,
            models=models,
            admin=admin,
            tenant=tenant,
            gateway=self.gateway,
        )
        return {**keys.key_summary(key), "secret": secret}

    def list(self) -> list[dict[str, Any]]:
        return [keys.key_summary(k) for k in self.registry.list_keys()]

    def get(self, *, key_id: str) -> dict[str, Any]:
        return keys.key_summary(self.registry.get_key(key_id=key_id))

    def revoke(self, *, key_id: str) -> dict[str, Any]:
        key = keys.revoke_key(registry=self.registry, key_id=key_id, gateway=self.gateway)
        self.key_cache.forget(key_id=key_id)
        return keys.key_summary(key)

    def rotate(self, *, key_id: str) -> dict[str, Any]:
        key, secret = keys.rotate_key(registry=self.registry, key_id=key_id, gateway=self.gateway)
        self.key_cache.forget(key_id=key_id)
        return {**keys.key_summary(key), "secret": secret}


class JobService:
    """Batch jobs, as far as the caller's key may see: only jobs of models in its scope."""

    def __init__(self, *, registry: Registry, caller: ApiKey) -> None:
        self.registry = registry
        self.caller = caller

    def get(self, *, job_id: str) -> dict[str, Any]:
        job = self.registry.get_job(job_id=job_id)
        keys.authorize_model(self.caller, job.model)
        return job_view(job)

    def list(self, *, model: str | None, limit: int) -> list[dict[str, Any]]:
        if model is not None:
            keys.authorize_model(self.caller, model)
            jobs = self.registry.list_jobs(model=model, limit=limit)
        elif keys.ALL_MODELS in self.caller.models:
            jobs = self.registry.list_jobs(limit=limit)
        else:
            # One query per model in scope, merged newest first.
            jobs = [
                job
                for scoped in self.caller.models
                for job in self.registry.list_jobs(model=scoped, limit=limit)
            ]
            jobs.sort(key=lambda job: job.created_at, reverse=True)
            jobs = jobs[:limit]
        return [job_view(j) for j in jobs]
