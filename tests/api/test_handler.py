"""The Lambda handler on the sample events in events/: Mangum, the REST API path, the
placeholder key, Powertools logs and metrics."""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import random
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from cli import invoke, main
from cli.invoke import API_KEY_PLACEHOLDER, LocalLambdaContext, load_event
from functions.api import handler as handler_module
from functions.api.apigw import authorizer_context, request_path
from functions.core.registry.base import ModelVersion
from functions.core.registry.sqlite import SqliteRegistry
from functions.core.settings import Settings
from tests.api.api_testkit import MODEL, FakeClock, build_app, make_key
from tests.events import EVENTS_DIR
from tests.runtime_testkit import FakeRuntime

EVENTS = EVENTS_DIR
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
    # JSON is not one of the API's binary media types: API Gateway hands it over as text.
    assert event["isBase64Encoded"] is False
    tensor = json.loads(event["body"])["inputs"][0]
    assert (tensor["name"], tensor["datatype"], tensor["shape"]) == ("input", "FP32", [1, 1, 8, 8])
    pixels = [v for row in tensor["data"][0][0] for v in row]
    assert len(pixels) == 64
    assert all(0 <= v <= 16 for v in pixels)
    assert sum(1 for v in pixels if v > 0) > 20  # ink, not a blank


def test_on_aws_the_events_authorizer_context_is_used(
    settings: Settings,
    registry: SqliteRegistry,
    runtime: FakeRuntime,
    clock: FakeClock,
    digits_v1: ModelVersion,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As deployed: the authorizer validated the key, the router only reads its verdict."""
    app = build_app(
        settings=settings.model_copy(update={"env": "dev"}),
        registry=registry,
        runtime=runtime,
        clock=clock,
        rng=random.Random(0),
    )
    monkeypatch.setattr(handler_module, "_adapter", handler_module.build_adapter(app))
    for name, status in [("api-infer.json", 200), ("api-admin-list-models.json", 200)]:
        event = load_event(EVENTS / name, api_key=None)  # no key in the registry at all
        response = handler_module.handler(event, LocalLambdaContext())
        assert response["statusCode"] == status, (name, response["body"])
    # The infer event's key is scoped to digits and is not admin.
    event = load_event(EVENTS / "api-infer.json", api_key=None)
    event["path"] = "/v1/models"
    event["resource"], event["pathParameters"] = "/{proxy+}", {"proxy": "v1/models"}
    event["httpMethod"], event["body"], event["isBase64Encoded"] = "GET", None, False
    assert handler_module.handler(event, LocalLambdaContext())["statusCode"] == 403


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
    # Powertools' log handler holds the stdout of its import time; give it a fresh stream.
    log_stream = io.StringIO()
    log_handler = handler_module.logger.registered_handler
    assert isinstance(log_handler, logging.StreamHandler)
    previous = log_handler.setStream(log_stream)
    try:
        lambda_handler(event, LocalLambdaContext())
    finally:
        log_handler.setStream(previous)

    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    emf = [m for m in metrics if "Latency" in m]
    assert emf, metrics
    [dimensions] = emf[-1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert {"model", "version"} <= set(dimensions)
    assert (emf[-1]["model"], emf[-1]["version"]) == (MODEL, "1")
    assert emf[-1]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "modelway"
    logs = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    [request_log] = [line for line in logs if line.get("message") == "request"]
    assert request_log["correlation_id"] == event["requestContext"]["requestId"]
    assert (request_log["status"], request_log["model"]) == (200, MODEL)


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


# A real cold start, and the CLI --------------------------------------------------------
def test_cold_start_builds_the_app_from_the_environment(
    modelway_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handler_module, "_adapter", None)
    health = handler_module.handler(
        load_event(EVENTS / "api-health.json", api_key=None), LocalLambdaContext()
    )
    assert health["statusCode"] == 200
    missing = handler_module.handler(
        load_event(EVENTS / "api-missing-key.json", api_key=None), LocalLambdaContext()
    )
    assert missing["statusCode"] == 401
    assert (modelway_home / "registry.db").exists()  # the local backend, from MODELWAY_HOME


def run_invoke(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    invoke.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_invoke_cli_prints_the_response(
    modelway_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(handler_module, "_adapter", None)
    from functions.core.settings import get_settings

    registry = SqliteRegistry(path=get_settings().registry_path)
    secret = make_key(registry, models=["*"], admin=True)

    assert (
        run_invoke(["invoke", "api", str(EVENTS / "api-admin-list-models.json"), "--key", secret])
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("HTTP 200\n")
    assert '"models": []' in out

    # --json: the proxy response itself, parseable.
    event = str(EVENTS / "api-admin-list-models.json")
    assert main(["invoke", "api", event, "--key", secret, "--json"]) == 0
    response = json.loads(capsys.readouterr().out)
    assert (response["statusCode"], json.loads(response["body"])) == (200, {"models": []})

    monkeypatch.setenv("MODELWAY_API_KEY", "mw_key_000000000000_wrong")
    assert run_invoke(["invoke", "api", str(EVENTS / "api-admin-list-models.json")]) == 1
    assert capsys.readouterr().out.startswith("HTTP 401\n")
    assert main(["invoke", "api", event, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["statusCode"] == 401


@pytest.mark.parametrize("name", API_EVENTS)
def test_a_replayed_sample_event_was_received_now(name: str) -> None:
    """The router's deadline counts from API Gateway's requestTimeEpoch: a sample event kept
    its recorded one, it would be past its deadline (504) before it was routed."""
    import time

    event = load_event(EVENTS / name, api_key="k")
    received = event["requestContext"]["requestTimeEpoch"] / 1000
    assert abs(received - time.time()) < 5


def _event_for(model: str, *, key: str | None, body: bytes | None = None) -> dict[str, Any]:
    event = load_event(EVENTS / "api-infer.json", api_key=key)
    event["path"] = f"/v2/models/{model}/infer"
    event["pathParameters"] = {"proxy": f"models/{model}/infer"}
    event["requestContext"]["path"] = f"/prod/v2/models/{model}/infer"
    if key is None:
        event["headers"].pop("x-api-key")
        event["multiValueHeaders"].pop("x-api-key")
    if body is not None:
        event["body"] = base64.b64encode(body).decode()
    return event


def test_each_models_errors_are_counted_for_that_model_alone(
    lambda_handler: Any,
    registry: SqliteRegistry,
    digits_v1: ModelVersion,
    admin_key: str,
    runtime: FakeRuntime,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 10: the rollback alarm counted every 5xx of the stage, so one tenant's failures
    rolled back another's deployment. ``ModelErrors`` (service, model) is what each model's
    rollback alarm watches (``functions.core.deploy.guardrail``)."""
    from functions.core.deploy import guardrail
    from functions.core.exceptions import UpstreamError
    from tests.api.api_testkit import add_version

    add_version(registry, model="other")
    answer = FakeRuntime().invoke

    def digits_fails(call: Any) -> Any:
        if call.endpoint.endswith("-digits"):
            raise UpstreamError("the model failed")
        return answer(
            endpoint=call.endpoint,
            variant=call.variant,
            body=call.body,
            content_type=call.content_type,
        )

    runtime.answer = digits_fails
    capsys.readouterr()
    statuses = [
        lambda_handler(_event_for(MODEL, key=admin_key), LocalLambdaContext())["statusCode"],
        lambda_handler(_event_for("other", key=admin_key), LocalLambdaContext())["statusCode"],
        lambda_handler(
            _event_for("other", key=admin_key, body=b'{"inputs": 1}'), LocalLambdaContext()
        )["statusCode"],
        lambda_handler(_event_for("other", key=None), LocalLambdaContext())["statusCode"],
    ]
    assert statuses == [502, 200, 400, 401]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    counted = [m for m in lines if guardrail.METRIC in m]
    assert [(m["model"], m[guardrail.METRIC]) for m in counted] == [
        (MODEL, [1.0]),
        ("other", [0.0]),
        ("other", [0.0]),
    ]
    for m in counted:
        (directive,) = m["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == guardrail.NAMESPACE
        assert [set(d) for d in directive["Dimensions"]] == [{"service", "model"}]
        assert m["service"] == guardrail.SERVICE


@pytest.mark.parametrize("client_id", [None, "trace-me-42"])
def test_logs_and_the_answer_carry_one_request_id(
    lambda_handler: Any,
    digits_v1: ModelVersion,
    admin_key: str,
    client_id: str | None,
) -> None:
    """API Gateway's request id, or the client's x-request-id when it sent one: the same in
    the log lines (Powertools correlation id) and the response."""
    event = load_event(EVENTS / "api-infer.json", api_key=admin_key)
    if client_id is not None:
        event["headers"]["X-Request-Id"] = client_id
        event["multiValueHeaders"]["X-Request-Id"] = [client_id]
    expected = client_id or event["requestContext"]["requestId"]
    log_stream = io.StringIO()
    log_handler = handler_module.logger.registered_handler
    assert isinstance(log_handler, logging.StreamHandler)
    previous = log_handler.setStream(log_stream)
    try:
        response = lambda_handler(event, LocalLambdaContext())
    finally:
        log_handler.setStream(previous)
    assert response["headers"]["x-request-id"] == expected
    assert "runtime;dur=" in response["headers"]["server-timing"]
    logs = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    [request_log] = [line for line in logs if line.get("message") == "request"]
    assert request_log["correlation_id"] == expected
    assert request_log["request_id"] == expected


def test_a_timeout_the_caller_asked_for_is_not_the_models_error(
    lambda_handler: Any,
    digits_v1: ModelVersion,
    admin_key: str,
    runtime: FakeRuntime,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A client that sends ``X-Request-Timeout: 0.2`` to a model that needs a second gets its
    504, but must not count toward the rollback alarm: one impatient caller would otherwise roll
    back a healthy deployment. Without the header (the router's own limit) a 504 does count."""
    from functions.core.deploy import guardrail
    from functions.core.exceptions import UpstreamTimeout

    def too_slow(call: Any) -> Any:
        raise UpstreamTimeout("the model did not answer in time")

    runtime.answer = too_slow
    hurried = _event_for(MODEL, key=admin_key)
    hurried["headers"]["x-request-timeout"] = "0.2"
    hurried["multiValueHeaders"]["x-request-timeout"] = ["0.2"]
    at_limit = _event_for(MODEL, key=admin_key)
    at_limit["headers"]["x-request-timeout"] = "600"
    at_limit["multiValueHeaders"]["x-request-timeout"] = ["600"]
    capsys.readouterr()
    statuses = [
        lambda_handler(event, LocalLambdaContext())["statusCode"]
        for event in (hurried, _event_for(MODEL, key=admin_key), at_limit)
    ]
    assert statuses == [504, 504, 504]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    assert [m[guardrail.METRIC] for m in lines if guardrail.METRIC in m] == [[0.0], [1.0], [1.0]]
    # Every one of them is still a server error of the stage, as the caller saw it.
    assert [m["ServerErrors"] for m in lines if "ServerErrors" in m] == [[1.0], [1.0], [1.0]]
