"""The data plane: resolution (alias, canary, pinned), dispatch, metadata, upstream errors."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from functions.core.exceptions import (
    InvalidInput,
    ModelwayError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from functions.core.registry.base import ModelVersion
from functions.core.registry.sqlite import SqliteRegistry
from functions.core.runtime.base import JSON, RuntimeResponse
from tests.api.api_testkit import MODEL, PREFIX, FakeClock, add_version, digit_request
from tests.runtime_testkit import FakeRuntime

INFER = f"/v2/models/{MODEL}/infer"


def test_infer_dispatches_to_the_default_alias_and_names_the_version(
    client: TestClient, digits_v1: ModelVersion, user_key: str, runtime: FakeRuntime
) -> None:
    request = digit_request()
    response = client.post(INFER, json=request, headers={"x-api-key": user_key})
    assert response.status_code == 200
    assert response.headers["x-model-version"] == "1"
    assert response.headers["x-model-alias"] == "default"
    assert response.json()["outputs"][0]["data"] == [3]
    [call] = runtime.calls
    assert call.endpoint == f"{PREFIX}-{MODEL}"
    assert call.variant == "v1"
    assert call.content_type == JSON
    assert json.loads(call.body) == request  # forwarded as sent


def test_infer_on_a_named_alias_by_header_or_query(
    client: TestClient, registry: SqliteRegistry, user_key: str, runtime: FakeRuntime
) -> None:
    add_version(registry)  # v1 = default
    add_version(registry, alias="prod")  # v2 = prod
    headers = {"x-api-key": user_key}
    by_header = client.post(
        INFER, json=digit_request(), headers={**headers, "x-model-alias": "prod"}
    )
    by_query = client.post(f"{INFER}?alias=prod", json=digit_request(), headers=headers)
    default = client.post(INFER, json=digit_request(), headers=headers)
    assert [r.headers["x-model-version"] for r in (by_header, by_query, default)] == ["2", "2", "1"]
    assert by_header.headers["x-model-alias"] == "prod"
    assert [c.variant for c in runtime.calls] == ["v2", "v2", "v1"]


def test_unknown_alias_model_and_version_are_404(
    client: TestClient, digits_v1: ModelVersion, admin_key: str
) -> None:
    headers = {"x-api-key": admin_key}
    cases = [
        (f"{INFER}?alias=nope", "alias_not_found"),
        ("/v2/models/iris/infer", "model_not_found"),
        (f"/v2/models/{MODEL}/versions/9/infer", "version_not_found"),
        ("/v2/models/iris/versions/1/infer", "model_not_found"),
    ]
    for path, code in cases:
        response = client.post(path, json=digit_request(), headers=headers)
        assert (response.status_code, response.json()["code"]) == (404, code), path


def test_canary_weight_splits_traffic_and_the_header_names_who_answered(
    client: TestClient, registry: SqliteRegistry, user_key: str, runtime: FakeRuntime
) -> None:
    add_version(registry)
    add_version(registry, alias=None)
    registry.set_alias(
        model=MODEL, alias="default", version=1, canary_version=2, canary_weight=30, actor="t"
    )
    versions = []
    for _ in range(500):
        response = client.post(INFER, json=digit_request(), headers={"x-api-key": user_key})
        assert response.status_code == 200
        versions.append(response.headers["x-model-version"])
    canary_share = versions.count("2") / len(versions)
    assert 0.20 <= canary_share <= 0.40
    assert set(versions) == {"1", "2"}
    # Each answer's header names the variant the request was actually sent to.
    assert [f"v{v}" for v in versions] == [c.variant for c in runtime.calls]


def test_the_version_header_reports_the_variant_that_answered(
    client: TestClient, digits_v1: ModelVersion, user_key: str, runtime: FakeRuntime
) -> None:
    runtime.answer = lambda call: RuntimeResponse(body=b"{}", content_type=JSON, variant="v7")
    response = client.post(INFER, json=digit_request(), headers={"x-api-key": user_key})
    assert response.headers["x-model-version"] == "7"


def test_pinned_version_infer(
    client: TestClient, registry: SqliteRegistry, user_key: str, runtime: FakeRuntime
) -> None:
    add_version(registry)
    add_version(registry, alias=None)
    response = client.post(
        f"/v2/models/{MODEL}/versions/2/infer",
        json=digit_request(),
        headers={"x-api-key": user_key},
    )
    assert response.status_code == 200
    assert response.headers["x-model-version"] == "2"
    assert "x-model-alias" not in response.headers
    assert runtime.calls[-1].variant == "v2"


def test_retired_version_is_404_and_not_dispatched(
    client: TestClient, registry: SqliteRegistry, user_key: str, runtime: FakeRuntime
) -> None:
    add_version(registry)
    add_version(registry, alias=None)
    registry.retire_version(model=MODEL, version=2, actor="t")
    response = client.post(
        f"/v2/models/{MODEL}/versions/2/infer",
        json=digit_request(),
        headers={"x-api-key": user_key},
    )
    assert response.status_code == 404
    assert response.json() == {"error": f"{MODEL} version 2 is retired", "code": "version_retired"}
    ready = client.get(f"/v2/models/{MODEL}/versions/2/ready", headers={"x-api-key": user_key})
    assert ready.status_code == 404
    assert runtime.calls == []


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (UpstreamError("the model failed"), 502, "model_error", None),
        (UpstreamUnavailable("endpoint busy", retry_after=1), 503, "model_unavailable", "1"),
        (UpstreamUnavailable("endpoint down"), 503, "model_unavailable", "5"),
        (UpstreamTimeout("no answer in 30 s", retry_after=2), 504, "model_timeout", "2"),
        (InvalidInput("input 'input': bad values"), 422, "invalid_tensor", None),
    ],
)
def test_runtime_errors_map_to_their_status(
    client: TestClient,
    digits_v1: ModelVersion,
    user_key: str,
    runtime: FakeRuntime,
    error: ModelwayError,
    status: int,
    code: str,
    retry_after: str | None,
) -> None:
    runtime.error = error
    response = client.post(INFER, json=digit_request(), headers={"x-api-key": user_key})
    assert response.status_code == status
    assert response.json() == {"error": error.message, "code": code}
    assert response.headers.get("retry-after") == retry_after
    assert response.headers["x-model-version"] == "1"  # which version failed


def test_an_unexpected_failure_is_a_bare_500(
    client: TestClient, digits_v1: ModelVersion, user_key: str, runtime: FakeRuntime
) -> None:
    runtime.error = KeyError("secret internals")
    response = client.post(INFER, json=digit_request(), headers={"x-api-key": user_key})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error", "code": "internal_error"}
    assert "secret internals" not in response.text


def test_model_metadata_describes_the_default_version(
    client: TestClient, registry: SqliteRegistry, user_key: str
) -> None:
    add_version(registry)
    add_version(registry, alias=None)
    response = client.get(f"/v2/models/{MODEL}", headers={"x-api-key": user_key})
    assert response.status_code == 200
    assert response.json() == {
        "name": MODEL,
        "versions": ["1", "2"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
        "outputs": [
            {"name": "logits", "datatype": "FP32", "shape": [-1, 10]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ],
    }
    pinned = client.get(f"/v2/models/{MODEL}/versions/2", headers={"x-api-key": user_key})
    assert pinned.json()["versions"] == ["2"]
    assert client.get("/v2/models/iris", headers={"x-api-key": user_key}).status_code == 403


def test_model_and_version_readiness(
    client: TestClient, digits_v1: ModelVersion, admin_key: str
) -> None:
    headers = {"x-api-key": admin_key}
    ready = client.get(f"/v2/models/{MODEL}/ready", headers=headers)
    assert ready.json() == {"name": MODEL, "version": "1", "ready": True}
    assert client.get(f"/v2/models/{MODEL}/versions/1/ready", headers=headers).status_code == 200
    assert client.get(f"/v2/models/{MODEL}/versions/5/ready", headers=headers).status_code == 404
    assert client.get("/v2/models/iris/ready", headers=headers).status_code == 404


def test_alias_moves_elsewhere_are_seen_after_the_lookup_ttl(
    client: TestClient,
    registry: SqliteRegistry,
    user_key: str,
    clock: FakeClock,
) -> None:
    add_version(registry)
    add_version(registry, alias=None)
    headers = {"x-api-key": user_key}
    assert (
        client.post(INFER, json=digit_request(), headers=headers).headers["x-model-version"] == "1"
    )
    registry.set_alias(model=MODEL, alias="default", version=2, actor="elsewhere")
    assert (
        client.post(INFER, json=digit_request(), headers=headers).headers["x-model-version"] == "1"
    )
    clock.advance(5.01)
    assert (
        client.post(INFER, json=digit_request(), headers=headers).headers["x-model-version"] == "2"
    )
