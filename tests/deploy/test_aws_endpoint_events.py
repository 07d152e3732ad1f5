"""The endpoint-events function, fed the real-shaped event in
events/sagemaker-endpoint-in-service.json, over SageMaker and Application Auto Scaling under
moto: a variant the router added (no wait) gets its autoscaling when SageMaker reports the
endpoint InService; anything else changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from tests.aws_testkit import TABLE
from tests.deploy.sagemaker_testkit import AUTOSCALING, REGION, SageMaker, make_deployer
from tests.events import sample_event, sample_path

EVENT_FILE = sample_path("sagemaker-endpoint-in-service.json")
# The sample event names dev's endpoint of model digits.
PREFIX = "modelway-dev"
ENDPOINT = f"{PREFIX}-digits"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"


@dataclass
class Context:
    function_name: str = "modelway-dev-endpoint-events"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:modelway-dev-endpoint-events"
    )
    aws_request_id: str = "8c1d2e3f-0000-4000-8000-000000000002"


def sample(**detail: Any) -> dict[str, Any]:
    """The sample event, with ``detail`` fields replaced."""
    event: dict[str, Any] = sample_event(EVENT_FILE.name)
    event["detail"].update(detail)
    return event


def targets(endpoint: str = ENDPOINT) -> dict[str, tuple[int, int]]:
    """The endpoint's scalable targets: variant -> (min, max)."""
    client = boto3.client("application-autoscaling", region_name=REGION)
    ids = f"endpoint/{endpoint}/variant/"
    found = client.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    return {
        t["ResourceId"].removeprefix(ids): (t["MinCapacity"], t["MaxCapacity"])
        for t in found
        if t["ResourceId"].startswith(ids) and t["ScalableDimension"] == DIMENSION
    }


def policies(endpoint: str = ENDPOINT) -> dict[str, dict[str, Any]]:
    client = boto3.client("application-autoscaling", region_name=REGION)
    ids = f"endpoint/{endpoint}/variant/"
    found = client.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    return {p["ResourceId"].removeprefix(ids): p for p in found if p["ResourceId"].startswith(ids)}


def set_status(status: str) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sagemaker.models import sagemaker_backends

    sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION].endpoints[ENDPOINT].endpoint_status = status


@pytest.fixture
def function(aws_registry: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The handler module with dev's settings, as the stack sets them on the function."""
    from functions.core import backends
    from functions.core.settings import get_settings
    from functions.endpoint_events import handler as module

    for name, value in {
        "MODELWAY_ENV": "dev",
        "MODELWAY_REGION": REGION,
        "MODELWAY_TABLE_NAME": TABLE,  # the registry's pending alias moves
        # The router's settings, which made the endpoint (``make_deployer``'s).
        "MODELWAY_INSTANCE_TYPE": "ml.g4dn.xlarge",
        "MODELWAY_MIN_INSTANCE_COUNT": str(AUTOSCALING["min_capacity"]),
        "MODELWAY_MAX_INSTANCE_COUNT": str(AUTOSCALING["max_capacity"]),
        "MODELWAY_TARGET_INVOCATIONS_PER_INSTANCE": "100",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    backends.use(None)
    yield module
    backends.use(None)
    get_settings.cache_clear()


@pytest.fixture
def router_added_v2(publish: Any, sagemaker: SageMaker) -> None:
    """dev's digits endpoint after the router published v1 (default) and then v2: the
    update that added v2 was started without waiting, so only v1 autoscales."""
    deployer = make_deployer(sagemaker, prefix=PREFIX)
    publish(b"model one", deployer=deployer)
    publish(b"model two", alias=None, deployer=deployer)
    sagemaker.finish_update(ENDPOINT)  # SageMaker done adding v2: its IN_SERVICE event
    config = sagemaker.client.describe_endpoint_config(
        EndpointConfigName=sagemaker.client.describe_endpoint(EndpointName=ENDPOINT)[
            "EndpointConfigName"
        ]
    )
    assert {v["VariantName"] for v in config["ProductionVariants"]} == {"v1", "v2"}
    assert set(targets()) == {"v1"}


def test_the_event_file_is_sagemakers_endpoint_state_change() -> None:
    event = sample_event(EVENT_FILE.name)
    assert (event["source"], event["detail-type"]) == (
        "aws.sagemaker",
        "SageMaker Endpoint State Change",
    )
    assert event["detail"]["EndpointStatus"] == "IN_SERVICE"
    assert event["detail"]["EndpointName"] == ENDPOINT
    assert event["resources"] == [event["detail"]["EndpointArn"]]


def test_in_service_gives_the_variant_the_router_added_its_autoscaling(
    router_added_v2: None, function: Any
) -> None:
    result = function.handler(sample(), Context())

    assert result["action"] == "autoscaled"
    assert (result["endpoint"], result["model"]) == (ENDPOINT, "digits")
    bounds = (AUTOSCALING["min_capacity"], AUTOSCALING["max_capacity"])
    assert targets() == {"v1": bounds, "v2": bounds}
    found = policies()
    assert set(found) == {"v1", "v2"}
    config = found["v2"]["TargetTrackingScalingPolicyConfiguration"]
    assert config["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert config["TargetValue"] == 100.0

    # SageMaker may send an event more than once: a repeat finds everything in place.
    assert function.handler(sample(), Context())["action"] == "autoscaled"
    assert targets() == {"v1": bounds, "v2": bounds}
    assert set(policies()) == {"v1", "v2"}


@pytest.mark.parametrize(
    "detail",
    [
        {"EndpointStatus": "UPDATING"},
        {"EndpointStatus": "CREATING"},
        {"EndpointStatus": "FAILED"},
        {"EndpointName": "modelway-prod-digits"},
        {"EndpointName": "someone-elses-endpoint"},
        {"EndpointName": f"{PREFIX}-"},
    ],
    ids=["updating", "creating", "failed", "other-env", "other-prefix", "no-model"],
)
def test_other_statuses_and_other_endpoints_change_nothing(
    router_added_v2: None, function: Any, detail: dict[str, str]
) -> None:
    result = function.handler(sample(**detail), Context())
    assert result["action"] == "ignored"
    assert set(targets()) == {"v1"}


def test_other_event_types_change_nothing(router_added_v2: None, function: Any) -> None:
    event = {**sample(), "detail-type": "SageMaker Endpoint Deployment State Change"}
    assert function.handler(event, Context())["action"] == "ignored"
    assert set(targets()) == {"v1"}


def test_an_endpoint_changing_again_is_left_for_its_next_in_service_event(
    router_added_v2: None, function: Any
) -> None:
    # The event was sent, but another update started before the function ran.
    set_status("Updating")
    assert function.handler(sample(), Context())["action"] == "deferred"
    assert set(targets()) == {"v1"}
    set_status("InService")
    assert function.handler(sample(), Context())["action"] == "autoscaled"
    assert set(targets()) == {"v1", "v2"}


def test_an_endpoint_that_is_gone_is_left_alone(function: Any) -> None:
    assert function.handler(sample(), Context())["action"] == "deferred"
    assert targets() == {}


def test_where_nothing_is_deployed_the_event_changes_nothing(
    router_added_v2: None, function: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.core import backends
    from functions.core.settings import get_settings

    monkeypatch.setenv("MODELWAY_SAGEMAKER_DEPLOY", "false")
    get_settings.cache_clear()
    backends.use(None)  # the backends for the new settings
    result = function.handler(sample(), Context())
    assert result["action"] == "ignored"
    assert set(targets()) == {"v1"}


def test_modelway_invoke_runs_the_function_on_the_event_file(
    router_added_v2: None, function: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli import main

    assert main(["invoke", "endpoint-events", str(EVENT_FILE)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["action"], printed["model"]) == ("autoscaled", "digits")
    assert set(targets()) == {"v1", "v2"}


def test_an_approval_made_in_the_model_registry_is_recorded_as_a_decision(
    aws_registry: Any, function: Any
) -> None:
    import dataclasses

    from functions.core.clock import utc_now
    from functions.core.registry.base import ModelVersion

    aws_registry.register_version(
        version=ModelVersion(
            model="digits",
            version=1,
            sha256=f"{1:064x}",
            artifact_uri="s3://b/artifacts/digits/1/model.tar.gz",
            manifest={},
            created_at=utc_now(),
            created_by="alice",
            endpoint_name=ENDPOINT,
            variant_name="v1",
        )
    )
    event = sample_event("sagemaker-model-package-approved.json")
    # The sample names prod's group; this function is dev's.
    event["detail"]["ModelPackageGroupName"] = f"{PREFIX}-digits"
    result = function.handler(event, Context())
    assert result == {"action": "recorded", "model": "digits", "version": 1, "decision": "approved"}
    (decision,) = aws_registry.list_decisions(model="digits")
    assert dataclasses.astuple(decision)[:4] == ("digits", 1, "approved", "reviewer (SageMaker)")
    # Delivered twice (EventBridge is at-least-once): still one decision.
    assert function.handler(event, Context())["action"] == "ignored"
    assert len(aws_registry.list_decisions(model="digits")) == 1
