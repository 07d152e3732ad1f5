"""The Lambda handler on the sample events in events/: Mangum, the REST API path, the
placeholder key, Powertools logs and metrics."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from api_testkit import MODEL, FakeRuntime
from fastapi import FastAPI

from functions.api import handler as handler_module
from functions.api.apigw import authorizer_context, request_path
from functions.core.registry.base import ModelVersion
from model_build.cli.invoke import API_KEY_PLACEHOLDER, LocalLambdaContext, load_event

EVENTS = Path(__file__).resolve().parents[2] / "events"
# What each sample event gets from the local router (a key substituted for the placeholder).
EXPECTED_STATUS = {
    "api-infer.json": 200,
    "api-infer-bad-tensor.json": 422,
    "api-missing-key.json": 401,
    "api-admin-list-models.json": 200,
    "api-health.json": 200,
}
API_EVENTS = sorted(p.name for p in EVENTS.glob("api-*.json"))


@pytest.fixture
def lambda_handler(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``handler`` running the test app (the module builds its own on a real cold start)."""
    monkeypatch.setattr(handler_module, "_adapter", handler_module.build_adapter(app))
    return handler_module.handler


def test_every_api_event_has_an_expectation() -> None:
    assert API_EVENTS, f"no api-*.json events in {EVENTS}"
    assert set(API_EVENTS) == set(EXPECTED_STATUS)


@pytest.mark.parametrize("name", API_EVENTS)
def test_sample_event_through_the_handler(
    name: str,
    lambda_handler: Any,
    digits_v1: ModelVersion,
    admin_key: str,
    runtime: FakeRuntime,
) -> None:
    event = load_event(EVENTS / name, api_key=admin_key)
    response = lambda_handler(event, LocalLambdaContext())
    assert response["statusCode"] == EXPECTED_STATUS[name], response["body"]
    assert response["isBase64Encoded"] is False
    assert response["headers"]["content-type"] == "application/json"
    body = json.loads(response["body"])
    if response["statusCode"] >= 400:
        assert set(body) == {"error", "code"}
    if name == "api-infer.json":
        assert response["headers"]["x-model-version"] == "1"
        [call] = runtime.calls
        sent = json.loads(call.body)["inputs"][0]
        assert (sent["name"], sent["shape"]) == ("input", [1, 1, 8, 8])
    if name == "api-admin-list-models.json":
        assert body["models"][0]["name"] == MODEL


def test_events_carry_the_key_placeholder_and_real_shape() -> None:
    for name in API_EVENTS:
        event = json.loads((EVENTS / name).read_text())
        for field in (
            "resource",
            "path",
            "httpMethod",
            "headers",
            "multiValueHeaders",
            "queryStringParameters",
            "multiValueQueryStringParameters",
            "pathParameters",
            "stageVariables",
            "requestContext",
            "body",
            "isBase64Encoded",
        ):
            assert field in event, (name, field)
        context = event["requestContext"]
        for field in ("accountId", "apiId", "stage", "requestId", "identity"):
            assert field in context, (name, field)
        if "x-api-key" in event["headers"]:
            assert event["headers"]["x-api-key"] == API_KEY_PLACEHOLDER
            assert context["identity"]["apiKey"] == API_KEY_PLACEHOLDER


def test_the_infer_event_is_a_real_digit() -> None:
    event = json.loads((EVENTS / "api-infer.json").read_text())
    tensor = json.loads(event["body"])["inputs"][0]
    pixels = [v for row in tensor["data"][0][0] for v in row]
    assert len(pixels) == 64
    assert all(0 <= v <= 16 for v in pixels)
    assert sum(1 for v in pixels if v > 0) > 20  # ink, not a blank


def test_an_unknown_key_through_the_handler_is_401(
    lambda_handler: Any, digits_v1: ModelVersion
) -> None:
    event = load_event(EVENTS / "api-infer.json", api_key=None)  # placeholder left in place
    assert lambda_handler(event, LocalLambdaContext())["statusCode"] == 401


def test_a_binary_response_is_base64_encoded(
    lambda_handler: Any, digits_v1: ModelVersion, admin_key: str, runtime: FakeRuntime
) -> None:
    from functions.core.runtime.base import BINARY_JSON, RuntimeResponse

    runtime.answer = lambda call: RuntimeResponse(
        body=b'{"outputs":[]}\x00\xff',
        content_type=f"{BINARY_JSON};json-header-size=14",
        variant=call.variant,
    )
    event = load_event(EVENTS / "api-infer.json", api_key=admin_key)
    response = lambda_handler(event, LocalLambdaContext())
    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is True
    assert base64.b64decode(response["body"]) == b'{"outputs":[]}\x00\xff'
    assert response["headers"]["inference-header-content-length"] == "14"


def test_metrics_name_model_and_version_and_logs_carry_the_request_id(
    lambda_handler: Any,
    digits_v1: ModelVersion,
    admin_key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = load_event(EVENTS / "api-infer.json", api_key=admin_key)
    lambda_handler(event, LocalLambdaContext())
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    emf = [line for line in lines if "_aws" in line and "Latency" in line]
    assert emf, lines
    [dimensions] = emf[-1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert {"model", "version"} <= set(dimensions)
    assert (emf[-1]["model"], emf[-1]["version"]) == (MODEL, "1")
    assert emf[-1]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "modelway"
    request_logs = [line for line in lines if line.get("message") == "request"]
    assert request_logs[-1]["correlation_id"] == event["requestContext"]["requestId"]
    assert request_logs[-1]["status"] == 200


def test_a_non_api_gateway_event_is_refused(lambda_handler: Any) -> None:
    response = lambda_handler({"source": "aws.events"}, LocalLambdaContext())
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["code"] == "invalid_request"


# The path and the authorizer context, straight from events ------------------------------
def test_request_path_ignores_stage_and_base_path_mapping() -> None:
    proxy = {
        "resource": "/{proxy+}",
        "path": "/api/v2/models/digits/infer",  # a custom domain's base path mapping "api"
        "pathParameters": {"proxy": "v2/models/digits/infer"},
        "requestContext": {"stage": "prod"},
    }
    assert request_path(proxy) == "/v2/models/digits/infer"
    explicit = {
        "resource": "/v2/models/{model}/versions/{version}/infer",
        "path": "/v2/models/digits/versions/3/infer",
        "pathParameters": {"model": "digits", "version": "3"},
    }
    assert request_path(explicit) == "/v2/models/digits/versions/3/infer"
    hand_written = {"path": "/prod/v2/health/live", "requestContext": {"stage": "prod"}}
    assert request_path(hand_written) == "/v2/health/live"
    assert request_path({"resource": "/", "path": "/"}) == "/"


def test_authorizer_context_parsing() -> None:
    event = json.loads((EVENTS / "api-admin-list-models.json").read_text())
    context = authorizer_context(event)
    assert context is not None
    assert (context.models, context.admin) == (("*",), True)
    scoped = {"requestContext": {"authorizer": {"keyId": "k", "models": "a, b", "admin": False}}}
    parsed = authorizer_context(scoped)
    assert parsed is not None
    assert (parsed.models, parsed.admin, parsed.tenant) == (("a", "b"), False, "default")
    assert authorizer_context({"requestContext": {"authorizer": None}}) is None
    assert authorizer_context({"requestContext": {"authorizer": {"claims": {}}}}) is None
