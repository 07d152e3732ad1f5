"""The SageMaker Model Registry mirror under moto: publish -> package group and package;
a decision -> ModelApprovalStatus; an approval made in Studio (the EventBridge event) -> a
decision in modelway's registry. boto3's parameter validation checks every call's shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.core.aws_clients import LazyClient
from functions.core.clock import utc_now
from functions.core.mirror import NoMirror, SageMakerMirror, apply_state_change
from functions.core.registry.base import Decision, ModelVersion
from functions.core.registry.local import SqliteRegistry

PREFIX = "modelway-prod"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/modelway-serving:latest"
EVENT = Path(__file__).parents[2] / "events" / "sagemaker-model-package-approved.json"


@pytest.fixture
def sagemaker(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sagemaker", region_name="us-east-1")


def version(number: int) -> ModelVersion:
    return ModelVersion(
        model="digits",
        version=number,
        sha256=f"{number:064x}",
        artifact_uri=f"s3://modelway-prod-data/artifacts/digits/{number}/model.tar.gz",
        manifest={
            "parity": {"passed": True, "max_abs_diff": 1e-6, "samples": 8},
            "latency": {"p50_ms": 1.5},
        },
        created_at=utc_now(),
        created_by="alice",
        endpoint_name="modelway-prod-digits",
        variant_name=f"v{number}",
    )


def test_publish_then_decide_mirrors_into_the_model_registry(sagemaker: Any) -> None:
    mirror = SageMakerMirror(sagemaker=LazyClient("sagemaker", region="us-east-1"), prefix=PREFIX)
    arn1 = mirror.version_published(version=version(1), image_uri=IMAGE)
    arn2 = mirror.version_published(version=version(2), image_uri=IMAGE)
    # Publishing again (a resumed publish) finds the package, not a second one.
    assert mirror.version_published(version=version(2), image_uri=IMAGE) == arn2

    groups = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in groups] == ["modelway-prod-digits"]
    packages = sagemaker.list_model_packages(ModelPackageGroupName="modelway-prod-digits")
    assert sorted(p["ModelPackageArn"] for p in packages["ModelPackageSummaryList"]) == sorted(
        [arn1, arn2]
    )
    described = sagemaker.describe_model_package(ModelPackageName=arn2)
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    container = described["InferenceSpecification"]["Containers"][0]
    assert (container["Image"], container["ModelDataUrl"]) == (IMAGE, version(2).artifact_uri)
    meta = described["CustomerMetadataProperties"]
    assert meta["modelway:version"] == "2"
    assert meta["modelway:parity_passed"] == "True"
    assert meta["modelway:latency_p50_ms"] == "1.5"

    mirror.decision_made(
        decision=Decision(
            model="digits", version=2, decision="approved", actor="bob", reason="ok", at=utc_now()
        )
    )
    assert sagemaker.describe_model_package(ModelPackageName=arn2)["ModelApprovalStatus"] == (
        "Approved"
    )
    assert sagemaker.describe_model_package(ModelPackageName=arn1)["ModelApprovalStatus"] == (
        "PendingManualApproval"
    )
    mirror.decision_made(
        decision=Decision(
            model="digits", version=2, decision="rejected", actor="bob", reason="", at=utc_now()
        )
    )
    assert sagemaker.describe_model_package(ModelPackageName=arn2)["ModelApprovalStatus"] == (
        "Rejected"
    )


def test_an_approval_made_in_studio_comes_back_as_a_decision(tmp_path: Path) -> None:
    registry = SqliteRegistry(path=tmp_path / "registry.db")
    registry.register_version(version=version(1))
    event = json.loads(EVENT.read_text())

    decision = apply_state_change(event=event, registry=registry, prefix=PREFIX, at=utc_now())
    assert decision is not None
    assert (decision.model, decision.version, decision.decision) == ("digits", 1, "approved")
    assert decision.actor == "reviewer (SageMaker)"
    assert registry.list_decisions(model="digits", version=1) == [decision]

    # The same status again (modelway's own update echoing back) records nothing new.
    assert apply_state_change(event=event, registry=registry, prefix=PREFIX, at=utc_now()) is None
    # Another environment's group, or a status that is no decision, is not ours to record.
    other = {**event, "detail": {**event["detail"], "ModelPackageGroupName": "x-digits"}}
    assert apply_state_change(event=other, registry=registry, prefix=PREFIX, at=utc_now()) is None
    pending = {
        **event,
        "detail": {**event["detail"], "ModelApprovalStatus": "PendingManualApproval"},
    }
    assert apply_state_change(event=pending, registry=registry, prefix=PREFIX, at=utc_now()) is None
    assert len(registry.list_decisions(model="digits")) == 1
    registry.close()


def test_locally_there_is_nothing_to_mirror() -> None:
    mirror = NoMirror()
    assert mirror.version_published(version=version(1), image_uri=IMAGE) is None


def test_backends_mirror_on_aws_and_not_locally(tmp_path: Path) -> None:
    from functions.core.backends import Backends
    from functions.core.settings import Settings

    aws = Backends(settings=Settings(env="prod", region="us-east-1", serving_image_uri=IMAGE))
    assert isinstance(aws.mirror, SageMakerMirror)
    assert aws.mirror.group_name("digits") == "modelway-prod-digits"
    local = Backends(settings=Settings(env="local", home=tmp_path))
    assert isinstance(local.mirror, NoMirror)
