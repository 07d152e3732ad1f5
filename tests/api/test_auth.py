"""Who may call what: keys looked up (and cached), scopes, and the API Gateway authorizer's
context on AWS."""

from __future__ import annotations

import random

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from functions.core import keys
from functions.core.registry.base import ModelVersion
from functions.core.registry.sqlite import SqliteRegistry
from functions.core.settings import Settings
from tests.api.api_testkit import MODEL, FakeClock, add_version, build_app, digit_request, make_key
from tests.runtime_testkit import FakeRuntime

INFER = f"/v2/models/{MODEL}/infer"


def infer(client: TestClient, secret: str | None) -> tuple[int, dict[str, str]]:
    headers = {"x-api-key": secret} if secret is not None else {}
    response = client.post(INFER, json=digit_request(), headers=headers)
    return response.status_code, response.json()


def test_no_key_is_401(client: TestClient, digits_v1: ModelVersion) -> None:
    status, body = infer(client, None)
    assert status == 401
    assert body["code"] == "unauthenticated"
    assert "x-api-key" in body["error"]


def test_unknown_key_is_401(client: TestClient, digits_v1: ModelVersion) -> None:
    status, body = infer(client, "mw_key_000000000000_notarealsecret")
    assert (status, body["code"]) == (401, "unauthenticated")


def test_a_valid_key_may_call_its_model(
    client: TestClient, digits_v1: ModelVersion, user_key: str
) -> None:
    assert infer(client, user_key)[0] == 200


def test_key_outside_its_model_scope_is_403(
    client: TestClient, registry: SqliteRegistry, digits_v1: ModelVersion
) -> None:
    other = make_key(registry, models=["iris"])
    status, body = infer(client, other)
    assert (status, body["code"]) == (403, "forbidden")
    assert client.get(f"/v2/models/{MODEL}", headers={"x-api-key": other}).status_code == 403


def test_non_admin_key_is_403_on_admin_routes(client: TestClient, user_key: str) -> None:
    for method, path in [("GET", "/v1/models"), ("GET", "/v1/keys"), ("POST", "/v1/keys")]:
        response = client.request(method, path, headers={"x-api-key": user_key}, json={})
        assert response.status_code == 403, path
        assert response.json()["code"] == "forbidden"


def test_revoked_key_is_refused_at_once_when_revoked_through_this_api(
    client: TestClient,
    digits_v1: ModelVersion,
    user_key: str,
    admin_key: str,
    registry: SqliteRegistry,
) -> None:
    assert infer(client, user_key)[0] == 200  # now cached
    key = registry.find_key_by_hash(secret_hash=keys.hash_secret(user_key))
    assert key is not None
    revoked = client.delete(f"/v1/keys/{key.key_id}", headers={"x-api-key": admin_key})
    assert revoked.status_code == 200
    status, body = infer(client, user_key)
    assert (status, body["code"]) == (401, "key_revoked")


def test_key_revoked_elsewhere_stops_working_within_the_cache_ttl(
    client: TestClient,
    digits_v1: ModelVersion,
    user_key: str,
    registry: SqliteRegistry,
    clock: FakeClock,
    settings: Settings,
) -> None:
    assert infer(client, user_key)[0] == 200
    key = registry.find_key_by_hash(secret_hash=keys.hash_secret(user_key))
    assert key is not None
    # Revoked by another process (the CLI, another Lambda container): this one's cache
    # still holds the key...
    keys.revoke_key(registry=registry, key_id=key.key_id)
    clock.advance(settings.key_cache_ttl_seconds / 2)
    assert infer(client, user_key)[0] == 200
    # ...until its entry expires.
    clock.advance(settings.key_cache_ttl_seconds / 2 + 0.001)
    assert infer(client, user_key) == (
        401,
        {"error": f"API key {key.key_id} has been revoked", "code": "key_revoked"},
    )


def test_last_use_is_recorded_at_most_once_a_minute(
    client: TestClient,
    digits_v1: ModelVersion,
    user_key: str,
    registry: SqliteRegistry,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    touched: list[str] = []
    real_touch = registry.touch_key

    def counting_touch(*, key_id: str, at: str) -> None:
        touched.append(key_id)
        real_touch(key_id=key_id, at=at)

    monkeypatch.setattr(registry, "touch_key", counting_touch)
    for _ in range(3):
        assert infer(client, user_key)[0] == 200
    assert len(touched) == 1
    clock.advance(61)
    assert infer(client, user_key)[0] == 200
    assert len(touched) == 2
    key = registry.get_key(key_id=touched[0])
    assert key.last_used_at is not None


# API Gateway authorizer context -------------------------------------------------------
class LambdaEventWrapper:
    """An ASGI wrapper putting a Lambda event in each request's scope, as Mangum does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.context: dict[str, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["aws.event"] = {"requestContext": {"authorizer": self.context}}
        await self.app(scope, receive, send)


def event_client(app: ASGIApp) -> tuple[TestClient, LambdaEventWrapper]:
    wrapper = LambdaEventWrapper(app)
    return TestClient(wrapper, raise_server_exceptions=False), wrapper


@pytest.fixture
def aws(
    settings: Settings, registry: SqliteRegistry, runtime: FakeRuntime, clock: FakeClock
) -> tuple[TestClient, LambdaEventWrapper]:
    """A client of the router configured for AWS (env "dev")."""
    app = build_app(
        settings=settings.model_copy(update={"env": "dev"}),
        registry=registry,
        runtime=runtime,
        clock=clock,
        rng=random.Random(0),
    )
    return event_client(app)


AwsClient = tuple[TestClient, LambdaEventWrapper]


def test_on_aws_the_authorizer_context_is_trusted_without_a_lookup(
    aws: AwsClient, registry: SqliteRegistry
) -> None:
    client, event = aws
    add_version(registry)
    event.context = {
        "principalId": "key_a1",
        "keyId": "key_a1",
        "tenant": "acme",
        "models": "digits,iris",
        "admin": "false",
    }
    # No x-api-key at all: API Gateway already checked it and said who this is.
    response = client.post(INFER, json=digit_request())
    assert response.status_code == 200
    assert response.headers["x-model-version"] == "1"


def test_on_aws_the_authorizer_context_scopes_are_enforced(
    aws: AwsClient, registry: SqliteRegistry
) -> None:
    client, event = aws
    add_version(registry)
    event.context = {"keyId": "key_b2", "models": "iris", "admin": "false"}
    assert client.post(INFER, json=digit_request()).status_code == 403
    assert client.get("/v1/models").status_code == 403
    event.context = {"keyId": "key_c3", "models": "*", "admin": "true"}
    assert client.post(INFER, json=digit_request()).status_code == 200
    assert client.get("/v1/models").json()["models"][0]["name"] == MODEL


def test_on_aws_without_authorizer_context_the_key_is_looked_up(
    aws: AwsClient, registry: SqliteRegistry, user_key: str
) -> None:
    client, event = aws
    add_version(registry)
    event.context = None
    assert client.post(INFER, json=digit_request()).status_code == 401
    response = client.post(INFER, json=digit_request(), headers={"x-api-key": user_key})
    assert response.status_code == 200


def test_locally_an_authorizer_context_in_the_event_is_not_trusted(
    app: FastAPI, registry: SqliteRegistry
) -> None:
    add_version(registry)
    client, event = event_client(app)
    event.context = {"keyId": "key_x", "models": "*", "admin": "true"}
    assert client.post(INFER, json=digit_request()).status_code == 401
