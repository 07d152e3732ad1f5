"""On AWS, publishing makes a version servable and alias moves reshape the model's endpoint.

moto keeps SageMaker models, endpoint configurations and endpoints, but has no
``UpdateEndpoint``: the ``sagemaker`` fixture captures that call's parameters (the
deployment guardrails live there) and applies it to moto's endpoint as SageMaker would once
the update finishes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from functions.core import publishing
from functions.core.deploy import rollout
from functions.core.errors import Conflict
from functions.core.registry.exceptions import VersionRetired
from functions.core.settings import Settings

REGION = "us-east-1"
PREFIX = "modelway-test"
ROLE = "arn:aws:iam::123456789012:role/modelway-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/modelway-serving:1"
ALARM = "modelway-test-digits-5xx"
ENDPOINT = f"{PREFIX}-digits"


class SageMaker:
    """A moto-backed sagemaker client that records every call, and plays UpdateEndpoint."""

    def __init__(self) -> None:
        self.client = boto3.client("sagemaker", region_name=REGION)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        events = self.client.meta.events
        events.register("before-parameter-build.sagemaker.*", self._record)
        # A before-call handler that returns a response stands in for the HTTP call.
        events.register("before-call.sagemaker.UpdateEndpoint", self._update_endpoint)  # type: ignore[arg-type]

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, dict(params)))

    def _update_endpoint(self, model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sagemaker.models import sagemaker_backends

        params = self.last("UpdateEndpoint")
        backend = sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION]
        endpoint = backend.endpoints[params["EndpointName"]]
        config = backend.endpoint_configs[params["EndpointConfigName"]]
        endpoint.endpoint_config_name = config.endpoint_config_name
        endpoint.production_variants = endpoint._process_production_variants(
            config.production_variants
        )
        return AWSResponse("https://sagemaker", 200, HTTPHeaders(), None), {
            "EndpointArn": endpoint.arn
        }

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def last(self, name: str) -> dict[str, Any]:
        return next(params for op, params in reversed(self.calls) if op == name)

    def set_status(self, status: str) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sagemaker.models import sagemaker_backends

        sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION].endpoints[ENDPOINT].endpoint_status = status

    def variants(self) -> dict[str, tuple[str, float]]:
        """The endpoint's live variants: name -> (model name, weight)."""
        endpoint = self.client.describe_endpoint(EndpointName=ENDPOINT)
        config = self.client.describe_endpoint_config(
            EndpointConfigName=endpoint["EndpointConfigName"]
        )
        models = {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}
        return {
            v["VariantName"]: (models[v["VariantName"]], float(v.get("CurrentWeight", 0.0)))
            for v in endpoint["ProductionVariants"]
        }


@pytest.fixture
def sagemaker(mocked: None) -> SageMaker:
    return SageMaker()


def make_deployer(sagemaker: SageMaker, **overrides: Any) -> Any:
    from functions.core.deploy.sagemaker import SageMakerDeployer

    options: dict[str, Any] = {
        "prefix": PREFIX,
        "role_arn": ROLE,
        "image_uri": IMAGE,
        "instance_type": "ml.g4dn.xlarge",
        "instance_count": 1,
        "alarm_names": (ALARM,),
        "region": REGION,
        "client": sagemaker.client,
    }
    options.update(overrides)
    return SageMakerDeployer(**options)


@pytest.fixture
def publish(
    registry: Any, store: Any, sagemaker: SageMaker, make_artifact: Any
) -> Callable[..., Any]:
    settings = Settings(env="test", endpoint_prefix=PREFIX)
    deployer = make_deployer(sagemaker)

    def run(payload: bytes, *, alias: str | None = "default") -> Any:
        return publishing.publish_artifact(
            path=make_artifact(payload=payload),
            registry=registry,
            store=store,
            settings=settings,
            actor="tester",
            alias=alias,
            verify=publishing.check_artifact,
            deployer=deployer,
        )

    return run


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
    publish: Any, registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    publish(b"model two", alias=None)
    assert registry.get_alias(model="digits", alias="default").version == 1
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
    publish: Any, registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    publish(b"model two", alias=None)
    deployer = make_deployer(sagemaker)
    updates = sagemaker.names().count("UpdateEndpoint")
    reweights = sagemaker.names().count("UpdateEndpointWeightsAndCapacities")

    rollout.set_alias(
        registry=registry,
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
        registry=registry, deployer=deployer, model="digits", alias="default", version=2, actor="t"
    )
    assert {name: weight for name, (_, weight) in sagemaker.variants().items()} == {
        "v1": 0.0,
        "v2": 100.0,
    }
    alias = rollout.rollback_alias(
        registry=registry, deployer=deployer, model="digits", alias="default", actor="t"
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
    publish: Any, registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    bigger = make_deployer(
        sagemaker, instance_type="ml.g4dn.2xlarge", traffic_routing="CANARY", canary_percent=20
    )
    rollout.set_alias(
        registry=registry, deployer=bigger, model="digits", alias="prod", version=1, actor="t"
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
    assert update["DeploymentConfig"]["AutoRollbackConfiguration"] == {
        "Alarms": [{"AlarmName": ALARM}]
    }
    config = sagemaker.client.describe_endpoint_config(
        EndpointConfigName=update["EndpointConfigName"]
    )
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.g4dn.2xlarge"


def test_an_endpoint_mid_update_refuses_the_move_and_nothing_moves(
    publish: Any, registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    publish(b"model two", alias=None)
    publish(b"model three", alias=None)
    sagemaker.set_status("Updating")
    with pytest.raises(Conflict) as caught:
        rollout.set_alias(
            registry=registry,
            deployer=make_deployer(sagemaker, instance_count=2),
            model="digits",
            alias="default",
            version=3,
            actor="t",
        )
    assert caught.value.code == "endpoint_busy"
    assert caught.value.retry_after
    assert registry.get_alias(model="digits", alias="default").version == 1


def test_publishing_while_the_endpoint_updates_still_registers_and_deploys_the_model(
    publish: Any, registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    sagemaker.set_status("Updating")
    result = publish(b"model two", alias=None)
    assert result.created
    sagemaker.client.describe_model(ModelName=f"{PREFIX}-digits-v2")
    assert set(sagemaker.variants()) == {"v1"}  # the endpoint change waits for the next move


def test_a_retired_target_is_refused_before_sagemaker_is_touched(
    publish: Any, registry: Any, sagemaker: SageMaker
) -> None:
    publish(b"model one")
    publish(b"model two", alias=None)
    registry.retire_version(model="digits", version=2, actor="t")
    before = len(sagemaker.calls)
    with pytest.raises(VersionRetired):
        rollout.set_alias(
            registry=registry,
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
