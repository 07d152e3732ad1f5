"""What an admin key administers (issue 10: an admin key was admin of everything).

A key has a tenant and a model scope. An admin key administers the models in its scope
(``*``: every model) and the keys of its own tenant whose scope lies within its own; it mints
keys only for its tenant and never broader than itself. Keys it does not administer are 404.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.core import keys
from functions.core.registry.base import ApiKey
from functions.core.registry.sqlite import SqliteRegistry
from tests.api.api_testkit import MODEL, add_version, digit_request


def mint(
    registry: SqliteRegistry, *, models: list[str], tenant: str, admin: bool = True
) -> tuple[ApiKey, str]:
    return keys.create_key(
        registry=registry, name=f"{tenant}-key", models=models, admin=admin, tenant=tenant
    )


@pytest.fixture
def world(registry: SqliteRegistry) -> dict[str, Any]:
    """Two models; tenant acme's admin scoped to "other"; tenant globex's keys; an operator."""
    add_version(registry)  # digits
    add_version(registry, model="other")
    acme, acme_secret = mint(registry, models=["other"], tenant="acme")
    acme_user, _ = mint(registry, models=["other"], tenant="acme", admin=False)
    acme_wide, _ = mint(registry, models=["*"], tenant="acme")
    globex, globex_secret = mint(registry, models=["digits"], tenant="globex")
    ops, ops_secret = mint(registry, models=["*"], tenant="default")
    return {
        "acme": acme,
        "acme_secret": acme_secret,
        "acme_user": acme_user,
        "acme_wide": acme_wide,
        "globex": globex,
        "globex_secret": globex_secret,
        "ops": ops,
        "ops_secret": ops_secret,
    }


def as_(client: TestClient, secret: str, method: str, path: str, **kwargs: Any) -> Any:
    return client.request(method, path, headers={"x-api-key": secret}, **kwargs)


def test_a_scoped_admin_sees_and_runs_only_its_models(
    client: TestClient, world: dict[str, Any]
) -> None:
    secret = world["acme_secret"]
    listed = as_(client, secret, "GET", "/v1/models").json()["models"]
    assert [m["name"] for m in listed] == ["other"]
    assert as_(client, secret, "GET", "/v1/models/other/versions").status_code == 200
    put = as_(client, secret, "PUT", "/v1/models/other/aliases/prod", json={"version": 1})
    assert put.status_code == 200
    everything = as_(client, world["ops_secret"], "GET", "/v1/models").json()["models"]
    assert [m["name"] for m in everything] == [MODEL, "other"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/v1/models/{MODEL}/versions", None),
        ("GET", f"/v1/models/{MODEL}/versions/1", None),
        ("DELETE", f"/v1/models/{MODEL}/versions/1", None),
        ("POST", f"/v1/models/{MODEL}/versions", {"artifact_key": "uploads/x/model.tar.gz"}),
        ("GET", f"/v1/models/{MODEL}/aliases", None),
        ("PUT", f"/v1/models/{MODEL}/aliases/default", {"version": 1}),
        ("POST", f"/v1/models/{MODEL}/aliases/default/rollback", None),
        ("GET", f"/v1/models/{MODEL}/history", None),
        ("GET", f"/v1/jobs?model={MODEL}", None),
        ("GET", f"/v2/models/{MODEL}", None),
        ("POST", f"/v2/models/{MODEL}/infer", digit_request()),
        # A model that does not exist is no different: the scope is checked first.
        ("GET", "/v1/models/nope/versions", None),
    ],
)
def test_a_scoped_admin_cannot_touch_another_model(
    client: TestClient,
    registry: SqliteRegistry,
    world: dict[str, Any],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    response = as_(client, world["acme_secret"], method, path, json=body)
    assert (response.status_code, response.json()["code"]) == (403, "forbidden"), response.text
    assert registry.get_version(model=MODEL, version=1).status == "active"
    assert registry.get_alias(model=MODEL, alias="default").version == 1


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "models": ["*"], "admin": True, "tenant": "globex"},  # the issue's
        {"name": "x", "models": ["*"]},
        {"name": "x", "models": ["other", MODEL]},
        {"name": "x", "models": [MODEL], "admin": False},
        {"name": "x", "models": ["other"], "tenant": "globex"},
        {"name": "x", "models": ["other"], "tenant": "default"},
    ],
)
def test_a_scoped_admin_cannot_mint_a_broader_key_or_one_for_another_tenant(
    client: TestClient, registry: SqliteRegistry, world: dict[str, Any], body: dict[str, Any]
) -> None:
    before = len(registry.list_keys())
    response = as_(client, world["acme_secret"], "POST", "/v1/keys", json=body)
    assert (response.status_code, response.json()["code"]) == (403, "forbidden"), response.text
    assert len(registry.list_keys()) == before


def test_a_minted_key_is_of_the_minters_tenant_and_within_its_scope(
    client: TestClient, world: dict[str, Any]
) -> None:
    body = {"name": "deputy", "models": ["other"], "admin": True}
    created = as_(client, world["acme_secret"], "POST", "/v1/keys", json=body)
    assert created.status_code == 201, created.text
    assert (created.json()["tenant"], created.json()["models"]) == ("acme", ["other"])
    deputy = created.json()["secret"]
    assert as_(client, deputy, "GET", "/v1/models").json()["models"][0]["name"] == "other"


def test_tenants_do_not_see_each_others_keys(client: TestClient, world: dict[str, Any]) -> None:
    acme_view = as_(client, world["acme_secret"], "GET", "/v1/keys").json()["keys"]
    # Its own tenant's keys within its scope: itself and its user, not acme's "*" admin.
    assert {k["key_id"] for k in acme_view} == {world["acme"].key_id, world["acme_user"].key_id}
    globex_view = as_(client, world["globex_secret"], "GET", "/v1/keys").json()["keys"]
    assert {k["key_id"] for k in globex_view} == {world["globex"].key_id}
    # Even the operator's "*" admin administers only its own tenant over the API.
    ops_view = as_(client, world["ops_secret"], "GET", "/v1/keys").json()["keys"]
    assert {k["tenant"] for k in ops_view} == {"default"}


@pytest.mark.parametrize("target", ["globex", "acme_wide", "ops"])
@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("DELETE", ""), ("POST", "/rotate")])
def test_a_key_outside_what_an_admin_administers_is_404(
    client: TestClient,
    registry: SqliteRegistry,
    world: dict[str, Any],
    target: str,
    method: str,
    suffix: str,
) -> None:
    key: ApiKey = world[target]
    response = as_(client, world["acme_secret"], method, f"/v1/keys/{key.key_id}{suffix}")
    assert (response.status_code, response.json()["code"]) == (404, "key_not_found")
    unknown = as_(client, world["acme_secret"], method, f"/v1/keys/key_000000000000{suffix}")
    assert (
        unknown.json()["error"].replace("key_000000000000", key.key_id) == response.json()["error"]
    )
    after = registry.get_key(key_id=key.key_id)
    assert (after.active, after.secret_hash) == (True, key.secret_hash)


def test_an_admin_manages_the_keys_it_administers(
    client: TestClient, registry: SqliteRegistry, world: dict[str, Any]
) -> None:
    user = world["acme_user"].key_id
    rotated = as_(client, world["acme_secret"], "POST", f"/v1/keys/{user}/rotate")
    assert rotated.status_code == 200
    revoked = as_(client, world["acme_secret"], "DELETE", f"/v1/keys/{user}")
    assert (revoked.status_code, revoked.json()["active"]) == (200, False)
    # A revoked key stays readable, as a record with active: false.
    again = as_(client, world["acme_secret"], "GET", f"/v1/keys/{user}")
    assert (again.status_code, again.json()["active"]) == (200, False)
    assert not registry.get_key(key_id=user).active
