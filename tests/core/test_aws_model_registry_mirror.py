"""The SageMaker Model Registry mirror under moto: publish -> package group and package;
a decision -> ModelApprovalStatus; an approval made in Studio (the EventBridge event) -> a
decision in modelway's registry. boto3's parameter validation checks every call's shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.core.aws_clients import LazyClient
from functions.core.clock import utc_now
from functions.core.mirror import (
    NoMirror,
    SageMakerMirror,
    apply_state_change,
    sync_after_write,
)
from functions.core.registry.base import Decision, ModelVersion
from functions.core.registry.sqlite import SqliteRegistry
from tests.events import sample_event

PREFIX = "modelway-prod"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/modelway-serving:latest"
EVENT = "sagemaker-model-package-approved.json"


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
            "metrics": {"test_accuracy": 0.972222, "top-1 (%)": 97.2},
            "latency_ms": {"p50_batch1": 1.5},
        },
        created_at=utc_now(),
        created_by="alice",
        endpoint_name="modelway-prod-digits",
        variant_name=f"v{number}",
    )


def test_the_fixtures_manifest_sections_are_the_manifests_own() -> None:
    """The mirror reads these sections by name: they must be the real manifest's fields."""
    from functions.core.manifest import Manifest

    assert set(version(1).manifest) <= set(Manifest.model_fields)


def make_mirror() -> SageMakerMirror:
    return SageMakerMirror(
        sagemaker=LazyClient("sagemaker", region="us-east-1"), prefix=PREFIX, image_uri=IMAGE
    )


def decide(registry: SqliteRegistry, number: int, decision: str, reason: str = "") -> None:
    registry.record_decision(
        decision=Decision(
            model="digits",
            version=number,
            decision=decision,
            actor="bob",
            reason=reason,
            at=utc_now(),
        )
    )


def test_publish_then_decide_mirrors_into_the_model_registry(
    sagemaker: Any, tmp_path: Path
) -> None:
    registry = SqliteRegistry(path=tmp_path / "registry.db")
    for number in (1, 2):
        registry.register_version(version=version(number))
    mirror = make_mirror()
    arn1 = mirror.sync(registry=registry, model="digits", version=1)
    arn2 = mirror.sync(registry=registry, model="digits", version=2)
    # Syncing again (a resumed publish) finds the package, not a second one.
    assert mirror.sync(registry=registry, model="digits", version=2) == arn2

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
    # What modelway publish / build put in the manifest (its own field names).
    assert meta["modelway:metric_test_accuracy"] == "0.972222"
    assert meta["modelway:metric_top-1 ___"] == "97.2"
    assert meta["modelway:latency_ms_p50_batch1"] == "1.5"

    decide(registry, 2, "approved", "ok")
    mirror.sync(registry=registry, model="digits", version=2)
    described = sagemaker.describe_model_package(ModelPackageName=arn2)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "bob: ok"
    assert sagemaker.describe_model_package(ModelPackageName=arn1)["ModelApprovalStatus"] == (
        "PendingManualApproval"
    )
    decide(registry, 2, "rejected")
    mirror.sync(registry=registry, model="digits", version=2)
    assert sagemaker.describe_model_package(ModelPackageName=arn2)["ModelApprovalStatus"] == (
        "Rejected"
    )
    registry.close()


def test_a_version_decided_before_its_package_existed_is_created_with_its_status(
    sagemaker: Any, tmp_path: Path
) -> None:
    """The package of a version whose publish-time mirror write failed (or that predates
    the mirror) is created by the next sync, already carrying modelway's decision."""
    registry = SqliteRegistry(path=tmp_path / "registry.db")
    registry.register_version(version=version(1))
    decide(registry, 1, "approved")
    arn = make_mirror().sync(registry=registry, model="digits", version=1)
    assert arn is not None
    assert sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == (
        "Approved"
    )
    registry.close()


def test_a_status_set_in_studio_is_not_overwritten_by_a_version_modelway_never_decided(
    sagemaker: Any, tmp_path: Path
) -> None:
    registry = SqliteRegistry(path=tmp_path / "registry.db")
    registry.register_version(version=version(1))
    mirror = make_mirror()
    arn = mirror.sync(registry=registry, model="digits", version=1)
    sagemaker.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={"modelway:version": "1"},
    )
    # Its event has not come back yet: a re-run publish must not undo the approval.
    assert mirror.sync(registry=registry, model="digits", version=1) == arn
    assert sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == (
        "Approved"
    )
    registry.close()


def test_an_approval_made_in_studio_comes_back_as_a_decision(tmp_path: Path) -> None:
    registry = SqliteRegistry(path=tmp_path / "registry.db")
    registry.register_version(version=version(1))
    event = sample_event(EVENT)

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


def test_a_late_echo_of_modelways_own_approval_does_not_undo_a_later_rejection(
    sagemaker: Any, tmp_path: Path
) -> None:
    """approve then reject in modelway: both written to the package, and both come back as
    events, in any order. The approval's echo arriving last is not a new approval; an
    approval made in Studio afterwards (its own description) is."""
    registry = SqliteRegistry(path=tmp_path / "registry.db")
    registry.register_version(version=version(1))
    mirror = make_mirror()
    arn = mirror.sync(registry=registry, model="digits", version=1)
    decide(registry, 1, "approved", "ok")
    mirror.sync(registry=registry, model="digits", version=1)
    # What SageMaker puts in the approval's event: the package as modelway's update left it.
    echo = sample_event(EVENT)
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    echo["detail"].update(
        ModelPackageGroupName="modelway-prod-digits",
        ModelApprovalStatus=package["ModelApprovalStatus"],
        ApprovalDescription=package["ApprovalDescription"],
        CustomerMetadataProperties=package["CustomerMetadataProperties"],
    )
    assert echo["detail"]["ModelApprovalStatus"] == "Approved"
    decide(registry, 1, "rejected", "drift")
    mirror.sync(registry=registry, model="digits", version=1)

    assert apply_state_change(event=echo, registry=registry, prefix=PREFIX, at=utc_now()) is None
    assert [d.decision for d in registry.list_decisions(model="digits", version=1)] == [
        "approved",
        "rejected",
    ]

    studio = {**echo, "detail": {**echo["detail"], "ApprovalDescription": "drift was a bug"}}
    decision = apply_state_change(event=studio, registry=registry, prefix=PREFIX, at=utc_now())
    assert decision is not None
    assert (decision.decision, decision.reason) == ("approved", "drift was a bug")
    registry.close()


def test_locally_there_is_nothing_to_mirror(tmp_path: Path) -> None:
    registry = SqliteRegistry(path=tmp_path / "registry.db")
    registry.register_version(version=version(1))
    result = sync_after_write(mirror=NoMirror(), registry=registry, model="digits", version=1)
    assert result.status == "off"
    registry.close()


def test_backends_mirror_on_aws_and_not_locally(tmp_path: Path) -> None:
    from functions.core.backends import Backends
    from functions.core.settings import Settings

    aws = Backends(settings=Settings(env="prod", region="us-east-1", serving_image_uri=IMAGE))
    assert isinstance(aws.mirror, SageMakerMirror)
    assert aws.mirror.group_name("digits") == "modelway-prod-digits"
    local = Backends(settings=Settings(env="local", home=tmp_path))
    assert isinstance(local.mirror, NoMirror)


def test_every_mirror_call_fits_sagemakers_service_model(aws_env: None, tmp_path: Path) -> None:
    """botocore's Stubber: each call's parameters are validated against SageMaker's service
    model (as every real call is) and must be exactly these; the stubbed answers are
    validated against the model's output shapes."""
    from botocore.stub import Stubber

    registry = SqliteRegistry(path=tmp_path / "registry.db")
    registry.register_version(version=version(1))
    decide(registry, 1, "approved", "ok")
    client = boto3.client("sagemaker", region_name="us-east-1")
    mirror = SageMakerMirror(
        sagemaker=LazyClient("sagemaker", region="us-east-1", client=client),
        prefix=PREFIX,
        image_uri=IMAGE,
    )
    group = "modelway-prod-digits"
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/1"
    meta = {"modelway:version": "1"}
    with Stubber(client) as stub:
        # First sync: no package yet -> group and package, created approved.
        stub.add_response(
            "list_model_packages", {"ModelPackageSummaryList": []}, {"ModelPackageGroupName": group}
        )
        stub.add_response(
            "create_model_package_group",
            {
                "ModelPackageGroupArn": arn.replace(
                    f"model-package/{group}/1", f"model-package-group/{group}"
                )
            },
            {
                "ModelPackageGroupName": group,
                "ModelPackageGroupDescription": "modelway model digits",
            },
        )
        stub.add_response(
            "create_model_package",
            {"ModelPackageArn": arn},
            {
                "ModelPackageGroupName": group,
                "ModelPackageDescription": "modelway digits version 1",
                "ModelApprovalStatus": "Approved",
                "InferenceSpecification": {
                    "Containers": [{"Image": IMAGE, "ModelDataUrl": version(1).artifact_uri}],
                    "SupportedContentTypes": ["application/json", "application/octet-stream"],
                    "SupportedResponseMIMETypes": ["application/json", "application/octet-stream"],
                },
                "CustomerMetadataProperties": {
                    "modelway:version": "1",
                    "modelway:sha256": version(1).sha256,
                    "modelway:published_by": "alice",
                    "modelway:parity_passed": "True",
                    "modelway:parity_max_abs_diff": "1e-06",
                    "modelway:parity_samples": "8",
                    "modelway:metric_test_accuracy": "0.972222",
                    "modelway:metric_top-1 ___": "97.2",
                    "modelway:latency_ms_p50_batch1": "1.5",
                },
            },
        )
        assert mirror.sync(registry=registry, model="digits", version=1) == arn
        # After a rejection: found by its version tag, its status updated.
        decide(registry, 1, "rejected", "drift")
        stub.add_response(
            "list_model_packages",
            {
                # Only the package whose description names version 1 is described.
                "ModelPackageSummaryList": [
                    {
                        "ModelPackageArn": arn,
                        "ModelPackageGroupName": group,
                        "ModelPackageVersion": 1,
                        "ModelPackageDescription": "modelway digits version 1",
                        "CreationTime": "2026-12-03T10:00:00Z",
                        "ModelPackageStatus": "Completed",
                        "ModelApprovalStatus": "Approved",
                    },
                    {
                        "ModelPackageArn": arn[:-1] + "2",
                        "ModelPackageGroupName": group,
                        "ModelPackageVersion": 2,
                        "ModelPackageDescription": "modelway digits version 2",
                        "CreationTime": "2026-12-03T11:00:00Z",
                        "ModelPackageStatus": "Completed",
                        "ModelApprovalStatus": "PendingManualApproval",
                    },
                ]
            },
            {"ModelPackageGroupName": group},
        )
        stub.add_response(
            "describe_model_package",
            {
                "ModelPackageName": group,
                "ModelPackageArn": arn,
                "CreationTime": "2026-12-03T10:00:00Z",
                "ModelPackageStatus": "Completed",
                "ModelPackageStatusDetails": {"ValidationStatuses": []},
                "ModelApprovalStatus": "Approved",
                "CustomerMetadataProperties": meta,
            },
            {"ModelPackageName": arn},
        )
        stub.add_response(
            "update_model_package",
            {"ModelPackageArn": arn},
            {
                "ModelPackageArn": arn,
                "ModelApprovalStatus": "Rejected",
                "ApprovalDescription": "bob: drift",
                "CustomerMetadataProperties": meta,
            },
        )
        assert mirror.sync(registry=registry, model="digits", version=1) == arn
        stub.assert_no_pending_responses()
    registry.close()
