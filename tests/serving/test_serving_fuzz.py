"""No request body crashes the model server: whatever arrives on ``/invocations`` gets 200 or
a JSON ``{"error", "code"}`` 4xx, and the server keeps answering. Over real HTTP on loopback,
a few hundred generated bodies per test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.app import create_hosting_app
from serving.config import ServingConfig
from serving.protocol import SAGEMAKER_BINARY
from tests.serving.serving_testkit import (
    CLASSIFIER_SIGNATURE,
    classifier_onnx,
    infer_body,
    package,
    running_server,
)

FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=10), children, max_size=6)
    ),
    max_leaves=30,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tar = package(
        tmp_path_factory.mktemp("fuzz") / "model.tar.gz",
        classifier_onnx(0),
        name="digits",
        version=1,
        signature=CLASSIFIER_SIGNATURE,
    )
    app = create_hosting_app(
        model_dir=tar.parent, config=ServingConfig(ort_threads=1, max_request_bytes=64 * 1024)
    )
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client
        # Still alive and still right after everything thrown at it.
        assert client.get("/ping").status_code == 200
        ok = client.post("/invocations", json=infer_body(np.zeros((1, 1, 8, 8), np.float32)))
        assert ok.status_code == 200


def check(response: httpx.Response) -> None:
    assert response.status_code in (200, 400, 413, 422), response.text
    if response.status_code != 200:
        assert set(response.json()) == {"error", "code"}, response.text


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    request = infer_body(np.ones((draw(st.integers(1, 3)), 1, 8, 8), np.float32))
    tensor = request["inputs"][0]
    for field in draw(st.lists(st.sampled_from(["name", "datatype", "shape", "data"]), max_size=3)):
        tensor[field] = draw(json_values)
    return request


@FUZZ
@given(body=json_values)
def test_any_json_document(server: httpx.Client, body: Any) -> None:
    # allow_nan floats are sent as NaN/Infinity tokens, which strict JSON parsers refuse.
    check(
        server.post(
            "/invocations", content=json.dumps(body), headers={"content-type": "application/json"}
        )
    )


@FUZZ
@given(body=mutated())
def test_a_valid_request_with_fields_replaced(server: httpx.Client, body: Any) -> None:
    check(
        server.post(
            "/invocations", content=json.dumps(body), headers={"content-type": "application/json"}
        )
    )


@FUZZ
@given(header=json_values, tail=st.binary(max_size=600), declared=st.integers(-5, 2000))
def test_binary_extension_with_any_header_and_payload(
    server: httpx.Client, header: Any, tail: bytes, declared: int
) -> None:
    head = json.dumps(header).encode()
    body = head + tail
    content_type = f"{SAGEMAKER_BINARY};json-header-size={declared}"
    check(server.post("/invocations", content=body, headers={"content-type": content_type}))
    check(
        server.post(
            "/invocations",
            content=body,
            headers={
                "Inference-Header-Content-Length": str(len(head)),
                "content-type": "application/octet-stream",
            },
        )
    )
