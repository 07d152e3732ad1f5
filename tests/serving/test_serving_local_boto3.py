"""Local multi-version mode over real HTTP, driven by boto3's own ``sagemaker-runtime`` client,
exactly as the router's runtime client calls it (endpoint_url -> this server)."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from serving.app import create_local_app
from serving.config import ServingConfig
from serving.protocol import SAGEMAKER_BINARY
from serving.repository import LocalRepository
from tests.serving.serving_testkit import (
    binary_body,
    expected_logits,
    infer_body,
    publish_classifier,
    running_server,
    runtime_client,
    split_binary_response,
    wait_for,
)

PREFIX = "modelway-local"
ENDPOINT = f"{PREFIX}-digits"


def invoke(client: Any, x: np.ndarray, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    response = client.invoke_endpoint(
        EndpointName=kwargs.pop("EndpointName", ENDPOINT),
        Body=json.dumps(infer_body(x)),
        ContentType="application/json",
        **kwargs,
    )
    return response, json.loads(response["Body"].read())


@pytest.fixture
def artifacts_dir(tmp_path: Path) -> Path:
    root = tmp_path / "artifacts"
    publish_classifier(root, model="digits", version=1, seed=1)
    publish_classifier(root, model="digits", version=2, seed=2)
    return root


@pytest.fixture
def server(artifacts_dir: Path) -> Iterator[tuple[str, LocalRepository]]:
    app = create_local_app(
        artifacts_dir=artifacts_dir,
        endpoint_prefix=PREFIX,
        config=ServingConfig(ort_threads=1, max_queue_delay_ms=0),
    )
    with running_server(app) as url:
        yield url, app.state.repository


@pytest.fixture
def client(server: tuple[str, LocalRepository]) -> Any:
    return runtime_client(server[0])


def _logits(doc: dict[str, Any]) -> np.ndarray:
    out = next(o for o in doc["outputs"] if o["name"] == "logits")
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def test_no_target_variant_gets_the_highest_version(client: Any, batch: np.ndarray) -> None:
    response, doc = invoke(client, batch)
    assert response["InvokedProductionVariant"] == "v2"
    assert response["ContentType"] == "application/json"
    assert doc["model_name"] == "digits"
    assert doc["model_version"] == "2"
    np.testing.assert_allclose(_logits(doc), expected_logits(batch, seed=2), atol=1e-5)


def test_target_variant_is_honoured(client: Any, batch: np.ndarray) -> None:
    response, doc = invoke(client, batch, TargetVariant="v1")
    assert response["InvokedProductionVariant"] == "v1"
    assert doc["model_version"] == "1"
    np.testing.assert_allclose(_logits(doc), expected_logits(batch, seed=1), atol=1e-5)


def test_binary_tensors_through_boto3(client: Any, batch: np.ndarray) -> None:
    body, length = binary_body([("input", "FP32", batch)], parameters={"binary_data_output": True})
    response = client.invoke_endpoint(
        EndpointName=ENDPOINT,
        TargetVariant="v1",
        Body=body,
        ContentType=f"{SAGEMAKER_BINARY};json-header-size={length}",
    )
    content_type = response["ContentType"]
    assert content_type.startswith(SAGEMAKER_BINARY)
    out_length = int(content_type.rsplit("=", 1)[1])
    header, chunks = split_binary_response(response["Body"].read(), out_length)
    assert header["model_version"] == "1"
    logits = np.frombuffer(chunks["logits"], np.float32).reshape(2, 10)
    np.testing.assert_allclose(logits, expected_logits(batch, seed=1), atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"EndpointName": f"{PREFIX}-nope"}, f"Endpoint {PREFIX}-nope not found."),
        ({"EndpointName": "other-prefix-digits"}, "Endpoint other-prefix-digits not found."),
        ({"EndpointName": f"{PREFIX}-..", "TargetVariant": "v1"}, "not found"),
        ({"TargetVariant": "v9"}, f"Variant v9 not found for endpoint {ENDPOINT}."),
        ({"TargetVariant": "AllTraffic"}, "is not a version variant"),
    ],
)
def test_unknown_endpoint_or_variant_is_a_validation_error(
    client: Any, batch: np.ndarray, kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(ClientError) as info:
        invoke(client, batch, **kwargs)
    error = info.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "ValidationError"
    assert message in error["Error"]["Message"]


def test_bad_tensor_is_a_model_error_carrying_the_models_422(
    client: Any, batch: np.ndarray
) -> None:
    wrong = batch.reshape(2, 64)
    with pytest.raises(client.exceptions.ModelError) as info:
        invoke(client, wrong)
    error: dict[str, Any] = dict(info.value.response)
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 422
    original = json.loads(error["OriginalMessage"])
    assert original["code"] == "invalid_tensor"
    assert "shape" in original["error"]
    assert error["LogStreamArn"] == ""
    assert "Received client error (422)" in error["Error"]["Message"]


def test_malformed_body_is_a_model_error_400(client: Any) -> None:
    with pytest.raises(ClientError) as info:
        client.invoke_endpoint(
            EndpointName=ENDPOINT, Body=b"not json", ContentType="application/json"
        )
    error: dict[str, Any] = dict(info.value.response)  # the stubs omit ModelError's fields
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 400
    assert json.loads(error["OriginalMessage"])["code"] == "invalid_request"


def test_unloadable_version_is_a_model_error_500(
    client: Any, artifacts_dir: Path, batch: np.ndarray
) -> None:
    broken = artifacts_dir / "digits" / "5" / "model.tar.gz"
    broken.parent.mkdir()
    broken.write_bytes(b"not a tarball")
    for _ in range(2):  # the second answer comes from the remembered failure
        with pytest.raises(ClientError) as info:
            invoke(client, batch, TargetVariant="v5")
        error: dict[str, Any] = dict(info.value.response)
        assert error["Error"]["Code"] == "ModelError"
        assert error["OriginalStatusCode"] == 500
        assert json.loads(error["OriginalMessage"])["code"] == "invalid_artifact"
    publish_classifier(artifacts_dir, model="digits", version=5, seed=5)  # fixed in place
    _, doc = invoke(client, batch, TargetVariant="v5")
    np.testing.assert_allclose(_logits(doc), expected_logits(batch, seed=5), atol=1e-5)


def test_a_version_published_after_start_is_served(
    client: Any, artifacts_dir: Path, batch: np.ndarray
) -> None:
    invoke(client, batch, TargetVariant="v1")  # the server has scanned and loaded already
    publish_classifier(artifacts_dir, model="digits", version=3, seed=3)
    response, doc = invoke(client, batch, TargetVariant="v3")
    assert response["InvokedProductionVariant"] == "v3"
    np.testing.assert_allclose(_logits(doc), expected_logits(batch, seed=3), atol=1e-5)
    assert invoke(client, batch)[0]["InvokedProductionVariant"] == "v3"  # now the highest

    publish_classifier(artifacts_dir, model="fresh", version=1, seed=4)  # a new model too
    response, doc = invoke(client, batch, EndpointName=f"{PREFIX}-fresh")
    assert doc["model_name"] == "fresh"


def test_a_deleted_version_stops_being_served(
    client: Any, artifacts_dir: Path, batch: np.ndarray
) -> None:
    invoke(client, batch, TargetVariant="v2")
    (artifacts_dir / "digits" / "2" / "model.tar.gz").unlink()
    with pytest.raises(ClientError) as info:
        invoke(client, batch, TargetVariant="v2")
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert invoke(client, batch)[0]["InvokedProductionVariant"] == "v1"


def _park_worker(model: Any) -> tuple[threading.Event, threading.Event]:
    """Make the version's next session.run wait until released (the worker is then busy, so
    requests pile up in its queue exactly as they do under load)."""
    real_run = model.batcher._run
    entered, release = threading.Event(), threading.Event()

    def held_run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not release.is_set():
            entered.set()
            release.wait(30)
        return real_run(inputs)

    model.batcher._run = held_run
    return entered, release


def test_concurrent_requests_are_coalesced_over_http(artifacts_dir: Path) -> None:
    """While the worker is busy, four clients call at once: their requests queue up and are
    served by ONE session.run, each client getting the rows for its own input."""
    config = ServingConfig(ort_threads=1, max_batch_size=32)
    app = create_local_app(artifacts_dir=artifacts_dir, endpoint_prefix=PREFIX, config=config)
    repository: LocalRepository = app.state.repository
    with running_server(app) as url:
        repository.resolve(model="digits", version=1, endpoint=ENDPOINT)
        model = repository.load(model="digits", version=1)
        entered, release = _park_worker(model)
        inputs = [np.full((1, 1, 8, 8), i / 10, np.float32) for i in range(5)]
        results: dict[int, dict[str, Any]] = {}

        def call(i: int) -> None:
            results[i] = invoke(runtime_client(url), inputs[i], TargetVariant="v1")[1]

        threads = [threading.Thread(target=call, args=(i,)) for i in range(5)]
        threads[0].start()
        assert entered.wait(30)
        for t in threads[1:]:
            t.start()
        try:
            wait_for(lambda: model.batcher.queued == 4, what="four requests to queue")
        finally:
            release.set()
            for t in threads:
                t.join(30)
        assert model.batcher.stats.requests_per_run == {1: 1, 4: 1}
        for i in range(5):
            np.testing.assert_allclose(
                _logits(results[i]), expected_logits(inputs[i], seed=1), atol=1e-5
            )
        with urllib.request.urlopen(f"{url}/stats") as response:
            stats = json.loads(response.read())
        assert stats["digits/1"]["requests_per_run"] == {"1": 1, "4": 1}


def test_a_full_queue_is_service_unavailable(artifacts_dir: Path, batch: np.ndarray) -> None:
    config = ServingConfig(ort_threads=1, max_batch_size=1, max_queue_size=1)
    app = create_local_app(artifacts_dir=artifacts_dir, endpoint_prefix=PREFIX, config=config)
    repository: LocalRepository = app.state.repository
    with running_server(app) as url:
        client = runtime_client(url)
        invoke(client, batch, TargetVariant="v1")  # loaded
        model = repository.loaded(model="digits", version=1)
        assert model is not None
        entered, release = _park_worker(model)
        answers: list[str] = []

        def call() -> None:
            response = invoke(runtime_client(url), batch, TargetVariant="v1")[0]
            answers.append(response["InvokedProductionVariant"])

        running = threading.Thread(target=call)
        running.start()
        assert entered.wait(30)
        queued = threading.Thread(target=call)
        queued.start()
        wait_for(lambda: model.batcher.queued == 1, what="the second request to queue")
        try:
            with pytest.raises(ClientError) as info:
                invoke(client, batch, TargetVariant="v1")
        finally:
            release.set()
            running.join(30)
            queued.join(30)
        error = info.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert error["Error"]["Code"] == "ServiceUnavailable"
        assert error["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"
        assert answers == ["v1", "v1"]  # the admitted requests still completed


def test_ping(server: tuple[str, LocalRepository]) -> None:
    with urllib.request.urlopen(f"{server[0]}/ping") as response:
        assert response.status == 200


def test_a_large_request_is_served(client: Any) -> None:
    """Big enough to be decoded off the event loop, and larger than one batch."""
    x = np.random.default_rng(1).random((1000, 1, 8, 8), dtype=np.float32)
    _, doc = invoke(client, x, TargetVariant="v1")
    np.testing.assert_allclose(_logits(doc), expected_logits(x, seed=1), atol=1e-4)


def test_a_body_over_the_limit_is_a_model_error_413(artifacts_dir: Path) -> None:
    config = ServingConfig(ort_threads=1, max_request_bytes=4096)
    app = create_local_app(artifacts_dir=artifacts_dir, endpoint_prefix=PREFIX, config=config)
    with running_server(app) as url:
        with pytest.raises(ClientError) as info:
            invoke(runtime_client(url), np.zeros((20, 1, 8, 8), np.float32))
        error: dict[str, Any] = dict(info.value.response)
        assert error["Error"]["Code"] == "ModelError"
        assert error["OriginalStatusCode"] == 413
        assert json.loads(error["OriginalMessage"])["code"] == "payload_too_large"


def test_the_request_id_travels_in_and_queue_and_compute_come_back(
    server: tuple[str, LocalRepository], batch: np.ndarray
) -> None:
    """Through the router's own runtime client: ``CustomAttributes`` carry the request id (and
    deadline) to the model server, which echoes the id and reports its queue and compute
    time in its reply's custom attributes (what SageMaker returns to the caller)."""
    import time

    from functions.core.runtime.sagemaker import SageMakerRuntimeClient

    runtime = SageMakerRuntimeClient(
        endpoint_url=server[0], region=None, connect_timeout=1.0, read_timeout=5.0, max_attempts=1
    )
    response = runtime.invoke(
        endpoint=ENDPOINT,
        variant="v1",
        body=json.dumps(infer_body(batch)).encode(),
        content_type="application/json",
        deadline=time.time() + 10,
        request_id="req-42.a:b",
    )
    attributes = dict(response.attributes)
    assert attributes["request-id"] == "req-42.a:b"
    queued, computed = float(attributes["queue-ms"]), float(attributes["compute-ms"])
    assert queued >= 0
    assert computed > 0


def test_a_request_id_that_is_not_one_is_not_echoed(client: Any, batch: np.ndarray) -> None:
    response, _ = invoke(client, batch, CustomAttributes="request-id=a b c; x=1")
    attributes = response["CustomAttributes"]
    assert "request-id" not in attributes
    assert "compute-ms=" in attributes
