"""The control plane: models and versions, registration, aliases (canary, rollback, history),
retirement, keys and batch jobs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.core.archive import write_artifact
from functions.core.clock import utc_now
from functions.core.manifest import Manifest, ParityReport
from functions.core.registry.base import Job, ModelVersion
from functions.core.registry.sqlite import SqliteRegistry
from functions.core.settings import Settings
from tests.api.api_testkit import DIGITS_SIGNATURE, MODEL, add_version, digit_request, make_key


def admin(client: TestClient, key: str, method: str, path: str, **kwargs: Any) -> Any:
    return client.request(method, path, headers={"x-api-key": key}, **kwargs)


# Models and versions ----------------------------------------------------------------------
def test_list_models_versions_and_one_version(
    client: TestClient, registry: SqliteRegistry, admin_key: str
) -> None:
    add_version(registry)
    add_version(registry, alias=None)
    models = admin(client, admin_key, "GET", "/v1/models").json()["models"]
    assert models == [
        {"name": MODEL, "latest_version": 2, "active_versions": [1, 2], "aliases": {"default": 1}}
    ]
    versions = admin(client, admin_key, "GET", f"/v1/models/{MODEL}/versions").json()["versions"]
    assert [(v["version"], v["status"], v["variant_name"]) for v in versions] == [
        (1, "active", "v1"),
        (2, "active", "v2"),
    ]
    one = admin(client, admin_key, "GET", f"/v1/models/{MODEL}/versions/2").json()
    assert one["manifest"]["name"] == MODEL
    assert one["signature"]["inputs"][0]["name"] == "input"
    missing = admin(client, admin_key, "GET", "/v1/models/iris/versions")
    assert (missing.status_code, missing.json()["code"]) == (404, "model_not_found")


def upload_artifact(settings: Settings, *, name: str, model_bytes: bytes) -> str:
    """Put a model.tar.gz in the local data area, where an admin would upload it."""
    key = f"uploads/{name}/model.tar.gz"
    work = settings.home / "work"
    work.mkdir(parents=True, exist_ok=True)
    model_path = work / "model.onnx"
    model_path.write_bytes(model_bytes)
    manifest = Manifest(
        name=name,
        sha256=hashlib.sha256(model_bytes).hexdigest(),
        signature=DIGITS_SIGNATURE,
        parity=ParityReport(
            samples=8, max_abs_diff=0.0, argmax_agreement=1.0, tolerance=1e-4, passed=True
        ),
    )
    write_artifact(model_path=model_path, manifest=manifest, dest=settings.data_dir / key)
    return key


def test_register_a_version_from_an_upload(
    client: TestClient, settings: Settings, admin_key: str, registry: SqliteRegistry
) -> None:
    key = upload_artifact(settings, name=MODEL, model_bytes=b"onnx-bytes-1")
    path = f"/v1/models/{MODEL}/versions"
    created = admin(client, admin_key, "POST", path, json={"artifact_key": key})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["version"] == 1
    assert body["created_by"].startswith("ops (key_")
    assert body["manifest"]["version"] == 1
    assert [a["alias"] for a in body["aliases"]] == ["default"]  # a first version serves
    assert Path(registry.get_version(model=MODEL, version=1).artifact_uri[7:]).exists()

    again = admin(client, admin_key, "POST", path, json={"artifact_key": key})
    assert (again.status_code, again.json()["version"]) == (200, 1)

    key2 = upload_artifact(settings, name=MODEL, model_bytes=b"onnx-bytes-2")
    second = admin(client, admin_key, "POST", path, json={"artifact_key": key2, "alias": "staging"})
    assert (second.status_code, second.json()["version"]) == (201, 2)
    assert registry.get_alias(model=MODEL, alias="staging").version == 2
    assert registry.get_alias(model=MODEL, alias="default").version == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"artifact_key": "uploads/iris/model.tar.gz"}, 422, "invalid_artifact"),
        ({"artifact_key": "uploads/none/model.tar.gz"}, 404, "object_not_found"),
        ({"artifact_key": "outputs/digits/x.tar.gz"}, 422, "validation_error"),
        ({"artifact_key": "uploads/../registry.db"}, 400, "invalid_key"),
        ({}, 422, "validation_error"),
        ({"artifact_key": "uploads/a", "unexpected": 1}, 422, "validation_error"),
    ],
)
def test_register_refusals(
    client: TestClient,
    settings: Settings,
    admin_key: str,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    upload_artifact(settings, name="iris", model_bytes=b"iris")  # its manifest names iris
    response = admin(client, admin_key, "POST", f"/v1/models/{MODEL}/versions", json=body)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text


def test_a_body_that_is_not_json_is_400(client: TestClient, admin_key: str) -> None:
    response = client.put(
        f"/v1/models/{MODEL}/aliases/default",
        content=b"{oops",
        headers={"x-api-key": admin_key, "content-type": "application/json"},
    )
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")


# Aliases ----------------------------------------------------------------------------------
def test_set_alias_with_canary_then_rollback_and_history(
    client: TestClient, registry: SqliteRegistry, admin_key: str, user_key: str
) -> None:
    for _ in range(3):
        add_version(registry, alias=None)
    registry.set_alias(model=MODEL, alias="default", version=1, actor="tests")
    path = f"/v1/models/{MODEL}/aliases/default"
    moved = admin(
        client,
        admin_key,
        "PUT",
        path,
        json={"version": 2, "canary_version": 3, "canary_weight": 10},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["version"] == 2
    assert (moved.json()["canary_version"], moved.json()["canary_weight"]) == (3, 10)
    assert moved.json()["updated_by"].startswith("ops (key_")

    aliases = admin(client, admin_key, "GET", f"/v1/models/{MODEL}/aliases").json()["aliases"]
    assert [(a["alias"], a["version"]) for a in aliases] == [("default", 2)]

    # This container serves the move at once (its lookup cache was cleared).
    infer = client.post(
        f"/v2/models/{MODEL}/infer", json=digit_request(), headers={"x-api-key": user_key}
    )
    assert infer.headers["x-model-version"] in {"2", "3"}

    rolled = admin(client, admin_key, "POST", f"{path}/rollback")
    assert rolled.status_code == 200
    assert (rolled.json()["version"], rolled.json()["canary_version"]) == (1, None)

    history = admin(client, admin_key, "GET", f"/v1/models/{MODEL}/history?alias=default")
    events = history.json()["events"]
    assert [(e["action"], e["to_version"]) for e in events] == [
        ("set", 1),
        ("set", 2),
        ("rollback", 1),
    ]
    assert events[-1]["from_canary_version"] == 3
    assert events[-1]["actor"].startswith("ops (key_")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"version": 9}, 404, "version_not_found"),
        ({"version": 1, "canary_weight": 150}, 422, "validation_error"),
        ({"version": 1, "canary_weight": 20}, 422, "invalid_alias"),
        ({"version": "one"}, 422, "validation_error"),
    ],
)
def test_set_alias_refusals(
    client: TestClient,
    digits_v1: ModelVersion,
    admin_key: str,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    response = admin(client, admin_key, "PUT", f"/v1/models/{MODEL}/aliases/default", json=body)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text


def test_rollback_with_nothing_before_is_409(
    client: TestClient, digits_v1: ModelVersion, admin_key: str
) -> None:
    response = admin(client, admin_key, "POST", f"/v1/models/{MODEL}/aliases/default/rollback")
    assert (response.status_code, response.json()["code"]) == (409, "nothing_to_roll_back")


def test_retire_refuses_a_version_in_use_then_retires_it(
    client: TestClient, registry: SqliteRegistry, admin_key: str, user_key: str
) -> None:
    add_version(registry)
    add_version(registry, alias="prod")
    in_use = admin(client, admin_key, "DELETE", f"/v1/models/{MODEL}/versions/2")
    assert (in_use.status_code, in_use.json()["code"]) == (409, "version_in_use")
    admin(client, admin_key, "PUT", f"/v1/models/{MODEL}/aliases/prod", json={"version": 1})
    retired = admin(client, admin_key, "DELETE", f"/v1/models/{MODEL}/versions/2")
    assert (retired.status_code, retired.json()["status"]) == (200, "retired")
    pinned = client.post(
        f"/v2/models/{MODEL}/versions/2/infer",
        json=digit_request(),
        headers={"x-api-key": user_key},
    )
    assert (pinned.status_code, pinned.json()["code"]) == (404, "version_retired")


# Keys -------------------------------------------------------------------------------------
def test_create_list_rotate_revoke_keys(
    client: TestClient, digits_v1: ModelVersion, admin_key: str
) -> None:
    created = admin(client, admin_key, "POST", "/v1/keys", json={"name": "svc", "models": [MODEL]})
    assert created.status_code == 201
    key = created.json()
    secret, key_id = key["secret"], key["key_id"]
    assert (key["models"], key["admin"], key["active"]) == ([MODEL], False, True)

    def infer(with_secret: str) -> int:
        return client.post(
            f"/v2/models/{MODEL}/infer", json=digit_request(), headers={"x-api-key": with_secret}
        ).status_code

    assert infer(secret) == 200

    listing = admin(client, admin_key, "GET", "/v1/keys")
    text = listing.text
    assert key_id in text
    assert secret not in text
    assert "secret" not in text
    assert "hash" not in text

    rotated = admin(client, admin_key, "POST", f"/v1/keys/{key_id}/rotate")
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != secret
    assert infer(secret) == 401  # the old secret stops at once
    assert infer(new_secret) == 200

    revoked = admin(client, admin_key, "DELETE", f"/v1/keys/{key_id}")
    assert (revoked.status_code, revoked.json()["active"]) == (200, False)
    assert infer(new_secret) == 401
    again = admin(client, admin_key, "POST", f"/v1/keys/{key_id}/rotate")
    assert (again.status_code, again.json()["code"]) == (409, "key_revoked")
    unknown = admin(client, admin_key, "DELETE", "/v1/keys/key_000000000000")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "key_not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "models": []},
        {"name": "x", "models": ["Not A Model"]},
        {"name": "", "models": ["*"]},
        {"models": ["*"]},
    ],
)
def test_create_key_refusals(client: TestClient, admin_key: str, body: dict[str, Any]) -> None:
    response = admin(client, admin_key, "POST", "/v1/keys", json=body)
    assert response.status_code in (400, 422)
    assert response.json()["code"] in {"invalid_key", "validation_error"}


# Jobs -------------------------------------------------------------------------------------
def add_job(registry: SqliteRegistry, *, job_id: str, model: str) -> Job:
    now = utc_now()
    job = Job(
        job_id=job_id,
        model=model,
        target="default",
        version=1,
        input_uri=f"file:///data/inputs/{model}/default/{job_id}.jsonl",
        status="succeeded",
        created_at=now,
        updated_at=now,
        records=2,
        ok=2,
    )
    return registry.create_job(job=job)[0]


def test_jobs_are_visible_within_the_key_scope(
    client: TestClient, registry: SqliteRegistry, admin_key: str, user_key: str
) -> None:
    add_job(registry, job_id="job-digits", model=MODEL)
    add_job(registry, job_id="job-iris", model="iris")

    def get(key: str, path: str) -> Any:
        return client.get(path, headers={"x-api-key": key})

    assert get(user_key, "/v1/jobs/job-digits").json()["records"] == 2
    assert get(user_key, "/v1/jobs/job-iris").status_code == 403
    assert get(user_key, "/v1/jobs/job-nope").status_code == 404
    assert [j["job_id"] for j in get(user_key, "/v1/jobs").json()["jobs"]] == ["job-digits"]
    assert get(user_key, "/v1/jobs?model=iris").status_code == 403
    assert {j["job_id"] for j in get(admin_key, "/v1/jobs").json()["jobs"]} == {
        "job-digits",
        "job-iris",
    }
    assert [j["job_id"] for j in get(admin_key, "/v1/jobs?model=iris").json()["jobs"]] == [
        "job-iris"
    ]
    assert get(make_key(registry, models=["iris"]), "/v1/jobs?limit=0").status_code == 400
