"""Deadlines in the model server: a request whose caller has given up is dropped from its
batch (504 ``model_timeout``), never computed; one that cannot make its deadline behind the
queue is refused at once (503 + Retry-After). The deadline arrives as SageMaker forwards it:
``CustomAttributes: timeout-ms=N``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from botocore.exceptions import ClientError

from serving.app import create_local_app
from serving.batching import DynamicBatcher, Tensors
from serving.config import ServingConfig
from serving.deadlines import custom_attributes, request_deadline
from serving.exceptions import DeadlineExceeded, InvalidRequest, Overloaded
from tests.serving.serving_testkit import (
    infer_body,
    publish_classifier,
    running_server,
    runtime_client,
    wait_for,
)

PREFIX = "modelway-local"
ENDPOINT = f"{PREFIX}-digits"


class HeldRun:
    """Doubles ``x``; every run waits for ``release``; records what it computed."""

    def __init__(self) -> None:
        self.computed: list[np.ndarray] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, inputs: Tensors) -> Tensors:
        self.entered.set()
        self.release.wait(10)
        self.computed.append(inputs["x"].copy())
        return {"y": inputs["x"] * 2}


@pytest.fixture
def held() -> Iterator[tuple[HeldRun, DynamicBatcher]]:
    run = HeldRun()
    batcher = DynamicBatcher(run=run, name="test", max_queue_delay_s=0.0, max_batch_size=8)
    yield run, batcher
    run.release.set()
    batcher.close()


def x(value: float) -> Tensors:
    return {"x": np.full((1, 2), value, np.float32)}


def test_a_request_whose_deadline_passed_in_the_queue_is_dropped_not_computed(
    held: tuple[HeldRun, DynamicBatcher],
) -> None:
    run, batcher = held
    first = batcher.submit(x(1))
    assert run.entered.wait(10)  # the worker is busy with the first request
    late = batcher.submit(x(2), deadline=time.monotonic() + 0.05)
    on_time = batcher.submit(x(3), deadline=time.monotonic() + 30)
    time.sleep(0.1)
    run.release.set()
    assert first.result(10)["y"].tolist() == [[2, 2]]
    assert on_time.result(10)["y"].tolist() == [[6, 6]]
    with pytest.raises(DeadlineExceeded):
        late.result(10)
    assert [a[0, 0] for a in run.computed] == [1, 3]  # 2 was never computed
    assert batcher.stats.expired == 1


def test_a_deadline_already_past_is_refused_at_submit(
    held: tuple[HeldRun, DynamicBatcher],
) -> None:
    _, batcher = held
    with pytest.raises(DeadlineExceeded) as info:
        batcher.submit(x(1), deadline=time.monotonic() - 0.001)
    assert info.value.status == 504


def test_overload_is_503_at_once_when_the_queue_cannot_make_the_deadline(
    held: tuple[HeldRun, DynamicBatcher],
) -> None:
    run, batcher = held
    run.release.set()
    batcher.submit(x(0)).result(10)  # measured: about no time per run
    batcher._run_seconds = 0.2  # as measured on a slow model
    run.release.clear()
    run.entered.clear()
    batcher.submit(x(1))
    assert run.entered.wait(10)
    queued = [batcher.submit(x(v), deadline=time.monotonic() + 30) for v in range(2, 30)]
    started = time.monotonic()
    with pytest.raises(Overloaded) as info:
        # 28 rows queued = 4 batches of 8 ahead, ~0.8 s: a 0.3 s budget cannot be met.
        batcher.submit(x(99), deadline=time.monotonic() + 0.3)
    assert time.monotonic() - started < 0.1  # refused, not waited out
    assert info.value.retry_after == 1
    assert "longer than the request's" in info.value.message
    # One with the time to wait is queued.
    patient = batcher.submit(x(100), deadline=time.monotonic() + 30)
    run.release.set()
    assert patient.result(10)["y"][0, 0] == 200
    assert all(f.result(10) is not None for f in queued)
    assert batcher.stats.refused == 1


def test_the_deadline_comes_from_the_custom_attributes() -> None:
    assert custom_attributes("a=1; timeout-ms=250 ;junk") == {"a": "1", "timeout-ms": "250"}
    headers = {"x-amzn-sagemaker-custom-attributes": "trace=abc;timeout-ms=250"}
    assert request_deadline(headers, now=100.0) == pytest.approx(100.25)
    assert request_deadline({}, now=100.0) is None
    # Capped at SageMaker's own 60 s.
    far = {"x-amzn-sagemaker-custom-attributes": "timeout-ms=999999999"}
    assert request_deadline(far, now=0.0) == 60.0
    for bad in ("-1", "1.5", "soon", "9" * 20):
        with pytest.raises(InvalidRequest):
            request_deadline({"x-amzn-sagemaker-custom-attributes": f"timeout-ms={bad}"})


# -- over HTTP, through boto3 as the router calls it -----------------------------------


def test_over_http_a_request_past_its_deadline_is_504_and_not_computed(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    publish_classifier(root, model="digits", version=1, seed=1)
    app = create_local_app(
        artifacts_dir=root, endpoint_prefix=PREFIX, config=ServingConfig(ort_threads=1)
    )
    with running_server(app) as url:
        client = runtime_client(url)
        body = json.dumps(infer_body(np.zeros((1, 1, 8, 8), np.float32)))
        client.invoke_endpoint(EndpointName=ENDPOINT, Body=body, ContentType="application/json")
        model = app.state.repository.loaded(model="digits", version=1)
        real_run = model.batcher._run
        entered, release = threading.Event(), threading.Event()
        runs: list[int] = []

        def held_run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            runs.append(len(next(iter(inputs.values()))))
            entered.set()
            release.wait(30)
            return real_run(inputs)

        model.batcher._run = held_run
        blocker = threading.Thread(
            target=client.invoke_endpoint,
            kwargs={"EndpointName": ENDPOINT, "Body": body, "ContentType": "application/json"},
        )
        blocker.start()
        try:
            assert entered.wait(30)
            started = time.monotonic()
            with pytest.raises(ClientError) as info:
                client.invoke_endpoint(
                    EndpointName=ENDPOINT,
                    Body=body,
                    ContentType="application/json",
                    CustomAttributes="timeout-ms=300",
                )
            waited = time.monotonic() - started
        finally:
            release.set()
            blocker.join(30)
        response = info.value.response
        assert response["Error"]["Code"] == "ModelError"
        assert response["OriginalStatusCode"] == 504
        assert json.loads(response["OriginalMessage"])["code"] == "model_timeout"
        assert 0.25 < waited < 5  # answered at its deadline, not when the worker got to it
        wait_for(lambda: model.batcher.stats.expired == 1, what="the late request dropped")
        assert runs == [1]  # only the blocker was computed
