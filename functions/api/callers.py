"""Who is calling: an API key looked up in the registry (cached), or the API Gateway
authorizer's verdict when one ran.

Only the lookup path is cached here; ``functions.core.keys`` does the hashing, the lookup and
the revocation check.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from functions.api.apigw import authorizer_context
from functions.api.cache import TTLCache
from functions.core import keys
from functions.core.auth import hash_secret
from functions.core.clock import utc_now
from functions.core.exceptions import Unauthenticated
from functions.core.registry.base import ApiKey, KeyStore

logger = logging.getLogger("modelway.api")

API_KEY_HEADER = "x-api-key"
# last_used_at is informational: one registry write per key per minute per container is plenty.
TOUCH_INTERVAL_SECONDS = 60.0


class KeyCache:
    """Authenticated keys by the sha256 of their secret, for ``ttl`` seconds.

    A key revoked or rotated elsewhere (the CLI, another container) keeps working in this
    container until its entry expires: at most ``ttl`` seconds
    (``settings.key_cache_ttl_seconds``). Revoking or rotating through this app's own admin
    routes drops the entry at once (``forget``). Unknown secrets are not cached, so a newly
    created key works immediately.
    """

    def __init__(self, *, ttl: float) -> None:
        self._cache: TTLCache[ApiKey] = TTLCache(ttl=ttl)

    def authenticate(self, *, registry: KeyStore, secret: str, now: float) -> ApiKey:
        digest = hash_secret(secret)
        key = self._cache.get(digest, now=now)
        if key is None:
            key = keys.authenticate(registry=registry, secret=secret)
            self._cache.put(digest, key, now=now)
        return key

    def forget(self, *, key_id: str) -> None:
        self._cache.discard_where(lambda _digest, key: key.key_id == key_id)

    def clear(self) -> None:
        self._cache.clear()


class LastUsed:
    """Records a key's last use, at most once per key per ``interval`` (best effort)."""

    def __init__(self, *, interval: float = TOUCH_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._touched.clear()

    def touch(self, *, registry: KeyStore, key_id: str, now: float) -> None:
        with self._lock:
            last = self._touched.get(key_id)
            if last is not None and now - last < self.interval:
                return
            self._touched[key_id] = now
        try:
            registry.touch_key(key_id=key_id, at=utc_now())
        except Exception:  # never fail a request over bookkeeping
            logger.warning("could not record last use of key %s", key_id, exc_info=True)


def resolve_caller(
    *,
    headers: Mapping[str, str],
    event: Mapping[str, Any] | None,
    trust_authorizer: bool,
    registry: KeyStore,
    key_cache: KeyCache,
    now: float,
) -> ApiKey:
    """The caller's key. With ``trust_authorizer`` (on AWS) and an authorizer context in the
    Lambda event, API Gateway has already validated the key: its context is taken as is.
    Otherwise the ``x-api-key`` header is looked up. Raises ``Unauthenticated``."""
    if trust_authorizer:
        context = authorizer_context(event)
        if context is not None:
            return ApiKey(
                key_id=context.key_id,
                name=context.name,
                secret_hash="",  # never seen: the authorizer checked the secret
                models=context.models,
                admin=context.admin,
                created_at="",
                tenant=context.tenant,
            )
    secret = headers.get(API_KEY_HEADER)
    if not secret:
        raise Unauthenticated(f"missing {API_KEY_HEADER} header")
    return key_cache.authenticate(registry=registry, secret=secret, now=now)
