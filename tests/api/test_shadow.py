"""Shadow traffic and request capture through the router: the caller's answer never waits on
the shadow and never changes with it; what was captured reads back as the compare report."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from functions.core import keys
from functions.core.capture.reader import read_captures
from functions.core.exceptions import UpstreamError
from functions.core.registry.base import ModelVersion
from functions.core.registry.sqlite import SqliteRegistry
from functions.core.runtime.base import JSON, RuntimeResponse
from functions.core.settings import Settings
from tests.api.api_testkit import MODEL, add_version, digit_request
from tests.runtime_testkit import Call, FakeRuntime

LABELS = [str(d) for d in range(10)]


def answer_by_version(tops: dict[str, int]) -> Any:
    """A runtime answer: logits whose top class depends on the variant (version) asked."""

    def answer(call: Call) -> RuntimeResponse:
        top = tops.get(call.variant or "", 0)
        logits = [0.0] * 10
        logits[top] = 4.0
        document = {
            "model_name": MODEL,
            "model_version": (call.variant or "v0")[1:],
            "outputs": [
                {"name": "logits", "datatype": "FP32", "shape": [1, 10], "data": logits},
                {"name": "label", "datatype": "INT64", "shape": [1], "data": [top]},
            ],
        }
        return RuntimeResponse(
            body=json.dumps(document).encode(), content_type=JSON, variant=call.variant
        )

    return answer


@pytest.fixture
def two_versions(registry: SqliteRegistry) -> tuple[ModelVersion, ModelVersion]:
    v1 = add_version(registry, manifest_extra={"labels": LABELS})
    v2 = add_version(registry, alias=None, manifest_extra={"labels": LABELS})
    return v1, v2


def set_traffic(client: TestClient, key: str, **body: Any) -> Any:
    return client.put(f"/v1/models/{MODEL}/aliases/default", headers={"x-api-key": key}, json=body)


def infer(client: TestClient, key: str, **kwargs: Any) -> Any:
    return client.post(
        f"/v2/models/{MODEL}/infer", headers={"x-api-key": key}, json=digit_request(**kwargs)
    )


def captured(settings: Settings, app: FastAPI) -> list[Any]:
    assert app.state.modelway.tap.drain(timeout=30)
    store = app.state.modelway.store
    return list(read_captures(store, model=MODEL, alias="default"))


def test_shadow_settings_are_set_on_the_alias_and_kept_in_its_history(
    client: TestClient, admin_key: str, two_versions: tuple[ModelVersion, ModelVersion]
) -> None:
    response = set_traffic(
        client, admin_key, shadow_version=2, shadow_percent=25, capture_percent=5
    )
    assert response.status_code == 200, response.text
    view = response.json()
    assert (view["version"], view["shadow_version"], view["shadow_percent"]) == (1, 2, 25)
    assert view["capture_percent"] == 5

    # Only what is given changes; removing the shadow stops shadowing.
    assert set_traffic(client, admin_key, capture_percent=50).json()["shadow_percent"] == 25
    off = set_traffic(client, admin_key, shadow_version=None).json()
    assert (off["shadow_version"], off["shadow_percent"], off["capture_percent"]) == (None, 0, 50)

    history = client.get(f"/v1/models/{MODEL}/history", headers={"x-api-key": admin_key}).json()
    traffic = [e for e in history["events"] if e["action"] == "traffic"]
    assert [(e["to_shadow_version"], e["to_capture_percent"]) for e in traffic] == [
        (2, 5),
        (2, 50),
        (None, 50),
    ]
    assert all(e["actor"].startswith("ops") for e in traffic)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"shadow_version": 9, "shadow_percent": 10}, "version_not_found"),
        ({"shadow_percent": 10}, "invalid_alias"),
        ({"capture_percent": 101}, "validation_error"),
        # Neither a move nor a traffic setting; a canary without the version it splits.
        ({}, "invalid_request"),
        ({"canary_version": 2}, "invalid_request"),
    ],
)
def test_bad_shadow_settings_are_refused_and_change_nothing(
    client: TestClient,
    admin_key: str,
    two_versions: tuple[ModelVersion, ModelVersion],
    body: dict[str, Any],
    code: str,
) -> None:
    response = set_traffic(client, admin_key, **body)
    assert response.status_code in (400, 404, 422), response.text
    assert response.json()["code"] == code
    alias = client.get(f"/v1/models/{MODEL}/aliases", headers={"x-api-key": admin_key}).json()
    assert alias["aliases"][0]["shadow_version"] is None
    assert alias["aliases"][0]["capture_percent"] == 0


def test_the_caller_never_waits_on_the_shadow(
    app: FastAPI,
    client: TestClient,
    runtime: FakeRuntime,
    settings: Settings,
    admin_key: str,
    user_key: str,
    two_versions: tuple[ModelVersion, ModelVersion],
) -> None:
    shadow_entered, release = threading.Event(), threading.Event()
    primary = answer_by_version({"v1": 7, "v2": 7})

    def answer(call: Call) -> RuntimeResponse:
        if call.variant == "v2":
            shadow_entered.set()
            release.wait(30)  # the shadow hangs until the caller has its answer
        return primary(call)

    runtime.answer = answer
    set_traffic(client, admin_key, shadow_version=2, shadow_percent=100)

    response = infer(client, user_key)
    # The caller has its answer from v1, while the shadow call is still hanging.
    assert response.status_code == 200
    assert response.headers["x-model-version"] == "1"
    assert shadow_entered.wait(10)
    assert not release.is_set()
    release.set()

    records = captured(settings, app)
    roles = {(r.role, r.version, r.status) for r in records}
    assert roles == {("primary", 1, 200), ("shadow", 2, 200)}
    assert len({r.request_id for r in records}) == 1


@pytest.mark.parametrize(
    "failure", [UpstreamError("the shadow's model crashed"), RuntimeError("a bug in the shadow")]
)
def test_a_failing_shadow_changes_nothing_for_the_caller(
    app: FastAPI,
    client: TestClient,
    runtime: FakeRuntime,
    settings: Settings,
    admin_key: str,
    user_key: str,
    two_versions: tuple[ModelVersion, ModelVersion],
    failure: Exception,
) -> None:
    primary = answer_by_version({"v1": 3})

    def answer(call: Call) -> RuntimeResponse:
        if call.variant == "v2":
            raise failure
        return primary(call)

    runtime.answer = answer

    def answers() -> list[tuple[int, bytes, str | None, str | None]]:
        out = []
        for value in (0.0, 1.0, 2.0):
            r = infer(client, user_key, value=value)
            out.append(
                (
                    r.status_code,
                    r.content,
                    r.headers.get("x-model-version"),
                    r.headers.get("content-type"),
                )
            )
        return out

    without = answers()
    set_traffic(client, admin_key, shadow_version=2, shadow_percent=100)
    with_failing_shadow = answers()
    assert with_failing_shadow == without
    assert all(status == 200 for status, *_ in without)

    records = captured(settings, app)
    shadows = [r for r in records if r.role == "shadow"]
    assert len(shadows) == 3
    assert all(r.status >= 500 and r.code and r.outputs is None for r in shadows)
    report = client.get(f"/v1/models/{MODEL}/compare", headers={"x-api-key": admin_key}).json()
    by_role = {v["role"]: v for v in report["versions"]}
    assert by_role["shadow"]["error_rate"] == 1.0
    assert by_role["primary"]["error_rate"] == 0.0


def test_compare_reports_agreement_and_latency_for_both_versions(
    app: FastAPI,
    client: TestClient,
    runtime: FakeRuntime,
    settings: Settings,
    admin_key: str,
    user_key: str,
    two_versions: tuple[ModelVersion, ModelVersion],
) -> None:
    # v2 disagrees with v1 whenever the pixels are 2.0.
    def answer(call: Call) -> RuntimeResponse:
        pixels = json.loads(call.body)["inputs"][0]["data"][0]
        top = 5 if call.variant == "v2" and pixels == 2.0 else 1
        return answer_by_version({call.variant or "": top})(call)

    runtime.answer = answer
    set_traffic(client, admin_key, shadow_version=2, shadow_percent=100, capture_percent=100)
    for i in range(20):
        assert infer(client, user_key, value=2.0 if i % 4 == 0 else 1.0).status_code == 200

    captured(settings, app)  # drained: the report below sees every record
    report = client.get(f"/v1/models/{MODEL}/compare", headers={"x-api-key": admin_key})
    assert report.status_code == 200, report.text
    data = report.json()
    versions = {(v["version"], v["role"]): v for v in data["versions"]}
    assert versions[(1, "primary")]["requests"] == 20
    assert versions[(2, "shadow")]["requests"] == 20
    assert all(v["p50_ms"] is not None and v["p99_ms"] >= v["p50_ms"] for v in versions.values())
    (pair,) = data["pairs"]
    assert (pair["primary"], pair["shadow"], pair["compared"]) == (1, 2, 20)
    assert pair["agreement"] == 0.75  # 5 of 20 requests had pixels of 2.0
    measures = {o["output"]: o["measure"] for o in pair["outputs"]}
    assert measures == {"logits": "argmax", "label": "exact"}

    page = client.get(f"/v1/models/{MODEL}/compare?format=html", headers={"x-api-key": admin_key})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.count("<svg") == 3  # two latency histograms, one agreement timeline


def test_captures_name_the_key_never_its_secret_and_hash_sensitive_inputs(
    app: FastAPI,
    client: TestClient,
    registry: SqliteRegistry,
    settings: Settings,
    admin_key: str,
    user_key: str,
) -> None:
    add_version(registry, manifest_extra={"capture": {"sensitive": ["input"], "mode": "hash"}})
    set_traffic(client, admin_key, capture_percent=100)
    assert infer(client, user_key, value=3.0).status_code == 200

    (record,) = captured(settings, app)
    key = keys.authenticate(registry=registry, secret=user_key)
    assert record.key_id == key.key_id
    assert record.redacted == "hash"
    assert record.inputs is not None
    assert "data" not in record.inputs[0]
    assert len(record.inputs[0]["sha256"]) == 64
    raw = b"".join(
        path.read_bytes() for path in (Path(settings.data_dir) / "captures").rglob("*.jsonl")
    )
    assert user_key.encode() not in raw


def test_nothing_is_captured_without_a_rate_and_compare_says_so(
    app: FastAPI,
    client: TestClient,
    settings: Settings,
    admin_key: str,
    user_key: str,
    digits_v1: ModelVersion,
) -> None:
    assert infer(client, user_key).status_code == 200
    assert captured(settings, app) == []
    response = client.get(f"/v1/models/{MODEL}/compare", headers={"x-api-key": admin_key})
    assert (response.status_code, response.json()["code"]) == (404, "no_captures")
    bad = client.get(
        f"/v1/models/{MODEL}/compare?since=yesterday", headers={"x-api-key": admin_key}
    )
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_capture")
