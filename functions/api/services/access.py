"""The control plane over API keys and the read side of batch jobs."""

from __future__ import annotations

from typing import Any

from functions.api.callers import KeyCache
from functions.api.views import job_view
from functions.core import keys
from functions.core.registry.base import ApiKey, Registry
from functions.core.registry.exceptions import KeyNotFound


class KeyService:
    """Key administration, for one admin key: it sees and manages only the keys it
    administers (``keys.administers``: its tenant, within its model scope); any other key is
    404, as an unknown one. Revoking or rotating drops the key from this container's cache at
    once; other containers stop accepting the old secret within the key cache TTL.

    A revoked key stays readable (``active: false``, ``revoked_at``) for audit; revoking it
    again answers the same record."""

    def __init__(
        self,
        *,
        registry: Registry,
        key_cache: KeyCache,
        gateway: keys.KeyGateway | None,
        caller: ApiKey,
    ) -> None:
        self.registry = registry
        self.key_cache = key_cache
        self.gateway = gateway
        self.caller = caller

    def create(
        self, *, name: str, models: list[str], admin: bool, tenant: str | None
    ) -> dict[str, Any]:
        tenant = tenant if tenant is not None else self.caller.tenant
        keys.authorize_grant(self.caller, models=models, tenant=tenant)
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
        return [
            keys.key_summary(k)
            for k in self.registry.list_keys()
            if keys.administers(self.caller, k)
        ]

    def get(self, *, key_id: str) -> dict[str, Any]:
        return keys.key_summary(self._administered(key_id))

    def revoke(self, *, key_id: str) -> dict[str, Any]:
        self._administered(key_id)
        key = keys.revoke_key(registry=self.registry, key_id=key_id, gateway=self.gateway)
        self.key_cache.forget(key_id=key_id)
        return keys.key_summary(key)

    def rotate(self, *, key_id: str) -> dict[str, Any]:
        self._administered(key_id)
        key, secret = keys.rotate_key(registry=self.registry, key_id=key_id, gateway=self.gateway)
        self.key_cache.forget(key_id=key_id)
        return {**keys.key_summary(key), "secret": secret}

    def _administered(self, key_id: str) -> ApiKey:
        key = self.registry.get_key(key_id=key_id)
        if not keys.administers(self.caller, key):
            raise KeyNotFound(f"unknown key {key_id!r}")
        return key


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
