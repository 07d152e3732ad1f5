"""The SageMaker Model Registry mirror written by the router's own API on its AWS backends
under moto: POST /v1/models/{m}/versions creates the version's package, .../approve and
.../reject set its ModelApprovalStatus, in a prod-like (approval-gated) environment. Every
call is made by the router, so the IAM proof checks each against the router's role; botocore
validates each call's parameters against SageMaker's service model before moto sees it.

A mirror failure never loses modelway's decision: the answer is still 200 with the decision
recorded (modelway's registry is the source of truth, and the gate reads it), ``mirror``
says ``failed`` with the error and the command that repeats the write, and ``modelway mirror
sync`` brings SageMaker up to date."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from fastapi.testclient import TestClient

from functions.core import keys
from tests.aws_testkit import BUCKET, REGION, TABLE
from tests.deploy.sagemaker_testkit import IMAGE, PREFIX, SageMaker, make_deployer

GROUP = f"{PREFIX}-digits"


@dataclass
class Router:
    client: TestClient
    alice: str  # publishes
    bob: str  # approves
    backends: Any

    def call(self, key: str, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.request(method, path, headers={"x-api-key": key}, **kwargs)

    def publish(self, key: str, artifact: Path, name: str) -> Any:
        boto3.client("s3", region_name=REGION).upload_file(str(artifact), BUCKET, name)
        return self.call(key, "POST", "/v1/models/digits/versions", json={"artifact_key": name})


@pytest.fixture
def router(aws_registry: Any, aws_store: Any, sagemaker: SageMaker) -> Iterator[Router]:
    from functions.api.app import create_app
    from functions.core.settings import Settings

    settings = Settings(
        env="test",
        region=REGION,
        table_name=TABLE,
        bucket_name=BUCKET,
        endpoint_prefix=PREFIX,
        serving_image_uri=IMAGE,
        require_approval=True,
        key_cache_ttl_seconds=0,
    )
    app = create_app(settings=settings)
    state = app.state.modelway
    # The mirror as the router builds it from its settings (``Backends.mirror``).
    state.backends = state.backends.replace(
        registry=aws_registry, store=aws_store, deployer=make_deployer(sagemaker)
    )
    _, alice = keys.create_key(registry=aws_registry, name="alice", models=["*"], admin=True)
    _, bob = keys.create_key(registry=aws_registry, name="bob", models=["*"], admin=True)
    with TestClient(app) as client:
        yield Router(client=client, alice=alice, bob=bob, backends=state.backends)


def status_of(arn: str) -> str:
    described = boto3.client("sagemaker", region_name=REGION).describe_model_package(
        ModelPackageName=arn
    )
    return str(described["ModelApprovalStatus"])


def fail_on(router: Router, operation: str, code: str = "AccessDeniedException") -> None:
    """SageMaker refuses ``operation`` from the router's mirror client (as IAM or an outage
    would) until the test lifts it."""
    client = router.backends.mirror._sm.get()

    def refuse(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        error = {"Code": code, "Message": f"not allowed to {operation}"}
        return AWSResponse("https://sagemaker", 400, HTTPHeaders(), None), {"Error": error}

    client.meta.events.register(
        f"before-call.sagemaker.{operation}", refuse, unique_id=f"refuse-{operation}"
    )


def lift(router: Router, operation: str) -> None:
    router.backends.mirror._sm.get().meta.events.unregister(
        f"before-call.sagemaker.{operation}", unique_id=f"refuse-{operation}"
    )


def test_publish_approve_and_reject_through_the_api_show_in_the_model_registry(
    router: Router, make_artifact: Any, aws_registry: Any
) -> None:
    published = router.publish(router.alice, make_artifact(payload=b"one"), "uploads/v1.tar.gz")
    assert published.status_code == 201, published.text
    mirror = published.json()["mirror"]
    assert mirror["status"] == "synced"
    arn = mirror["model_package_arn"]
    assert arn.startswith(f"arn:aws:sagemaker:{REGION}:123456789012:model-package/{GROUP}/")
    assert status_of(arn) == "PendingManualApproval"

    # The gate: alice published it, so only bob may approve it.
    own = router.call(router.alice, "POST", "/v1/models/digits/versions/1/approve")
    assert (own.status_code, own.json()["code"]) == (409, "self_approval")
    assert status_of(arn) == "PendingManualApproval"
    approved = router.call(
        router.bob, "POST", "/v1/models/digits/versions/1/approve", json={"reason": "parity ok"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["mirror"] == {"status": "synced", "model_package_arn": arn}
    described = boto3.client("sagemaker", region_name=REGION).describe_model_package(
        ModelPackageName=arn
    )
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"].endswith(": parity ok")
    assert described["ApprovalDescription"].startswith("bob")

    rejected = router.call(
        router.bob, "POST", "/v1/models/digits/versions/1/reject", json={"reason": "drift"}
    )
    assert rejected.status_code == 200, rejected.text
    assert status_of(arn) == "Rejected"
    assert [d.decision for d in aws_registry.list_decisions(model="digits", version=1)] == [
        "approved",
        "rejected",
    ]


def test_a_mirror_failure_keeps_the_decision_says_so_and_is_repaired_by_mirror_sync(
    router: Router,
    make_artifact: Any,
    aws_registry: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    swap_backends: Callable[..., Any],
) -> None:
    # A publish whose mirror write fails: the version is registered all the same.
    fail_on(router, "CreateModelPackage")
    published = router.publish(router.alice, make_artifact(payload=b"one"), "uploads/v1.tar.gz")
    assert published.status_code == 201, published.text
    assert published.json()["version"] == 1
    failed = published.json()["mirror"]
    assert failed["status"] == "failed"
    assert "AccessDeniedException" in failed["error"]
    assert failed["retry"] == "modelway mirror sync digits 1"
    assert aws_registry.get_version(model="digits", version=1).status == "active"

    # An approval whose mirror write fails (SageMaker still refuses): recorded, answered
    # 200, and it gates as recorded.
    approved = router.call(router.bob, "POST", "/v1/models/digits/versions/1/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["decision"] == "approved"
    assert approved.json()["mirror"]["status"] == "failed"
    assert [d.decision for d in aws_registry.list_decisions(model="digits", version=1)] == [
        "approved"
    ]
    moved = router.call(router.alice, "PUT", "/v1/models/digits/aliases/prod", json={"version": 1})
    assert moved.status_code in (200, 202), moved.text
    lift(router, "CreateModelPackage")

    # The retry the answer named brings the Model Registry up to date, in one command.
    from cli import main

    monkeypatch.setenv("MODELWAY_ACTOR", "bob")
    swap_backends(router.backends)
    assert main(["mirror", "sync", "digits", "1"]) == 0
    synced = json.loads(capsys.readouterr().out)["versions"]["1"]
    assert synced["status"] == "synced"
    assert status_of(synced["model_package_arn"]) == "Approved"


def test_the_cli_reports_a_mirror_failure_without_losing_the_decision(
    router: Router,
    make_artifact: Any,
    aws_registry: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    swap_backends: Callable[..., Any],
) -> None:
    from cli import main

    published = router.publish(router.alice, make_artifact(payload=b"one"), "uploads/v1.tar.gz")
    arn = published.json()["mirror"]["model_package_arn"]
    fail_on(router, "UpdateModelPackage")
    monkeypatch.setenv("MODELWAY_ACTOR", "carol")
    swap_backends(router.backends)
    code = main(["reject", "digits", "1", "--reason", "bias"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["mirror"]["status"] == "failed"
    assert "the SageMaker Model Registry was not updated" in err
    assert "modelway mirror sync digits 1" in err
    assert aws_registry.list_decisions(model="digits", version=1)[-1].decision == "rejected"
    assert status_of(arn) == "PendingManualApproval"
    # Still failing: mirror sync says so with its exit status.
    assert main(["mirror", "sync", "digits"]) == 1
    capsys.readouterr()
    lift(router, "UpdateModelPackage")
    assert main(["mirror", "sync", "digits"]) == 0
    assert status_of(arn) == "Rejected"


def test_an_approval_made_in_studio_opens_the_gate_through_its_event(
    router: Router,
    make_artifact: Any,
    aws_registry: Any,
    monkeypatch: pytest.MonkeyPatch,
    swap_backends: Callable[..., Any],
) -> None:
    """The round trip: alice publishes through the router (the package is created pending),
    a reviewer approves the package in SageMaker Studio, its EventBridge event reaches the
    endpoint-events function, and the gated alias move the router refused is now made; the
    history names the approval and the move."""
    from functions.core.settings import get_settings
    from functions.endpoint_events import handler as endpoint_events
    from tests.deploy.test_aws_endpoint_events import Context

    published = router.publish(router.alice, make_artifact(payload=b"one"), "uploads/v1.tar.gz")
    arn = published.json()["mirror"]["model_package_arn"]
    move = "/v1/models/digits/aliases/prod"
    refused = router.call(router.alice, "PUT", move, json={"version": 1})
    assert (refused.status_code, refused.json()["code"]) == (409, "not_approved")

    sm = boto3.client("sagemaker", region_name=REGION)
    package = sm.describe_model_package(ModelPackageName=arn)
    sm.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus="Approved",
        ApprovalDescription="reviewed in Studio",
        CustomerMetadataProperties=package["CustomerMetadataProperties"],
    )
    # The event SageMaker sends for it: the package as it now is.
    now = sm.describe_model_package(ModelPackageName=arn)
    event = {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Model Package State Change",
        "detail": {
            "ModelPackageGroupName": now["ModelPackageGroupName"],
            "ModelPackageArn": arn,
            "ModelApprovalStatus": now["ModelApprovalStatus"],
            "ApprovalDescription": now["ApprovalDescription"],
            "CustomerMetadataProperties": now["CustomerMetadataProperties"],
            "LastModifiedBy": {"UserProfileName": "reviewer"},
        },
    }
    for name, value in {"MODELWAY_ENV": "test", "MODELWAY_ENDPOINT_PREFIX": PREFIX}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    swap_backends(router.backends)  # the same registry (DynamoDB) as the router's
    try:
        result = endpoint_events.handler(event, Context())
    finally:
        get_settings.cache_clear()
    assert result == {"action": "recorded", "model": "digits", "version": 1, "decision": "approved"}

    moved = router.call(router.alice, "PUT", move, json={"version": 1})
    assert moved.status_code in (200, 202), moved.text
    history = router.call(router.bob, "GET", "/v1/models/digits/history").json()
    assert [(d["decision"], d["actor"]) for d in history["decisions"]] == [
        ("approved", "reviewer (SageMaker)")
    ]
    assert history["decisions"][0]["reason"] == "reviewed in Studio"


def test_modelway_publish_from_the_cli_creates_the_versions_package(
    router: Router,
    make_artifact: Any,
    aws_registry: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    swap_backends: Callable[..., Any],
) -> None:
    """The CLI's publish on AWS backends writes the same package the router's would, held
    from its alias in a gated environment until another person approves."""
    import model_build.verify
    from cli import main
    from functions.core.archive import check_artifact

    # The fake artifact carries no real ONNX graph: checked without loading it.
    monkeypatch.setattr(
        model_build.verify, "verify_artifact", lambda *, path: check_artifact(path=path)
    )
    monkeypatch.setenv("MODELWAY_ACTOR", "alice")
    swap_backends(router.backends)
    code = main(["publish", str(make_artifact(payload=b"one")), "--alias", "prod", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    published = json.loads(out)
    assert published["held"]["aliases"] == ["prod", "default"]
    assert published["mirror"]["status"] == "synced"
    arn = published["mirror"]["model_package_arn"]
    described = boto3.client("sagemaker", region_name=REGION).describe_model_package(
        ModelPackageName=arn
    )
    assert described["ModelPackageGroupName"] == GROUP
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert described["CustomerMetadataProperties"]["modelway:published_by"] == "alice"
    assert described["InferenceSpecification"]["Containers"][0]["Image"] == IMAGE
