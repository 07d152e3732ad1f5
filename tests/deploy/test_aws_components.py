"""``components`` hosting: one fleet endpoint per model, an inference component per version,
versions no alias points at scaled to zero, and the endpoint-events function reconciling on
its schedule. SageMaker's inference components and their autoscaling are played by
``components_testkit.Components`` (moto has neither); every request is validated by botocore
against the service models, and every call is checked by the IAM proof against the
synthesized template's roles."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from functions.core.deploy import rollout
from functions.core.registry.base import PendingMove
from tests.deploy.components_testkit import Components, make_component_deployer
from tests.deploy.sagemaker_testkit import ENDPOINT, PREFIX, REGION, ROLE, SageMaker
from tests.deploy.test_aws_endpoint_events import Context
from tests.events import sample_event
from tests.iam_proof.capture import acting_as

V1, V2, V3 = (f"{ENDPOINT}-v{n}" for n in (1, 2, 3))
HIGH_RESOLUTION = "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution"


@pytest.fixture
def components(sagemaker: SageMaker) -> Components:
    return Components(sagemaker)


@pytest.fixture
def deployer(components: Components) -> Any:
    return make_component_deployer(components)


@pytest.fixture
def events(aws_registry: Any, deployer: Any, swap_backends: Any) -> Any:
    """The endpoint-events handler with this environment's backends: ``events("tick")`` is
    the stack's schedule, ``events("in_service")`` SageMaker's event for the endpoint."""
    from functions.core.settings import Settings
    from functions.endpoint_events import handler as module

    settings = Settings(env="test", endpoint_prefix=PREFIX, region=REGION, hosting="components")
    swap_backends(settings=settings, registry=aws_registry, deployer=deployer)

    def send(kind: str) -> dict[str, Any]:
        if kind == "tick":
            event = sample_event("eventbridge-scheduled.json")
        else:
            event = sample_event("sagemaker-endpoint-in-service.json")
            event["detail"]["EndpointName"] = ENDPOINT
        result: dict[str, Any] = module.handler(event, Context())
        return result

    return send


def move(registry: Any, deployer: Any, version: int, *, wait: bool = False) -> Any:
    """``default`` to ``version``, as the router (or, with ``wait``, the CLI) moves it."""
    with acting_as("functions.api.handler.handler"):
        return rollout.set_alias(
            registry=registry,
            deployer=deployer,
            model="digits",
            alias="default",
            version=version,
            actor="admin",
            wait=wait,
        )


def default_version(registry: Any) -> int:
    return int(registry.get_alias(model="digits", alias="default").version)


def served(publish: Any, components: Components, events: Any, deployer: Any) -> None:
    """v1 published with ``default``, its fleet and component up, the alias moved."""
    publish(b"model one", deployer=deployer)
    components.finish_endpoint(ENDPOINT)
    events("in_service")
    components.finish_components()
    events("tick")


def cold_v2(publish: Any, components: Components, events: Any, deployer: Any) -> None:
    """v2 published without an alias, its component up at zero copies."""
    with acting_as("functions.api.handler.handler"):
        publish(b"model two", alias=None, deployer=deployer)
    components.finish_components()
    events("tick")


def test_a_first_publish_creates_one_fleet_endpoint_whose_variant_holds_no_model(
    publish: Any, components: Components, deployer: Any, aws_registry: Any
) -> None:
    publish(b"model one", deployer=deployer)

    ((name, config),) = components.configs.items()
    assert config["ExecutionRoleArn"] == ROLE
    (fleet,) = config["ProductionVariants"]
    assert "ModelName" not in fleet
    assert fleet["VariantName"] == "fleet"
    assert fleet["InstanceType"] == "ml.g5.12xlarge"
    assert fleet["ManagedInstanceScaling"] == {
        "Status": "ENABLED",
        "MinInstanceCount": 0,
        "MaxInstanceCount": 4,
    }
    assert fleet["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
    assert components.endpoints[ENDPOINT] == {"config": name, "status": "Creating"}
    # Components need the endpoint InService: they come with its IN_SERVICE event.
    assert components.components == {}
    # A new alias is recorded at once, as with variants: nothing answered it before.
    assert default_version(aws_registry) == 1


def test_the_endpoint_in_service_event_creates_the_aliased_versions_component_with_a_copy(
    publish: Any, components: Components, deployer: Any, aws_registry: Any, events: Any
) -> None:
    publish(b"model one", deployer=deployer)
    components.finish_endpoint(ENDPOINT)

    events("in_service")
    assert components.copies() == {V1: ("Creating", 1)}
    spec = components.components[V1]["specification"]
    assert spec == {
        "ModelName": f"{PREFIX}-digits-v1",
        "ComputeResourceRequirements": {
            "MinMemoryRequiredInMb": 8192,
            "NumberOfAcceleratorDevicesRequired": 1.0,
        },
    }
    assert deployer.live_versions(model="digits") == frozenset()  # Creating: no copy yet

    components.finish_components()
    assert events("tick")["models"] == {"digits": "unchanged"}
    assert deployer.live_versions(model="digits") == {1}


def test_a_served_component_gets_target_tracking_and_the_documented_scale_from_zero_trigger(
    publish: Any, components: Components, deployer: Any, events: Any
) -> None:
    served(publish, components, events, deployer)

    rid = f"inference-component/{V1}"
    assert {k: (v["MinCapacity"], v["MaxCapacity"]) for k, v in components.targets.items()} == {
        rid: (1, 4)
    }
    tracking = components.policies[(rid, f"{V1}-concurrency")]
    assert tracking["PolicyType"] == "TargetTrackingScaling"
    assert tracking["TargetTrackingScalingPolicyConfiguration"][
        "PredefinedMetricSpecification"
    ] == {"PredefinedMetricType": HIGH_RESOLUTION}
    step = components.policies[(rid, f"{V1}-from-zero")]
    assert step["PolicyType"] == "StepScaling"
    assert step["StepScalingPolicyConfiguration"]["StepAdjustments"] == [
        {"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}
    ]
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[f"{V1}-no-capacity"])["MetricAlarms"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        "AWS/SageMaker",
        "NoCapacityInvocationFailures",
    )
    assert alarm["Dimensions"] == [{"Name": "InferenceComponentName", "Value": V1}]
    assert alarm["AlarmActions"] == [step["PolicyARN"]]
    assert (alarm["Statistic"], alarm["Threshold"]) == ("Sum", 1.0)

    # Every tick reconciles: with nothing changed it only reads.
    writes = {"RegisterScalableTarget", "PutScalingPolicy", "PutMetricAlarm"}
    before = [n for n in components.sagemaker.names() if n in writes]
    events("tick")
    events("tick")
    assert [n for n in components.sagemaker.names() if n in writes] == before


def test_a_version_no_alias_points_at_is_created_at_zero_copies_and_scales_from_zero(
    publish: Any, components: Components, deployer: Any, aws_registry: Any, events: Any
) -> None:
    served(publish, components, events, deployer)
    with acting_as("functions.api.handler.handler"):
        publish(b"model two", alias=None, deployer=deployer)

    # The newest version is kept for pinned tries, but costs no copy until asked for.
    assert components.copies() == {V1: ("InService", 1), V2: ("Creating", 0)}
    components.finish_components()
    events("tick")
    assert components.targets[f"inference-component/{V2}"]["MinCapacity"] == 0
    assert components.targets[f"inference-component/{V1}"]["MinCapacity"] == 1
    assert deployer.live_versions(model="digits") == {1}


def test_moving_the_alias_to_a_cold_version_starts_a_copy_and_moves_once_it_runs(
    publish: Any, components: Components, deployer: Any, aws_registry: Any, events: Any
) -> None:
    served(publish, components, events, deployer)
    cold_v2(publish, components, events, deployer)

    outcome = move(aws_registry, deployer, 2)
    assert isinstance(outcome, PendingMove)
    assert default_version(aws_registry) == 1  # answers from v1 meanwhile
    assert components.copies()[V2] == ("Updating", 1)
    assert components.sagemaker.last("UpdateInferenceComponentRuntimeConfig") == {
        "InferenceComponentName": V2,
        "DesiredRuntimeConfig": {"CopyCount": 1},
    }

    components.finish_components()
    assert events("tick")["moved"] == ["digits/default->v2"]
    assert default_version(aws_registry) == 2
    # v1 is now only the rollback target: kept, free to scale in to zero.
    assert components.targets[f"inference-component/{V1}"]["MinCapacity"] == 0
    assert components.targets[f"inference-component/{V2}"]["MinCapacity"] == 1


def test_a_retired_version_loses_its_autoscaling_then_its_component(
    publish: Any, components: Components, deployer: Any, aws_registry: Any, events: Any
) -> None:
    served(publish, components, events, deployer)
    cold_v2(publish, components, events, deployer)
    assert f"inference-component/{V2}" in components.targets

    aws_registry.retire_version(model="digits", version=2, actor="admin")
    result = events("tick")

    assert result["models"] == {"digits": "updated"}
    assert set(components.components) == {V1}
    assert f"inference-component/{V2}" not in components.targets
    assert not [k for k in components.policies if k[0] == f"inference-component/{V2}"]
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    assert cloudwatch.describe_alarms(AlarmNames=[f"{V2}-no-capacity"])["MetricAlarms"] == []


def test_changing_the_fleet_is_a_guarded_blue_green_update_of_the_endpoint(
    publish: Any, components: Components, deployer: Any, aws_registry: Any, events: Any
) -> None:
    served(publish, components, events, deployer)
    bigger = make_component_deployer(components, instance_type="ml.g5.48xlarge", max_instances=2)
    plan = rollout.plan_endpoint(registry=aws_registry, model="digits")
    versions = {1: aws_registry.get_version(model="digits", version=1)}

    with acting_as("functions.api.handler.handler"):
        assert bigger.apply(plan=plan, versions=versions) == "updated"

    request = components.sagemaker.last("UpdateEndpoint")
    assert request["EndpointName"] == ENDPOINT
    policy = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"
    alarms = request["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    assert {"AlarmName": f"{PREFIX}-digits-rollback"} in alarms
    (fleet,) = components.configs[request["EndpointConfigName"]]["ProductionVariants"]
    assert fleet["InstanceType"] == "ml.g5.48xlarge"
    assert components.endpoints[ENDPOINT]["status"] == "Updating"
    # The components keep serving through the fleet's update.
    assert bigger.live_versions(model="digits") == frozenset()  # endpoint not InService
    components.finish_endpoint(ENDPOINT)
    assert bigger.live_versions(model="digits") == {1}


def test_a_scaled_in_version_is_not_live_so_a_rollback_to_it_waits_for_a_copy(
    publish: Any, components: Components, deployer: Any, aws_registry: Any, events: Any
) -> None:
    served(publish, components, events, deployer)
    cold_v2(publish, components, events, deployer)
    move(aws_registry, deployer, 2)
    components.finish_components()
    events("tick")
    components.scale_in(V1, 0)  # idle: autoscaling took v1 to zero copies

    assert deployer.live_versions(model="digits") == {2}
    outcome = move(aws_registry, deployer, 1)
    assert isinstance(outcome, PendingMove)
    assert components.copies()[V1] == ("Updating", 1)
    components.finish_components()
    assert events("tick")["moved"] == ["digits/default->v1"]


def test_the_cli_waits_until_the_aliased_version_has_a_copy_running(
    publish: Any, components: Components, deployer: Any, aws_registry: Any
) -> None:
    """``modelway alias set`` waits: the endpoint, then the components only a serving
    endpoint takes, then the move is made before it returns."""
    components.finish_when_waited = True
    with acting_as("functions.api.handler.handler"):
        publish(b"model one", alias=None, deployer=deployer)
    moved = move(aws_registry, deployer, 1, wait=True)

    assert not isinstance(moved, PendingMove)
    assert default_version(aws_registry) == 1
    assert components.copies() == {V1: ("InService", 1)}
    assert deployer.live_versions(model="digits") == {1}

    # A cold version (zero copies): the move starts a copy, waits for it, then is made.
    with acting_as("functions.api.handler.handler"):
        publish(b"model two", alias=None, deployer=deployer)
    assert components.copies()[V2] == ("Creating", 0)
    moved = move(aws_registry, deployer, 2, wait=True)
    assert not isinstance(moved, PendingMove)
    assert default_version(aws_registry) == 2
    assert components.copies()[V2] == ("InService", 1)


def test_new_per_copy_requirements_update_each_component_in_place(
    publish: Any, components: Components, deployer: Any, aws_registry: Any, events: Any
) -> None:
    served(publish, components, events, deployer)
    bigger = make_component_deployer(components, memory_mb=16384, accelerators=2)
    plan = rollout.plan_endpoint(registry=aws_registry, model="digits")
    versions = {1: aws_registry.get_version(model="digits", version=1)}

    with acting_as("functions.api.handler.handler"):
        assert bigger.apply(plan=plan, versions=versions) == "updated"
        assert bigger.apply(plan=plan, versions=versions) == "unchanged"  # Updating: left

    assert components.copies()[V1] == ("Updating", 1)
    assert components.components[V1]["specification"]["ComputeResourceRequirements"] == {
        "MinMemoryRequiredInMb": 16384,
        "NumberOfAcceleratorDevicesRequired": 2.0,
    }
    components.finish_components()
    with acting_as("functions.api.handler.handler"):
        assert bigger.apply(plan=plan, versions=versions) == "unchanged"


def test_the_router_invokes_a_version_by_its_component_with_a_role_that_allows_it(
    mocked: None,
) -> None:
    """The call the router makes with components hosting, through moto's sagemaker-runtime:
    the IAM proof checks ``InvokeEndpoint`` on the endpoint and on the component."""
    from functions.core.runtime.sagemaker import SageMakerRuntimeClient

    client = SageMakerRuntimeClient(
        endpoint_url=None,
        region=REGION,
        connect_timeout=1.0,
        read_timeout=2.0,
        max_attempts=1,
        components=True,
    )
    seen: list[dict[str, Any]] = []
    client.client.meta.events.register(
        "before-parameter-build.sagemaker-runtime.InvokeEndpoint",
        lambda params, **_: seen.append(dict(params)),
    )
    with acting_as("functions.api.handler.handler"):
        client.invoke(endpoint=ENDPOINT, variant="v3", body=b"{}", content_type="application/json")

    assert seen[0]["InferenceComponentName"] == V3
    assert "TargetVariant" not in seen[0]
