"""Following a request (issue 10): its id comes back in ``x-request-id`` and travels to the
model server; ``Server-Timing`` splits the router's time, with the model server's queue and
compute folded in when it reports them."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from functions.core.registry.base import ModelVersion
from functions.core.runtime.base import RuntimeResponse
from tests.api.api_testkit import digit_request
from tests.runtime_testkit import FakeRuntime

INFER = "/v2/models/digits/infer"


def timing(response: object) -> dict[str, float]:
    header = response.headers["server-timing"]  # type: ignore[attr-defined]
    phases = {}
    for item in header.split(","):
        name, _, duration = item.strip().partition(";dur=")
        phases[name] = float(duration)
    return phases


def test_a_request_gets_an_id_that_reaches_the_model_server(
    client: TestClient, digits_v1: ModelVersion, user_key: str, runtime: FakeRuntime
) -> None:
    response = client.post(INFER, json=digit_request(), headers={"x-api-key": user_key})
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    (call,) = runtime.calls
    assert call.request_id == request_id
    again = client.post(INFER, json=digit_request(), headers={"x-api-key": user_key})
    assert again.headers["x-request-id"] != request_id


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-request-id": "client-abc.123:x"}, "client-abc.123:x"),
        (
            {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        # The client's own id wins over its trace.
        (
            {
                "x-request-id": "mine",
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            },
            "mine",
        ),
    ],
)
def test_the_clients_id_or_trace_is_used(
    client: TestClient,
    digits_v1: ModelVersion,
    user_key: str,
    runtime: FakeRuntime,
    headers: dict[str, str],
    expected: str,
) -> None:
    response = client.post(INFER, json=digit_request(), headers={"x-api-key": user_key, **headers})
    assert response.headers["x-request-id"] == expected
    assert runtime.calls[-1].request_id == expected


@pytest.mark.parametrize(
    "hostile",
    [
        "a b",
        "id;timeout-ms=999999",  # would smuggle an item into CustomAttributes
        "x=1",
        "é",
        "a" * 129,
        "",
    ],
)
def test_an_id_that_could_break_a_log_line_or_the_attributes_is_replaced(
    client: TestClient, digits_v1: ModelVersion, user_key: str, runtime: FakeRuntime, hostile: str
) -> None:
    response = client.post(
        INFER,
        json=digit_request(),
        headers={"x-api-key": user_key, "x-request-id": hostile.encode()},
    )
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert runtime.calls[-1].request_id == response.headers["x-request-id"]


def test_server_timing_splits_the_routers_time(
    client: TestClient, digits_v1: ModelVersion, user_key: str
) -> None:
    response = client.post(INFER, json=digit_request(), headers={"x-api-key": user_key})
    phases = timing(response)
    assert list(phases) == ["receive", "auth", "resolve", "validate", "runtime", "total"]
    assert all(ms >= 0 for ms in phases.values())
    parts = sum(ms for name, ms in phases.items() if name != "total")
    assert parts <= phases["total"] + 0.01


def test_the_model_servers_queue_and_compute_are_folded_in(
    client: TestClient, digits_v1: ModelVersion, user_key: str, runtime: FakeRuntime
) -> None:
    plain = FakeRuntime().invoke

    def with_timings(call: object) -> RuntimeResponse:
        answer = plain(
            endpoint=call.endpoint,  # type: ignore[attr-defined]
            variant=call.variant,  # type: ignore[attr-defined]
            body=call.body,  # type: ignore[attr-defined]
            content_type=call.content_type,  # type: ignore[attr-defined]
        )
        return RuntimeResponse(
            body=answer.body,
            content_type=answer.content_type,
            variant=answer.variant,
            attributes={"request-id": "x", "queue-ms": "1.5", "compute-ms": "2.25"},
        )

    runtime.answer = with_timings
    response = client.post(INFER, json=digit_request(), headers={"x-api-key": user_key})
    phases = timing(response)
    assert (phases["queue"], phases["compute"]) == (1.5, 2.25)
    assert list(phases)[-3:] == ["queue", "compute", "total"]


def test_errors_carry_the_id_and_timing_too(
    client: TestClient, digits_v1: ModelVersion, user_key: str
) -> None:
    for response in (
        client.post(INFER, json=digit_request()),  # 401
        client.post("/v2/models/nope/infer", json=digit_request(), headers={"x-api-key": user_key}),
        client.post(INFER, json={"inputs": 1}, headers={"x-api-key": user_key}),
    ):
        assert response.status_code in (401, 403, 422)
        assert response.headers["x-request-id"]
        assert "total;dur=" in response.headers["server-timing"]
