"""Registry reads on the inference path, cached for ``registry_cache_ttl_seconds``.

An alias moved from another container is seen here within the TTL; moves made through this
app's own admin routes clear the cache at once.
"""

from __future__ import annotations

from typing import Any

from functions.api.cache import TTLCache
from functions.core.oip import Signature
from functions.core.registry.base import Alias, ModelVersion, Registry


class LookupCache:
    """The per-app store behind ``CachedRegistryReads`` (which is built per request)."""

    def __init__(self, *, ttl: float) -> None:
        self.entries: TTLCache[Any] = TTLCache(ttl=ttl)

    def clear(self) -> None:
        self.entries.clear()


class CachedRegistryReads:
    def __init__(self, *, registry: Registry, cache: LookupCache, now: float) -> None:
        self.registry = registry
        self._cache = cache.entries
        self._now = now

    def get_alias(self, *, model: str, alias: str) -> Alias:
        result: Alias = self._cache.get_or_load(
            ("alias", model, alias),
            lambda: self.registry.get_alias(model=model, alias=alias),
            now=self._now,
        )
        return result

    def get_version(self, *, model: str, version: int) -> ModelVersion:
        result: ModelVersion = self._cache.get_or_load(
            ("version", model, version),
            lambda: self.registry.get_version(model=model, version=version),
            now=self._now,
        )
        return result

    def list_versions(self, *, model: str) -> list[ModelVersion]:
        result: list[ModelVersion] = self._cache.get_or_load(
            ("versions", model),
            lambda: self.registry.list_versions(model=model),
            now=self._now,
        )
        return result

    def signature(self, version: ModelVersion) -> Signature:
        """The version's tensor signature, parsed once rather than on every request."""
        result: Signature = self._cache.get_or_load(
            ("signature", version.model, version.version, version.sha256),
            lambda: Signature.from_dict(version.manifest["signature"]),
            now=self._now,
        )
        return result
