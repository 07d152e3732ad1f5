"""Every production variant of a model's endpoint autoscales: an Application Auto Scaling
target with the settings' bounds and a target-tracking policy on invocations per instance,
kept in step with the variants publish and alias moves put on the endpoint (moto)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from functions.core.deploy import rollout
from functions.core.deploy.sagemaker import SageMakerDeployer
from functions.core.settings import Settings
from tests.deploy.sagemaker_testkit import (
    AUTOSCALING,
    ENDPOINT,
    IMAGE,
    PREFIX,
    REGION,
    ROLE,
    SageMaker,
    make_deployer,
)

DIMENSION = "sagemaker:variant:DesiredInstanceCount"
VARIANT_IDS = f"endpoint/{ENDPOINT}/variant/"


def targets() -> dict[str, tuple[int, int]]:
    """The endpoint's scalable targets: variant -> (min, max)."""
    client = boto3.client("application-autoscaling", region_name=REGION)
    found = client.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    return {
        t["ResourceId"].removeprefix(VARIANT_IDS): (t["MinCapacity"], t["MaxCapacity"])
        for t in found
        if t["ResourceId"].startswith(VARIANT_IDS) and t["ScalableDimension"] == DIMENSION
    }


def policies() -> dict[str, dict[str, Any]]:
    """The endpoint's scaling policies: variant -> policy."""
    client = boto3.client("application-autoscaling", region_name=REGION)
    found = client.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    return {
        p["ResourceId"].removeprefix(VARIANT_IDS): p
        for p in found
        if p["ResourceId"].startswith(VARIANT_IDS) and p["ScalableDimension"] == DIMENSION
    }


def assert_tracks(policy: dict[str, Any], *, target: float, scale_in: int, scale_out: int) -> None:
    assert policy["PolicyType"] == "TargetTrackingScaling"
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert config["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert config["TargetValue"] == target
    assert (config["ScaleInCooldown"], config["ScaleOutCooldown"]) == (scale_in, scale_out)


def index_of(sagemaker: SageMaker, op: str, **params: Any) -> int:
    """Where the last call ``op`` with ``params`` sits on the recorded timeline."""
    matches = [
        i
        for i, (name, sent) in enumerate(sagemaker.calls)
        if name == op and all(sent.get(k) == v for k, v in params.items())
    ]
    assert matches, f"no {op} {params}"
    return matches[-1]


def move(registry: Any, deployer: Any, version: int, **options: Any) -> Any:
    return rollout.set_alias(
        registry=registry,
        deployer=deployer,
        model="digits",
        alias=options.pop("alias", "default"),
        version=version,
        actor="tester",
        **options,
    )


def test_every_variant_gets_a_target_and_a_target_tracking_policy(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    publish(b"model two", alias=None)
    sagemaker.finish_update()
    move(aws_registry, make_deployer(sagemaker), 1, canary_version=2, canary_weight=10)

    assert set(sagemaker.variants()) == {"v1", "v2"}
    bounds = (AUTOSCALING["min_capacity"], AUTOSCALING["max_capacity"])
    assert targets() == {"v1": bounds, "v2": bounds}
    found = policies()
    assert set(found) == {"v1", "v2"}
    for policy in found.values():
        assert_tracks(
            policy,
            target=float(AUTOSCALING["target_invocations_per_instance"]),
            scale_in=AUTOSCALING["scale_in_cooldown_seconds"],
            scale_out=AUTOSCALING["scale_out_cooldown_seconds"],
        )


def test_a_new_variant_is_registered_once_the_endpoint_is_in_service(
    publish: Any, sagemaker: SageMaker
) -> None:
    deployer = make_deployer(sagemaker)
    publish(b"model one")
    publish(b"model two", alias=None)
    # The update that adds v2 has only started (as far as a Lambda can tell): no target yet.
    assert set(targets()) == {"v1"}
    assert sagemaker.status() == "Updating"
    assert deployer.ensure_autoscaling(model="digits") is False
    assert set(targets()) == {"v1"}
    sagemaker.finish_update()
    deployer.wait(model="digits")  # what the CLI does after a move
    assert set(targets()) == {"v1", "v2"}
    assert set(policies()) == {"v1", "v2"}


def test_the_router_registers_new_variants_at_its_next_move(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    publish(b"model two", alias=None)
    assert set(targets()) == {"v1"}
    sagemaker.finish_update()
    move(aws_registry, make_deployer(sagemaker), 2)  # no wait, as in the router
    assert set(targets()) == {"v1", "v2"}
    assert set(policies()) == {"v1", "v2"}


def test_a_dropped_variant_is_deregistered_before_the_endpoint_update(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    deployer = make_deployer(sagemaker)
    publish(b"model one")
    publish(b"model two", alias=None)
    sagemaker.finish_update()
    move(aws_registry, deployer, 2)
    publish(b"model three", alias=None)
    sagemaker.finish_update()
    assert set(targets()) == {"v1", "v2"}

    # default: 2 -> 3. v1 is neither a target, a rollback target nor the newest: dropped.
    move(aws_registry, deployer, 3)
    sagemaker.finish_update()
    assert set(sagemaker.variants()) == {"v2", "v3"}
    assert set(targets()) == {"v2", "v3"}
    assert set(policies()) == {"v2", "v3"}
    v1 = f"{VARIANT_IDS}v1"
    update = index_of(sagemaker, "UpdateEndpoint")
    assert index_of(sagemaker, "DeleteScalingPolicy", ResourceId=v1) < update
    assert index_of(sagemaker, "DeregisterScalableTarget", ResourceId=v1) < update
    # Kept variants stay registered through the update (a model change is allowed).
    assert not any(
        name == "DeregisterScalableTarget" and params["ResourceId"] != v1
        for name, params in sagemaker.calls
    )


def test_an_instance_type_change_deregisters_the_variant_until_the_update_is_done(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    bigger = make_deployer(sagemaker, instance_type="ml.g4dn.2xlarge")
    sagemaker.finish_updates_when_waited = True  # the CLI waits for the update to end
    move(aws_registry, bigger, 1, alias="prod", wait=True)

    v1 = f"{VARIANT_IDS}v1"
    update = index_of(sagemaker, "UpdateEndpoint")
    assert "DeploymentConfig" in sagemaker.calls[update][1]  # the guarded blue/green
    assert index_of(sagemaker, "DeregisterScalableTarget", ResourceId=v1) < update
    assert index_of(sagemaker, "RegisterScalableTarget", ResourceId=v1) > update
    assert targets() == {"v1": (AUTOSCALING["min_capacity"], AUTOSCALING["max_capacity"])}
    assert set(policies()) == {"v1"}


def test_updates_keep_the_instance_count_the_autoscaler_reached(
    publish: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    publish(b"model two", alias=None)
    update = sagemaker.last("UpdateEndpoint")
    # Instance counts are retained; weights come from the new configuration (the plan).
    assert update["RetainAllVariantProperties"] is True
    assert {"VariantPropertyType": "DesiredWeight"} in update["ExcludeRetainedVariantProperties"]
    assert {"VariantPropertyType": "DesiredInstanceCount"} not in update[
        "ExcludeRetainedVariantProperties"
    ]

    sagemaker.finish_update()
    publish(b"model three", alias=None, deployer=make_deployer(sagemaker, autoscaling=None))
    assert "RetainAllVariantProperties" not in sagemaker.last("UpdateEndpoint")


def test_changed_settings_update_bounds_and_policies_and_unchanged_ones_write_nothing(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    writes = ("RegisterScalableTarget", "PutScalingPolicy", "DeregisterScalableTarget")
    before = [name for name in sagemaker.names() if name in writes]
    move(aws_registry, make_deployer(sagemaker), 1, alias="prod")
    assert [name for name in sagemaker.names() if name in writes] == before

    bigger = {
        "min_capacity": 2,
        "max_capacity": 6,
        "target_invocations_per_instance": 50,
        "scale_in_cooldown_seconds": 300,
        "scale_out_cooldown_seconds": 60,
    }
    move(aws_registry, make_deployer(sagemaker, autoscaling=bigger), 1, alias="prod")
    assert targets() == {"v1": (2, 6)}
    assert_tracks(policies()["v1"], target=50.0, scale_in=300, scale_out=60)


def test_the_deployer_from_settings_scales_with_the_stack_settings(
    publish: Any, mocked: None
) -> None:
    settings = Settings(
        env="test",
        region=REGION,
        endpoint_prefix=PREFIX,
        sagemaker_role_arn=ROLE,
        serving_image_uri=IMAGE,
        instance_type="ml.g4dn.xlarge",  # moto's list of instance types predates ml.g5
        min_instance_count=2,
        max_instance_count=3,
        target_invocations_per_instance=250,
        scale_in_cooldown_seconds=900,
        scale_out_cooldown_seconds=30,
    )
    # Its sagemaker and application-autoscaling clients are built on first use, under moto.
    publish(b"model one", deployer=SageMakerDeployer.from_settings(settings))
    assert targets() == {"v1": (2, 3)}
    assert_tracks(policies()["v1"], target=250.0, scale_in=900, scale_out=30)


def test_bounds_that_cannot_hold_are_refused() -> None:
    with pytest.raises(ValueError, match="min_instance_count"):
        SageMakerDeployer.from_settings(
            Settings(env="test", min_instance_count=3, max_instance_count=2)
        )
