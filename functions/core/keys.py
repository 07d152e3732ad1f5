"""API keys: create, revoke, rotate, and the checks the router makes on every request.

A secret is shown once, when it is made; the registry keeps only its hash (``auth.py``).
On AWS each key also has an API Gateway API key in the stage's usage plan, which is what
throttles and meters a caller — identification, not authorization (API Gateway's own advice);
its value is derived from the stored hash (``usage_key_value``), never the secret.
Authorization is decided here, from the registry. The ``gateway`` seam below keeps API
Gateway out of this module: the AWS side passes an object that manages those keys, the local
stack passes none.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from functions.core.auth import hash_secret, new_key_id, new_secret
from functions.core.clock import utc_now
from functions.core.exceptions import Conflict, Forbidden, InvalidRequest, Unauthenticated
from functions.core.naming import is_model_name, is_tenant_name
from functions.core.registry.base import ApiKey

if TYPE_CHECKING:
    from functions.core.registry.base import KeyStore

ALL_MODELS = "*"

logger = logging.getLogger("modelway.keys")


USAGE_KEY_PREFIX = "mwu_"


class KeyGateway(Protocol):
    """Where API keys must also exist for callers to get through (API Gateway usage plans)."""

    def create_api_key(self, *, key_id: str, name: str, value: str) -> str:
        """Create a gateway key with ``value`` (``usage_key_value``); returns its id."""

    def delete_api_key(self, *, apigw_key_id: str) -> None:
        """Idempotent."""

    def flush_authorizer_cache(self) -> None:
        """Forget the authorizer answers the gateway cached (a revoked key's included)."""


def usage_key_value(secret_hash: str) -> str:
    """The value of a key's API Gateway key: derived from the stored hash, so the authorizer
    can name it from the registry record alone, and never the secret (API Gateway returns
    key values to anyone allowed ``apigateway:GET``). A rotation changes it with the hash."""
    digest = hashlib.sha256(b"modelway usage key\0" + secret_hash.encode()).hexdigest()
    return USAGE_KEY_PREFIX + digest


def create_key(
    *,
    registry: KeyStore,
    name: str,
    models: list[str],
    admin: bool,
    tenant: str = "default",
    gateway: KeyGateway | None = None,
) -> tuple[ApiKey, str]:
    """Make a key; returns it and its secret, which is never available again."""
    name = name.strip()
    if not name:
        raise InvalidRequest("a key needs a name", code="invalid_key")
    if not is_tenant_name(tenant):
        raise InvalidRequest(
            f"invalid tenant {tenant!r}: lowercase letters, digits, '-' and '_', at most 64",
            code="invalid_key",
        )
    scopes = _check_models(models)
    key_id = new_key_id()
    secret = new_secret(key_id=key_id)
    key = ApiKey(
        key_id=key_id,
        name=name,
        secret_hash=hash_secret(secret),
        models=scopes,
        admin=admin,
        created_at=utc_now(),
        tenant=tenant,
    )
    if gateway is not None:
        apigw_key_id = gateway.create_api_key(
            key_id=key_id, name=name, value=usage_key_value(key.secret_hash)
        )
        key = replace(key, apigw_key_id=apigw_key_id)
    try:
        key = registry.create_key(key=key)
    except BaseException:
        if key.apigw_key_id is not None and gateway is not None:
            _quietly(gateway.delete_api_key, apigw_key_id=key.apigw_key_id)
        raise
    return key, secret


def revoke_key(*, registry: KeyStore, key_id: str, gateway: KeyGateway | None = None) -> ApiKey:
    """Stop a key. Idempotent: revoking again keeps the first revocation time, and retries
    removing its API Gateway key if that failed before."""
    # The registry first: that is what authorization reads, so the key stops even if the
    # gateway calls below fail (they are logged; revoking again retries them).
    key = registry.revoke_key(key_id=key_id)
    if gateway is None:
        return key
    gateway_key = key.apigw_key_id
    if gateway_key is not None and _quietly(gateway.delete_api_key, apigw_key_id=gateway_key):
        key = registry.set_apigw_key_id(key_id=key_id, apigw_key_id=None, expected=gateway_key)
    _quietly(gateway.flush_authorizer_cache)
    return key


def rotate_key(
    *, registry: KeyStore, key_id: str, gateway: KeyGateway | None = None
) -> tuple[ApiKey, str]:
    """Give a key a new secret, keeping its id and scopes; the old secret stops at once.
    Returns the key and its new secret (shown once). A revoked key cannot be rotated.

    Ordered so that a failure at any step leaves the caller one working secret: the new
    API Gateway key is made first (the old secret still works), then one conditional
    registry write switches secret and gateway key together (it fails, and the new gateway
    key goes, if the key was revoked or rotated meanwhile), and only then is the old gateway
    key removed — best effort, as the new secret must reach the caller either way."""
    key = registry.get_key(key_id=key_id)
    if not key.active:
        raise Conflict(f"key {key_id} is revoked; create a new key instead", code="key_revoked")
    secret = new_secret(key_id=key_id)
    secret_hash = hash_secret(secret)
    new_gateway_key = key.apigw_key_id
    if gateway is not None:
        new_gateway_key = gateway.create_api_key(
            key_id=key_id, name=key.name, value=usage_key_value(secret_hash)
        )
    try:
        rotated = registry.rotate_key(
            key_id=key_id,
            expected_hash=key.secret_hash,
            secret_hash=secret_hash,
            apigw_key_id=new_gateway_key,
        )
    except BaseException:
        if gateway is not None and new_gateway_key is not None:
            _quietly(gateway.delete_api_key, apigw_key_id=new_gateway_key)
        raise
    if gateway is not None:
        if key.apigw_key_id is not None:
            _quietly(gateway.delete_api_key, apigw_key_id=key.apigw_key_id)
        _quietly(gateway.flush_authorizer_cache)
    return rotated, secret


def _quietly(call: Callable[..., object], **kwargs: Any) -> bool:
    """Run a gateway clean-up step; a failure is logged, not raised (the registry already
    holds the decision). Returns whether it succeeded."""
    try:
        call(**kwargs)
    except Exception:
        name = getattr(call, "__name__", repr(call))
        logger.warning("API Gateway step %s failed", name, extra=kwargs, exc_info=True)
        return False
    return True


def authenticate(*, registry: KeyStore, secret: str | None, touch: bool = False) -> ApiKey:
    """The active key whose secret this is. Raises ``Unauthenticated`` for a missing, unknown
    or revoked key (each with its own message). ``touch`` records the use, best effort: the
    router passes it on a cache miss rather than writing on every request."""
    if not secret:
        raise Unauthenticated("missing API key: send it in the x-api-key header")
    key = registry.find_key_by_hash(secret_hash=hash_secret(secret))
    if key is None:
        raise Unauthenticated("unknown API key")
    if not key.active:
        raise Unauthenticated(f"API key {key.key_id} has been revoked", code="key_revoked")
    if touch:
        # Last use is bookkeeping: never fail a request over it.
        with contextlib.suppress(Exception):
            registry.touch_key(key_id=key.key_id, at=utc_now())
    return key


def authorize_model(key: ApiKey, model: str) -> None:
    if not key.may_call(model):
        raise Forbidden(f"API key {key.key_id} may not call model {model!r}")


def authorize_admin(key: ApiKey) -> None:
    if not key.admin:
        raise Forbidden(f"API key {key.key_id} has no admin scope")


# What an admin key administers -----------------------------------------------------------
# Models: those in its scope ("*": every model); the same rule as calling them.
# Keys: those of its own tenant whose model scope lies within its own. Anything else is
# invisible to it (404, as if it did not exist), so one tenant never learns of another's keys,
# and no admin can rotate (and so obtain) a key broader than itself.
def covers(holder: ApiKey, models: tuple[str, ...] | list[str]) -> bool:
    """Whether every model in ``models`` is within ``holder``'s scope."""
    if ALL_MODELS in holder.models:
        return True
    return ALL_MODELS not in models and set(models) <= set(holder.models)


def administers(admin: ApiKey, key: ApiKey) -> bool:
    return admin.admin and key.tenant == admin.tenant and covers(admin, key.models)


def authorize_grant(admin: ApiKey, *, models: list[str], tenant: str) -> None:
    """An admin mints keys for its own tenant, with at most its own model scope."""
    authorize_admin(admin)
    if tenant != admin.tenant:
        raise Forbidden(
            f"API key {admin.key_id} administers tenant {admin.tenant!r}, not {tenant!r}"
        )
    scopes = [m.strip() for m in models]
    if not covers(admin, scopes):
        raise Forbidden(
            f"API key {admin.key_id} may not grant {sorted(set(scopes) - set(admin.models))}: "
            f"a key can grant at most its own models {list(admin.models)}"
        )


def key_summary(key: ApiKey) -> dict[str, Any]:
    """A key as shown to people (CLI, admin API): everything but the secret's hash."""
    return {
        "key_id": key.key_id,
        "name": key.name,
        "tenant": key.tenant,
        "models": list(key.models),
        "admin": key.admin,
        "active": key.active,
        "created_at": key.created_at,
        "rotated_at": key.rotated_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
    }


def _check_models(models: list[str]) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(m.strip() for m in models if m.strip()))
    if not scopes:
        raise InvalidRequest("a key needs at least one model, or '*' for all", code="invalid_key")
    bad = [m for m in scopes if m != ALL_MODELS and not is_model_name(m)]
    if bad:
        raise InvalidRequest(f"invalid model name(s) {bad} in key scopes", code="invalid_key")
    return (ALL_MODELS,) if ALL_MODELS in scopes else scopes
