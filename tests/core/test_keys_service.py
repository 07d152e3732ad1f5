"""API keys as a user meets them: a secret shown once, scopes enforced, revoke and rotate
take effect at once, and the API Gateway seam kept in step."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.auth import hash_secret
from functions.core.exceptions import Conflict, Forbidden, InvalidRequest, Unauthenticated
from functions.core.keys import (
    authenticate,
    authorize_admin,
    authorize_model,
    create_key,
    key_summary,
    revoke_key,
    rotate_key,
    usage_key_value,
)
from functions.core.registry.exceptions import KeyNotFound
from functions.core.registry.sqlite import SqliteRegistry


def test_a_new_key_authenticates_and_only_its_hash_is_stored(registry: SqliteRegistry) -> None:
    key, secret = create_key(registry=registry, name="ci", models=["digits"], admin=False)

    assert secret.startswith(f"mw_{key.key_id}_")
    assert key.secret_hash == hash_secret(secret)
    assert authenticate(registry=registry, secret=secret).key_id == key.key_id
    for file in registry.path.parent.glob(registry.path.name + "*"):  # the db and its WAL
        assert secret.encode() not in file.read_bytes()
    assert "secret_hash" not in key_summary(key)
    assert key_summary(key)["models"] == ["digits"]


def test_unknown_missing_and_revoked_keys_are_told_apart(registry: SqliteRegistry) -> None:
    key, secret = create_key(registry=registry, name="ci", models=["*"], admin=False)

    with pytest.raises(Unauthenticated, match="missing API key"):
        authenticate(registry=registry, secret="")
    with pytest.raises(Unauthenticated, match="unknown API key"):
        authenticate(registry=registry, secret=secret + "x")

    revoked = revoke_key(registry=registry, key_id=key.key_id)
    assert revoked.active is False
    with pytest.raises(Unauthenticated, match="revoked") as caught:
        authenticate(registry=registry, secret=secret)
    assert caught.value.code == "key_revoked"

    # Revoking again is harmless and keeps the first revocation time.
    assert revoke_key(registry=registry, key_id=key.key_id).revoked_at == revoked.revoked_at


def test_rotation_keeps_the_id_and_scopes_and_stops_the_old_secret(
    registry: SqliteRegistry,
) -> None:
    key, old = create_key(registry=registry, name="svc", models=["digits", "iris"], admin=True)

    rotated, new = rotate_key(registry=registry, key_id=key.key_id)

    assert new != old
    assert (rotated.key_id, rotated.models, rotated.admin) == (key.key_id, key.models, True)
    assert rotated.rotated_at is not None
    assert authenticate(registry=registry, secret=new).key_id == key.key_id
    with pytest.raises(Unauthenticated, match="unknown"):
        authenticate(registry=registry, secret=old)


def test_a_revoked_key_cannot_be_rotated_back_to_life(registry: SqliteRegistry) -> None:
    key, _ = create_key(registry=registry, name="svc", models=["*"], admin=False)
    revoke_key(registry=registry, key_id=key.key_id)
    with pytest.raises(Conflict):
        rotate_key(registry=registry, key_id=key.key_id)
    with pytest.raises(KeyNotFound):
        rotate_key(registry=registry, key_id="key_nope")


def test_scopes(registry: SqliteRegistry) -> None:
    digits, _ = create_key(registry=registry, name="a", models=["digits"], admin=False)
    every, _ = create_key(registry=registry, name="b", models=["*", "digits"], admin=True)

    authorize_model(digits, "digits")
    with pytest.raises(Forbidden, match="may not call model 'iris'"):
        authorize_model(digits, "iris")
    with pytest.raises(Forbidden, match="admin"):
        authorize_admin(digits)

    assert every.models == ("*",)
    authorize_model(every, "iris")
    authorize_admin(every)


@pytest.mark.parametrize(
    ("name", "models"), [("", ["digits"]), ("ok", []), ("ok", [" "]), ("ok", ["Not Valid"])]
)
def test_bad_key_requests_are_refused(
    registry: SqliteRegistry, name: str, models: list[str]
) -> None:
    with pytest.raises(InvalidRequest):
        create_key(registry=registry, name=name, models=models, admin=False)
    assert registry.list_keys() == []


def test_touch_records_last_use(registry: SqliteRegistry) -> None:
    key, secret = create_key(registry=registry, name="a", models=["*"], admin=False)
    assert registry.get_key(key_id=key.key_id).last_used_at is None

    authenticate(registry=registry, secret=secret)
    assert registry.get_key(key_id=key.key_id).last_used_at is None
    authenticate(registry=registry, secret=secret, touch=True)
    assert registry.get_key(key_id=key.key_id).last_used_at is not None


# The API Gateway seam --------------------------------------------------------------------------
class FakeGateway:
    def __init__(self) -> None:
        self.keys: dict[str, str] = {}  # apigw id -> value
        self.counter = 0
        self.flushes = 0
        self.fail_deletes = False

    def create_api_key(self, *, key_id: str, name: str, value: str) -> str:
        self.counter += 1
        apigw_id = f"apigw-{self.counter}"
        self.keys[apigw_id] = value
        return apigw_id

    def delete_api_key(self, *, apigw_key_id: str) -> None:
        if self.fail_deletes:
            raise RuntimeError("AccessDenied: apigateway:DELETE")
        self.keys.pop(apigw_key_id, None)

    def flush_authorizer_cache(self) -> None:
        self.flushes += 1


def test_the_gateway_holds_exactly_the_live_secrets(registry: SqliteRegistry) -> None:
    gateway = FakeGateway()

    key, secret = create_key(
        registry=registry, name="a", models=["*"], admin=False, gateway=gateway
    )
    assert key.apigw_key_id == "apigw-1"
    # The gateway holds a value derived from the stored hash, never the secret.
    assert gateway.keys == {"apigw-1": usage_key_value(key.secret_hash)}
    assert secret not in gateway.keys.values()

    rotated, new = rotate_key(registry=registry, key_id=key.key_id, gateway=gateway)
    assert rotated.apigw_key_id == "apigw-2"
    assert gateway.keys == {"apigw-2": usage_key_value(hash_secret(new))}
    assert registry.get_key(key_id=key.key_id).apigw_key_id == "apigw-2"

    revoke_key(registry=registry, key_id=key.key_id, gateway=gateway)
    assert gateway.keys == {}
    assert registry.get_key(key_id=key.key_id).apigw_key_id is None
    # Rotation and revocation each flushed the authorizer answers API Gateway caches.
    assert gateway.flushes == 2


def test_a_gateway_failure_after_the_switch_still_hands_over_the_new_secret(
    registry: SqliteRegistry,
) -> None:
    """Removing the old gateway key is the last step of a rotation: if it fails (it once did,
    for a permission the router lacked), the new secret works and reaches the caller."""
    gateway = FakeGateway()
    key, old = create_key(registry=registry, name="a", models=["*"], admin=False, gateway=gateway)
    gateway.fail_deletes = True
    rotated, new = rotate_key(registry=registry, key_id=key.key_id, gateway=gateway)
    assert authenticate(registry=registry, secret=new).key_id == key.key_id
    with pytest.raises(Unauthenticated):
        authenticate(registry=registry, secret=old)
    assert rotated.apigw_key_id in gateway.keys  # the new secret is metered

    # Revocation: the key stops even when the gateway cannot delete; revoking again, once
    # the gateway works, finishes the clean-up.
    revoked = revoke_key(registry=registry, key_id=key.key_id, gateway=gateway)
    assert not revoked.active
    with pytest.raises(Unauthenticated):
        authenticate(registry=registry, secret=new)
    gateway.fail_deletes = False
    revoke_key(registry=registry, key_id=key.key_id, gateway=gateway)
    assert rotated.apigw_key_id not in gateway.keys
    assert registry.get_key(key_id=key.key_id).apigw_key_id is None


def test_a_registry_failure_leaves_no_orphan_gateway_key(registry: SqliteRegistry) -> None:
    gateway = FakeGateway()

    class Broken:
        def __getattr__(self, name: str) -> Any:
            return getattr(registry, name)

        def create_key(self, **kwargs: Any) -> Any:
            raise RuntimeError("registry down")

    with pytest.raises(RuntimeError):
        create_key(registry=Broken(), name="a", models=["*"], admin=False, gateway=gateway)
    assert gateway.keys == {}
