"""Whatever arrives as a request body, the router answers with JSON: 200 for a request that
fits the signature, else a 4xx ``{"error", "code"}`` — never a 500 — and only requests that
fit are dispatched to the model. Bounded: a few hundred generated bodies per test."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.core.registry.base import ModelVersion
from tests.api.api_testkit import MODEL, digit_request
from tests.runtime_testkit import FakeRuntime

INFER = f"/v2/models/{MODEL}/infer"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same bodies on every run: a failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=10), children, max_size=6)
    ),
    max_leaves=30,
)
TENSOR_FIELDS = ["name", "datatype", "shape", "data", "parameters"]


@st.composite
def mutated_requests(draw: st.DrawFn) -> Any:
    """A valid digits request with one to three fields of its tensor replaced."""
    request = digit_request(batch=draw(st.integers(min_value=1, max_value=3)))
    tensor = request["inputs"][0]
    for field in draw(st.lists(st.sampled_from(TENSOR_FIELDS), min_size=1, max_size=3)):
        tensor[field] = draw(json_values)
    if draw(st.booleans()):
        request[draw(st.sampled_from(["inputs", "outputs", "id", "parameters"]))] = draw(
            json_values
        )
    return request


def check(response: Any, runtime: FakeRuntime, calls_before: int) -> None:
    assert response.status_code in (200, 400, 413, 422), response.text
    payload = response.json()
    if response.status_code == 200:
        assert response.headers["x-model-version"] == "1"
        (call,) = runtime.calls[calls_before:]
        sent = json.loads(call.body)
        (tensor,) = sent["inputs"]
        assert tensor["name"] == "input"
        assert tensor["shape"][1:] == [1, 8, 8]
    else:
        assert set(payload) == {"error", "code"}, payload
        assert runtime.calls[calls_before:] == []  # nothing bad reaches the model


@pytest.fixture
def post(client: TestClient, digits_v1: ModelVersion, user_key: str, runtime: FakeRuntime) -> Any:
    def run(body: bytes) -> None:
        before = len(runtime.calls)
        response = client.post(
            INFER, content=body, headers={"x-api-key": user_key, "content-type": "application/json"}
        )
        check(response, runtime, before)

    return run


@FUZZ
@given(body=json_values)
def test_any_json_document(post: Any, body: Any) -> None:
    post(json.dumps(body).encode())


@FUZZ
@given(body=mutated_requests())
def test_a_valid_request_with_fields_replaced(post: Any, body: Any) -> None:
    post(json.dumps(body).encode())


@FUZZ
@given(body=st.binary(max_size=300))
def test_any_bytes(post: Any, body: bytes) -> None:
    post(body)
