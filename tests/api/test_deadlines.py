"""Every inference carries a deadline to the model server: API Gateway's 29 s from when it
received the request, or less when the client asks with ``X-Request-Timeout`` (seconds)."""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from functions.api.deadlines import request_deadline
from functions.core.exceptions import InvalidRequest, UpstreamTimeout
from functions.core.registry.base import ModelVersion
from tests.api.api_testkit import MODEL, digit_request
from tests.events import sample_event, sample_path
from tests.runtime_testkit import FakeRuntime

INFER = f"/v2/models/{MODEL}/infer"


def test_an_inference_carries_api_gateways_29_s_by_default(
    client: TestClient, digits_v1: ModelVersion, user_key: str, runtime: FakeRuntime
) -> None:
    before = time.time()
    response = client.post(INFER, json=digit_request(), headers={"x-api-key": user_key})
    after = time.time()
    assert response.status_code == 200
    (call,) = runtime.calls
    assert call.deadline is not None
    assert before + 29 <= call.deadline <= after + 29


def test_a_client_may_ask_for_less_never_more(
    client: TestClient, digits_v1: ModelVersion, user_key: str, runtime: FakeRuntime
) -> None:
    for asked, budget in (("2.5", 2.5), ("0.25", 0.25), ("600", 29.0)):
        before = time.time()
        response = client.post(
            f"/v2/models/{MODEL}/versions/1/infer",
            json=digit_request(),
            headers={"x-api-key": user_key, "x-request-timeout": asked},
        )
        assert response.status_code == 200
        deadline = runtime.calls[-1].deadline
        assert deadline is not None
        assert before + budget <= deadline <= time.time() + budget


@pytest.mark.parametrize("bad", ["0", "-1", "soon", "nan", "inf", ""])
def test_a_timeout_that_is_no_number_of_seconds_is_400(
    client: TestClient, digits_v1: ModelVersion, user_key: str, runtime: FakeRuntime, bad: str
) -> None:
    response = client.post(
        INFER, json=digit_request(), headers={"x-api-key": user_key, "x-request-timeout": bad}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "x-request-timeout" in response.json()["error"]
    assert runtime.calls == []
    # The caller is checked first.
    anonymous = client.post(INFER, json=digit_request(), headers={"x-request-timeout": bad})
    assert anonymous.status_code == 401


def test_a_model_that_misses_the_deadline_is_504_model_timeout(
    client: TestClient, digits_v1: ModelVersion, user_key: str, runtime: FakeRuntime
) -> None:
    runtime.error = UpstreamTimeout("model at x timed out: the request's deadline passed")
    response = client.post(
        INFER, json=digit_request(), headers={"x-api-key": user_key, "x-request-timeout": "1"}
    )
    assert response.status_code == 504
    assert response.json()["code"] == "model_timeout"
    assert response.headers["x-model-version"] == "1"


def test_under_lambda_the_clock_starts_when_api_gateway_received_the_request() -> None:
    now = 1_764_279_010.0
    event = {"requestContext": {"requestTimeEpoch": int((now - 4.0) * 1000)}}
    assert request_deadline(headers={}, event=event, limit_seconds=29, now=now) == now + 25
    asked = {"x-request-timeout": "10"}
    assert request_deadline(headers=asked, event=event, limit_seconds=29, now=now) == now + 6
    # A receipt time from the future (clock skew), or from longer ago than API Gateway waits
    # (a replayed sample event), counts from now.
    ahead = {"requestContext": {"requestTimeEpoch": int((now + 3) * 1000)}}
    assert request_deadline(headers={}, event=ahead, limit_seconds=29, now=now) == now + 29
    replayed = {"requestContext": {"requestTimeEpoch": 1_764_279_000_123}}
    later = now + 86_400 * 365
    assert request_deadline(headers={}, event=replayed, limit_seconds=29, now=later) == later + 29
    with pytest.raises(InvalidRequest):
        request_deadline(headers={"x-request-timeout": "x"}, event=None, limit_seconds=29)


def test_under_the_lambda_handler_the_deadline_runs_from_the_events_receipt_time(
    app: FastAPI,
    monkeypatch: pytest.MonkeyPatch,
    digits_v1: ModelVersion,
    admin_key: str,
    runtime: FakeRuntime,
) -> None:
    from cli.invoke import LocalLambdaContext, load_event
    from functions.api import handler as handler_module

    monkeypatch.setattr(handler_module, "_adapter", handler_module.build_adapter(app))
    event = load_event(sample_path("api-infer.json"), api_key=admin_key)
    received = time.time() - 3.0
    event["requestContext"]["requestTimeEpoch"] = int(received * 1000)
    assert handler_module.handler(event, LocalLambdaContext())["statusCode"] == 200
    assert runtime.calls[-1].deadline == pytest.approx(received + 29, abs=0.01)
    # An event received long before it is handled (the sample file's own receipt time, which
    # `load_event` restamps for `modelway invoke`) gets a whole budget from now.
    stored = load_event(sample_path("api-infer.json"), api_key=admin_key)
    as_stored = sample_event("api-infer.json")
    stored["requestContext"]["requestTimeEpoch"] = as_stored["requestContext"]["requestTimeEpoch"]
    before = time.time()
    assert handler_module.handler(stored, LocalLambdaContext())["statusCode"] == 200
    deadline = runtime.calls[-1].deadline
    assert deadline is not None
    assert before + 29 <= deadline <= time.time() + 29
