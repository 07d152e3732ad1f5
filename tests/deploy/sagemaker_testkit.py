"""SageMaker under moto for the deployer tests (the ``sagemaker`` and ``publish`` fixtures of
``tests/aws_testkit.py`` are built from this).

moto keeps SageMaker models, endpoint configurations and endpoints, but has no
``UpdateEndpoint``: ``SageMaker`` captures that call's parameters (the deployment guardrails
live there) and plays it as SageMaker does: the endpoint is ``Updating`` — ``DescribeEndpoint``
lists the fleet still serving, and the configuration being deployed under
``PendingDeploymentSummary`` — until the test finishes the update (``finish_update``), which
moves the new fleet in and the endpoint back to ``InService``. An ``UpdateEndpoint`` on an
endpoint that is not ``InService`` is refused, as SageMaker refuses it. It records every call
of its client, and of any client it ``watch``es, on one timeline, so tests can check the
order of SageMaker and Application Auto Scaling calls.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders

REGION = "us-east-1"
PREFIX = "modelway-test"
ROLE = "arn:aws:iam::123456789012:role/modelway-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/modelway-serving:1"
ALARM = "modelway-test-digits-5xx"  # an extra alarm every guarded update also watches
ROLLBACK_5XX = 7
TOPIC = "arn:aws:sns:us-east-1:123456789012:modelway-test-alarms"
ENDPOINT = f"{PREFIX}-digits"
# The autoscaling ``make_deployer`` gives every variant unless told otherwise.
AUTOSCALING: dict[str, int] = {
    "min_capacity": 1,
    "max_capacity": 4,
    "target_invocations_per_instance": 100,
    "scale_in_cooldown_seconds": 600,
    "scale_out_cooldown_seconds": 120,
}


class SageMaker:
    """A moto-backed sagemaker client that records every call, and plays UpdateEndpoint."""

    def __init__(self) -> None:
        self.client = boto3.client("sagemaker", region_name=REGION)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        events = self.client.meta.events
        events.register("before-parameter-build.sagemaker.*", self._record)
        # A before-call handler that returns a response stands in for the HTTP call.
        events.register("before-call.sagemaker.UpdateEndpoint", self._update_endpoint)  # type: ignore[arg-type]
        events.register("after-call.sagemaker.DescribeEndpoint", self._describe_pending)
        # Endpoint name -> the configuration an update in progress is deploying.
        self.updating: dict[str, str] = {}
        # Set by a test whose code waits for the update (the CLI): the waiter's first
        # DescribeEndpoint after UpdateEndpoint sees it finished.
        self.finish_updates_when_waited = False
        events.register("before-parameter-build.sagemaker.DescribeEndpoint", self._finish_if_waited)

    def watch(self, client: Any) -> Any:
        """Records ``client``'s calls on this timeline too; returns the client."""
        client.meta.events.register("before-parameter-build", self._record)
        return client

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, dict(params)))

    def _update_endpoint(self, model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        params = self.last("UpdateEndpoint")
        endpoint = _backend().endpoints[params["EndpointName"]]
        if endpoint.endpoint_status != "InService":
            error = {
                "Code": "ValidationException",
                "Message": f"Cannot update in-progress endpoint {endpoint.arn!r}.",
            }
            return AWSResponse("https://sagemaker", 400, HTTPHeaders(), None), {"Error": error}
        _backend().endpoint_configs[params["EndpointConfigName"]]  # exists, or KeyError
        endpoint.endpoint_status = "Updating"
        self.updating[params["EndpointName"]] = params["EndpointConfigName"]
        return AWSResponse("https://sagemaker", 200, HTTPHeaders(), None), {
            "EndpointArn": endpoint.arn
        }

    def _finish_if_waited(self, params: dict[str, Any], **_: Any) -> None:
        name = str(params.get("EndpointName"))
        if self.finish_updates_when_waited and name in self.updating:
            self.finish_update(name)

    def _describe_pending(self, parsed: dict[str, Any], **_: Any) -> None:
        pending = self.updating.get(str(parsed.get("EndpointName")))
        if pending is not None:
            parsed["PendingDeploymentSummary"] = {
                "EndpointConfigName": pending,
                "StartTime": parsed.get("LastModifiedTime"),
            }

    def finish_update(self, endpoint_name: str = ENDPOINT) -> None:
        """SageMaker finishing the update in progress: the new fleet serves, ``InService``."""
        endpoint = _backend().endpoints[endpoint_name]
        config = _backend().endpoint_configs[self.updating.pop(endpoint_name)]
        endpoint.endpoint_config_name = config.endpoint_config_name
        endpoint.production_variants = endpoint._process_production_variants(
            config.production_variants
        )
        endpoint.endpoint_status = "InService"

    def status(self, endpoint_name: str = ENDPOINT) -> str:
        return str(_backend().endpoints[endpoint_name].endpoint_status)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def last(self, name: str) -> dict[str, Any]:
        return next(params for op, params in reversed(self.calls) if op == name)

    def set_status(self, status: str) -> None:
        _backend().endpoints[ENDPOINT].endpoint_status = status

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


def _backend() -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION]


def make_deployer(sagemaker: SageMaker, **overrides: Any) -> Any:
    """A ``SageMakerDeployer`` on the recorded clients; ``autoscaling=None`` turns autoscaling
    off, ``autoscaling={...}`` changes its settings (see ``AUTOSCALING``)."""
    from functions.core.deploy.autoscaling import VariantAutoscaling
    from functions.core.deploy.guardrail import ModelGuardrail
    from functions.core.deploy.sagemaker import SageMakerDeployer

    scaling = overrides.pop("autoscaling", AUTOSCALING)
    options: dict[str, Any] = {
        "prefix": PREFIX,
        "role_arn": ROLE,
        "image_uri": IMAGE,
        "instance_type": "ml.g4dn.xlarge",
        "instance_count": 1,
        "alarm_names": (ALARM,),
        "region": REGION,
        "client": sagemaker.client,
        "guardrail": ModelGuardrail(
            prefix=PREFIX,
            threshold=ROLLBACK_5XX,
            topic_arn=TOPIC,
            client=sagemaker.watch(boto3.client("cloudwatch", region_name=REGION)),
        ),
        "autoscaling": None
        if scaling is None
        else VariantAutoscaling(
            **scaling,
            region=REGION,
            client=sagemaker.watch(boto3.client("application-autoscaling", region_name=REGION)),
        ),
    }
    options.update(overrides)
    return SageMakerDeployer(**options)
