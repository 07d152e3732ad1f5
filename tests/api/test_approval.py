"""Approval gates over /v1: a prod-like environment (``require_approval``) moves an alias only
to a version another admin approved; the decisions sit beside the moves in the history."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.api.routes.admin import actor_of
from functions.core import keys
from functions.core.registry.sqlite import SqliteRegistry
from functions.core.settings import Settings
from tests.api.api_testkit import MODEL, add_version, make_key


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"require_approval": True})


def call(client: TestClient, key: str, method: str, path: str, **kwargs: Any) -> Any:
    return client.request(method, path, headers={"x-api-key": key}, **kwargs)


def publisher_and_version(registry: SqliteRegistry) -> tuple[str, int]:
    """Version 1 serves ``default``; version 2 is published by the key returned."""
    v1 = add_version(registry)
    key, secret = keys.create_key(registry=registry, name="alice", models=["*"], admin=True)
    number = registry.next_version(model=MODEL)
    # As POST /v1/models/{m}/versions would record it: the caller is the publisher.
    registry.register_version(
        version=replace(
            v1,
            version=number,
            sha256=f"{number:064x}",
            manifest={**v1.manifest, "version": number, "sha256": f"{number:064x}"},
            created_by=actor_of(key),
        )
    )
    return secret, number


def test_a_prod_like_environment_moves_aliases_only_to_versions_another_admin_approved(
    client: TestClient, registry: SqliteRegistry
) -> None:
    alice, version = publisher_and_version(registry)
    bob = make_key(registry, models=["*"], admin=True, name="bob")
    move = f"/v1/models/{MODEL}/aliases/default"

    refused = call(client, alice, "PUT", move, json={"version": version})
    assert refused.status_code == 409
    assert refused.json()["code"] == "not_approved"
    assert f"version {version} is pending" in refused.json()["error"]
    assert "approve" in refused.json()["error"]

    # The publisher cannot approve their own version.
    own = call(client, alice, "POST", f"/v1/models/{MODEL}/versions/{version}/approve")
    assert own.status_code == 409
    assert own.json()["code"] == "self_approval"
    assert call(client, alice, "PUT", move, json={"version": version}).status_code == 409

    approved = call(
        client,
        bob,
        "POST",
        f"/v1/models/{MODEL}/versions/{version}/approve",
        json={"reason": "parity and latency ok"},
    )
    assert approved.status_code == 200
    assert approved.json()["decision"] == "approved"
    assert approved.json()["actor"].startswith("bob")

    moved = call(client, alice, "PUT", move, json={"version": version})
    assert moved.status_code == 200
    assert moved.json()["version"] == version

    history = call(client, bob, "GET", f"/v1/models/{MODEL}/history").json()
    assert [(d["version"], d["decision"], d["reason"]) for d in history["decisions"]] == [
        (version, "approved", "parity and latency ok")
    ]
    last_move = history["events"][-1]
    assert (last_move["to_version"], last_move["actor"].startswith("alice")) == (version, True)
    assert history["decisions"][0]["at"] <= last_move["at"]


def test_a_rejection_after_an_approval_closes_the_gate_again(
    client: TestClient, registry: SqliteRegistry
) -> None:
    alice, version = publisher_and_version(registry)
    bob = make_key(registry, models=["*"], admin=True, name="bob")
    base = f"/v1/models/{MODEL}/versions/{version}"
    assert call(client, bob, "POST", f"{base}/approve").status_code == 200
    # The publisher may reject (withdraw) their own version.
    rejected = call(client, alice, "POST", f"{base}/reject", json={"reason": "bad labels"})
    assert rejected.status_code == 200
    refused = call(
        client, bob, "PUT", f"/v1/models/{MODEL}/aliases/default", json={"version": version}
    )
    assert refused.status_code == 409
    assert f"version {version} is rejected" in refused.json()["error"]


def test_a_canary_needs_approval_too(client: TestClient, registry: SqliteRegistry) -> None:
    _, version = publisher_and_version(registry)
    bob = make_key(registry, models=["*"], admin=True, name="bob")
    call(client, bob, "POST", f"/v1/models/{MODEL}/versions/1/approve")
    refused = call(
        client,
        bob,
        "PUT",
        f"/v1/models/{MODEL}/aliases/default",
        json={"version": 1, "canary_version": version, "canary_weight": 10},
    )
    assert refused.status_code == 409
    assert f"version {version} is pending" in refused.json()["error"]
    assert "version 1 " not in refused.json()["error"]


def test_decisions_respect_the_admin_scope(client: TestClient, registry: SqliteRegistry) -> None:
    _, version = publisher_and_version(registry)
    other = make_key(registry, models=["other"], admin=True, name="scoped")
    user = make_key(registry, models=["*"], name="user")
    path = f"/v1/models/{MODEL}/versions/{version}/approve"
    assert call(client, other, "POST", path).status_code == 403
    assert call(client, user, "POST", path).status_code == 403
    assert call(client, other, "POST", f"/v1/models/{MODEL}/versions/99/approve").status_code == 403
    admin = make_key(registry, models=["*"], admin=True, name="ops")
    assert call(client, admin, "POST", f"/v1/models/{MODEL}/versions/99/approve").status_code == 404
    assert registry.list_decisions(model=MODEL) == []


def test_without_the_gate_aliases_move_freely_and_decisions_are_still_recorded(
    client: TestClient, registry: SqliteRegistry, settings: Settings, app: Any
) -> None:
    app.state.modelway.settings = settings.model_copy(update={"require_approval": False})
    alice, version = publisher_and_version(registry)
    move = f"/v1/models/{MODEL}/aliases/default"
    assert call(client, alice, "PUT", move, json={"version": version}).status_code == 200
    own = call(client, alice, "POST", f"/v1/models/{MODEL}/versions/{version}/approve")
    assert own.status_code == 200
    assert [d.decision for d in registry.list_decisions(model=MODEL)] == ["approved"]


def test_a_rollback_is_a_move_and_obeys_the_gate(
    client: TestClient, registry: SqliteRegistry
) -> None:
    """default: v1 -> v2 (both approved); v1 is rejected afterwards (a bug found in it), so
    rolling back to it is refused like any move, until someone approves it again."""
    _, version = publisher_and_version(registry)
    bob = make_key(registry, models=["*"], admin=True, name="bob")
    carol = make_key(registry, models=["*"], admin=True, name="carol")
    for number in (1, version):
        assert call(client, bob, "POST", f"/v1/models/{MODEL}/versions/{number}/approve").is_success
    move = f"/v1/models/{MODEL}/aliases/default"
    assert call(client, bob, "PUT", move, json={"version": 1}).status_code == 200
    assert call(client, bob, "PUT", move, json={"version": version}).status_code == 200
    reject = call(
        client, carol, "POST", f"/v1/models/{MODEL}/versions/1/reject", json={"reason": "bug"}
    )
    assert reject.status_code == 200

    refused = call(client, bob, "POST", f"{move}/rollback")
    assert refused.status_code == 409
    assert refused.json()["code"] == "not_approved"
    assert "version 1 is rejected" in refused.json()["error"]
    assert registry.get_alias(model=MODEL, alias="default").version == version

    assert call(client, carol, "POST", f"/v1/models/{MODEL}/versions/1/approve").is_success
    rolled = call(client, bob, "POST", f"{move}/rollback")
    assert rolled.status_code == 200, rolled.text
    assert registry.get_alias(model=MODEL, alias="default").version == 1


def test_a_rollback_across_a_shadow_change_returns_to_the_previous_move(
    client: TestClient, registry: SqliteRegistry
) -> None:
    """A shadow/capture change is recorded in the history but is not a move: the gate asks
    about the target the rollback really goes to."""
    _, version = publisher_and_version(registry)
    bob = make_key(registry, models=["*"], admin=True, name="bob")
    for number in (1, version):
        assert call(client, bob, "POST", f"/v1/models/{MODEL}/versions/{number}/approve").is_success
    move = f"/v1/models/{MODEL}/aliases/default"
    assert call(client, bob, "PUT", move, json={"version": 1}).status_code == 200
    assert call(client, bob, "PUT", move, json={"version": version}).status_code == 200
    shadow = call(client, bob, "PUT", move, json={"capture_percent": 5})
    assert shadow.status_code == 200, shadow.text
    assert registry.alias_history(model=MODEL, alias="default")[-1].action == "traffic"
    call(client, bob, "POST", f"/v1/models/{MODEL}/versions/1/reject")
    refused = call(client, bob, "POST", f"{move}/rollback")
    assert refused.status_code == 409
    assert "version 1 is rejected" in refused.json()["error"]
