"""On AWS, publishing makes a version servable and alias moves reshape the model's endpoint.

The ``sagemaker`` fixture (``sagemaker_testkit.SageMaker``) is moto's SageMaker with the
``UpdateEndpoint`` moto lacks played from the captured call's parameters (the deployment
guardrails live there).
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from functions.core.deploy import rollout
from functions.core.registry.base import PendingMove
from functions.core.registry.exceptions import VersionRetired
from functions.core.settings import Settings
from tests.deploy.sagemaker_testkit import (
    ALARM,
    ENDPOINT,
    IMAGE,
    PREFIX,
    REGION,
    ROLE,
    ROLLBACK_5XX,
    TOPIC,
    SageMaker,
    make_deployer,
)


def test_publishing_creates_the_model_and_the_endpoint(
    publish: Any, sagemaker: SageMaker, bucket: str
) -> None:
    result = publish(b"model one")
    assert result.version.artifact_uri == f"s3://{bucket}/artifacts/digits/1/model.tar.gz"
    model = sagemaker.client.describe_model(ModelName=f"{PREFIX}-digits-v1")
    assert model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == result.version.artifact_uri
    assert model["PrimaryContainer"]["Environment"]["MODELWAY_MODEL_VERSION"] == "1"
    ((name, (model_name, weight)),) = sagemaker.variants().items()
    assert (name, model_name) == ("v1", f"{PREFIX}-digits-v1")
    assert weight > 0
    config = sagemaker.last("CreateEndpointConfig")
    assert config["EndpointConfigName"].startswith(f"{ENDPOINT}-")
    (variant,) = config["ProductionVariants"]
    assert variant["InstanceType"] == "ml.g4dn.xlarge"
    assert variant["InitialInstanceCount"] == 1


def test_a_new_version_joins_the_endpoint_before_any_alias_moves(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    publish(b"model two", alias=None)
    assert aws_registry.get_alias(model="digits", alias="default").version == 1
    assert sagemaker.status() == "Updating"  # SageMaker's blue/green takes minutes
    sagemaker.finish_update()
    # v2 is servable pinned, and takes none of the traffic that names no variant.
    assert sagemaker.variants() == {
        "v1": (f"{PREFIX}-digits-v1", 100.0),
        "v2": (f"{PREFIX}-digits-v2", 0.0),
    }
    update = sagemaker.last("UpdateEndpoint")
    # A variant set change cannot use guardrails (SageMaker wants the same variant names):
    # it is SageMaker's plain blue/green.
    assert "DeploymentConfig" not in update


def test_canary_split_and_rollback_reweight_without_a_new_fleet(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    publish(b"model two", alias=None)
    sagemaker.finish_update()
    deployer = make_deployer(sagemaker)
    updates = sagemaker.names().count("UpdateEndpoint")
    reweights = sagemaker.names().count("UpdateEndpointWeightsAndCapacities")

    rollout.set_alias(
        registry=aws_registry,
        deployer=deployer,
        model="digits",
        alias="default",
        version=1,
        canary_version=2,
        canary_weight=10,
        actor="tester",
    )
    assert {name: weight for name, (_, weight) in sagemaker.variants().items()} == {
        "v1": 90.0,
        "v2": 10.0,
    }
    rollout.set_alias(
        registry=aws_registry,
        deployer=deployer,
        model="digits",
        alias="default",
        version=2,
        actor="t",
    )
    assert {name: weight for name, (_, weight) in sagemaker.variants().items()} == {
        "v1": 0.0,
        "v2": 100.0,
    }
    alias = rollout.rollback_alias(
        registry=aws_registry, deployer=deployer, model="digits", alias="default", actor="t"
    )
    assert (alias.version, alias.canary_version, alias.canary_weight) == (1, 2, 10)
    assert {name: weight for name, (_, weight) in sagemaker.variants().items()} == {
        "v1": 90.0,
        "v2": 10.0,
    }
    # Every move above was a weight change on the running fleet: no UpdateEndpoint.
    assert sagemaker.names().count("UpdateEndpoint") == updates
    assert sagemaker.names().count("UpdateEndpointWeightsAndCapacities") == reweights + 3


def test_a_fleet_change_with_the_same_variants_uses_deployment_guardrails(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    bigger = make_deployer(
        sagemaker, instance_type="ml.g4dn.2xlarge", traffic_routing="CANARY", canary_percent=20
    )
    rollout.set_alias(
        registry=aws_registry, deployer=bigger, model="digits", alias="prod", version=1, actor="t"
    )
    update = sagemaker.last("UpdateEndpoint")
    policy = update["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"]["Type"] == "CANARY"
    assert policy["TrafficRoutingConfiguration"]["CanarySize"] == {
        "Type": "CAPACITY_PERCENT",
        "Value": 20,
    }
    assert policy["TerminationWaitInSeconds"] == 300
    assert policy["MaximumExecutionTimeoutInSeconds"] >= 600
    # The model's own alarm (issue 10: one stage-wide 5xx count let any caller roll back
    # any model's update), created before the update, and the configured extra one.
    own = f"{PREFIX}-digits-rollback"
    assert update["DeploymentConfig"]["AutoRollbackConfiguration"] == {
        "Alarms": [{"AlarmName": own}, {"AlarmName": ALARM}]
    }
    names = sagemaker.names()
    assert names.index("PutMetricAlarm") < names.index("UpdateEndpoint")
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[own])["MetricAlarms"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("modelway", "ModelErrors")
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
        "service": "modelway-api",
        "model": "digits",
    }
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Sum", 60, ROLLBACK_5XX)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [TOPIC]
    config = sagemaker.client.describe_endpoint_config(
        EndpointConfigName=update["EndpointConfigName"]
    )
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.g4dn.2xlarge"


def test_an_endpoint_mid_update_defers_the_move_and_nothing_moves_yet(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    """A move while the endpoint is changing starts nothing on SageMaker (it would refuse)
    and records no move: it is pending until its target serves (see
    test_aws_publish_during_update.py for its completion)."""
    publish(b"model one")
    publish(b"model two", alias=None)
    publish(b"model three", alias=None)
    sagemaker.set_status("Updating")
    before = sagemaker.names().count("UpdateEndpoint")
    outcome = rollout.set_alias(
        registry=aws_registry,
        deployer=make_deployer(sagemaker, instance_count=2),
        model="digits",
        alias="default",
        version=3,
        actor="t",
    )
    assert isinstance(outcome, PendingMove)
    assert sagemaker.names().count("UpdateEndpoint") == before
    assert aws_registry.get_alias(model="digits", alias="default").version == 1


def test_publishing_while_the_endpoint_updates_still_registers_and_deploys_the_model(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    sagemaker.set_status("Updating")
    result = publish(b"model two", alias=None)
    assert result.created
    sagemaker.client.describe_model(ModelName=f"{PREFIX}-digits-v2")
    assert set(sagemaker.variants()) == {"v1"}  # the endpoint change waits for the next move


def test_a_retired_target_is_refused_before_sagemaker_is_touched(
    publish: Any, aws_registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    publish(b"model two", alias=None)
    aws_registry.retire_version(model="digits", version=2, actor="t")
    before = len(sagemaker.calls)
    with pytest.raises(VersionRetired):
        rollout.set_alias(
            registry=aws_registry,
            deployer=make_deployer(sagemaker),
            model="digits",
            alias="default",
            version=2,
            actor="t",
        )
    assert len(sagemaker.calls) == before


def test_names_fit_sagemaker_limits() -> None:
    from functions.core.deploy.sagemaker import SageMakerDeployer

    deployer = SageMakerDeployer(
        prefix="modelway-production-eu",
        role_arn=ROLE,
        image_uri=IMAGE,
        instance_type="ml.g4dn.xlarge",
        instance_count=1,
    )
    long_model = "m" * 40
    names = {deployer.model_name(model=long_model, version=n) for n in range(1, 50)}
    assert len(names) == 49
    assert all(len(n) <= 63 and not n.endswith("-") for n in names)
    assert deployer.model_name(model="digits", version=3) == "modelway-production-eu-digits-v3"


def test_backends_deploy_only_on_aws() -> None:
    from functions.core.backends import make_deployer as factory
    from functions.core.deploy.sagemaker import SageMakerDeployer

    assert factory(Settings(env="local")) is None
    assert factory(Settings(env="dev", sagemaker_deploy=False)) is None
    assert isinstance(factory(Settings(env="dev")), SageMakerDeployer)


def test_a_first_publish_sets_default_while_the_endpoint_is_still_creating(
    publish: Any, aws_registry: Any, sagemaker: SageMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real endpoint stays Creating for minutes after CreateEndpoint: the ``default`` alias
    of a first publish names the variant that endpoint is being created with, so it moves."""
    create = sagemaker.client.create_endpoint

    def create_then_creating(**params: Any) -> Any:
        answer = create(**params)
        sagemaker.set_status("Creating")
        return answer

    monkeypatch.setattr(sagemaker.client, "create_endpoint", create_then_creating)
    result = publish(b"model one")
    assert [a.alias for a in result.aliases] == ["default"]
    assert aws_registry.get_alias(model="digits", alias="default").version == 1
    # A move the creating endpoint does not already carry still has to wait.
    publish(b"model two", alias=None)
    outcome = rollout.set_alias(
        registry=aws_registry,
        deployer=make_deployer(sagemaker),
        model="digits",
        alias="default",
        version=2,
        actor="t",
    )
    assert isinstance(outcome, PendingMove)
    assert aws_registry.get_alias(model="digits", alias="default").version == 1
