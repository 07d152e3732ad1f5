"""Shadow traffic and capture on the AWS backends under moto: the router captures into the
data bucket and defers the shadow call; the batch function, notified of the pending capture,
asks the shadow version and writes its answers beside it; the compare report pairs them. Every
S3 and DynamoDB call is checked against the synthesized roles (``tests/iam_proof``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from functions.core import keys
from functions.core.clock import utc_now
from functions.core.runtime.base import JSON, RuntimeResponse
from tests.aws_testkit import BUCKET, REGION, TABLE
from tests.capture.capture_testkit import register_digits


@dataclass
class Runtime:
    """The SageMaker runtime's part: v1 answers class 1; v2 answers class 2 for the inputs
    starting with 9.0, else 1."""

    calls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(
        self, *, endpoint: str, variant: str | None, body: bytes, **_: Any
    ) -> RuntimeResponse:
        with self.lock:
            self.calls.append(variant or "")
        first = json.loads(body)["inputs"][0]["data"][0]
        top = 2 if variant == "v2" and first == 9.0 else 1
        logits = [0.0] * 10
        logits[top] = 1.0
        document = {
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [1, 10], "data": logits}]
        }
        return RuntimeResponse(
            body=json.dumps(document).encode(), content_type=JSON, variant=variant
        )


@pytest.fixture
def router(aws_registry: Any, bucket: str) -> Iterator[tuple[TestClient, Any, Runtime]]:
    from functions.api.app import create_app
    from functions.core.settings import Settings

    # Versioned, as the stack's data bucket is: notifications name the object version.
    boto3.client("s3", region_name=REGION).put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    for number in (1, 2):
        register_digits(
            aws_registry,
            number,
            artifact_uri=f"s3://{BUCKET}/artifacts/digits/{number}/model.tar.gz",
            endpoint="modelway-test-digits",
        )
    aws_registry.set_alias(model="digits", alias="default", version=1, actor="tests")
    settings = Settings(
        env="test",
        region=REGION,
        table_name=TABLE,
        bucket_name=bucket,
        sagemaker_deploy=False,
        key_cache_ttl_seconds=0,
        registry_cache_ttl_seconds=0,
    )
    _, admin = keys.create_key(registry=aws_registry, name="ops", models=["*"], admin=True)
    app = create_app(settings=settings)
    runtime = Runtime()
    app.state.modelway.runtime = runtime
    with TestClient(app) as client:
        client.headers["x-api-key"] = admin
        yield client, app, runtime


def infer(client: TestClient, first: float) -> Any:
    body = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [first, 0, 0, 0]}]
    }
    return client.post("/v2/models/digits/infer", json=body)


def objects(prefix: str) -> list[str]:
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_the_router_defers_the_shadow_and_the_batch_function_makes_it(
    router: tuple[TestClient, Any, Runtime],
    aws_registry: Any,
    aws_store: Any,
    swap_backends: Callable[..., Any],
) -> None:
    client, app, runtime = router
    put = client.put(
        "/v1/models/digits/aliases/default",
        json={"shadow_version": 2, "shadow_percent": 100, "capture_percent": 100},
    )
    assert put.status_code == 200, put.text
    for first in (1.0, 9.0, 1.0, 9.0, 1.0):
        response = infer(client, first)
        assert response.status_code == 200
        assert response.headers["x-model-version"] == "1"
    assert app.state.modelway.tap.drain(timeout=30)

    # In a Lambda sandbox the router never calls the shadow itself ...
    assert runtime.calls == ["v1"] * 5
    (pending,) = objects("captures/digits/default/")
    assert pending.endswith(".pending.jsonl")
    lines = [json.loads(x) for x in aws_store.open_object(key=pending).read().splitlines()]
    assert [line["extra"]["shadow_version"] for line in lines] == [2] * 5
    assert all(line["inputs"] and line["role"] == "primary" for line in lines)

    # ... the batch function, notified of the pending capture, does.
    from functions.batch import handler as batch_handler
    from functions.batch.events import s3_put_event

    head = boto3.client("s3", region_name=REGION).head_object(Bucket=BUCKET, Key=pending)
    event = s3_put_event(
        bucket=BUCKET,
        key=pending,
        size=head["ContentLength"],
        etag=head["ETag"].strip('"'),
        sequencer="0A1B2C",
        version_id=head.get("VersionId"),
    )
    swap_backends(
        settings=app.state.modelway.settings,
        registry=aws_registry,
        store=aws_store,
        batch_runtime=runtime,
    )
    result = batch_handler.handler(event, None)
    assert event["Records"][0]["s3"]["object"]["versionId"]
    assert result["shadow"] == [{"capture": pending, "shadowed": 5, "failed": 0}]
    assert runtime.calls[5:] == ["v2"] * 5
    shadow_key = pending.replace(".pending.jsonl", ".shadow.jsonl")
    assert objects("captures/digits/default/") == sorted([pending, shadow_key])

    report = client.get("/v1/models/digits/compare").json()
    (pair,) = report["pairs"]
    assert (pair["primary"], pair["shadow"], pair["compared"]) == (1, 2, 5)
    assert pair["agreement"] == 0.6  # v2 differs on the two requests starting with 9.0
    roles = {(v["version"], v["role"]): v["requests"] for v in report["versions"]}
    assert roles == {(1, "primary"): 5, (2, "shadow"): 5}


def test_a_shadow_version_gone_wrong_is_recorded_as_failed_answers(
    router: tuple[TestClient, Any, Runtime],
    aws_registry: Any,
    aws_store: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from functions.batch.deps import BatchDeps
    from functions.batch.events import ObjectRef
    from functions.batch.shadow import shadow_object
    from functions.core.capture.records import CaptureRecord

    _, app, runtime = router
    record = CaptureRecord(
        request_id="r1",
        at=utc_now(),
        model="digits",
        alias="default",
        version=1,
        role="primary",
        status=200,
        latency_ms=3.0,
        inputs=[{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1.0, 0, 0, 0]}],
        outputs=[],
        extra={"shadow_version": 7},  # no such version
    )
    key = f"captures/digits/default/{utc_now()[:10]}/000000-x.pending.jsonl"
    aws_store.put_object(key=key, body=record.to_line())
    deps = BatchDeps(
        settings=app.state.modelway.settings,
        registry=aws_registry,
        store=aws_store,
        runtime=runtime,
    )
    summary = shadow_object(ref=ObjectRef(bucket=BUCKET, key=key), deps=deps)
    assert summary == {"capture": key, "shadowed": 1, "failed": 1}
    (line,) = aws_store.open_object(key=key.replace(".pending", ".shadow")).read().splitlines()
    answer = json.loads(line)
    assert (answer["role"], answer["status"], answer["code"]) == (
        "shadow",
        404,
        "version_not_found",
    )
    assert runtime.calls == []
