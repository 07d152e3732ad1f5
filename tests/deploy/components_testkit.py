"""SageMaker inference components for the deployer tests, which moto does not implement.

``Components`` plays, on the recorded clients of ``sagemaker_testkit.SageMaker``, what moto
lacks for ``components`` hosting: endpoint configurations whose variant has no model (a
fleet), the endpoints using them, the inference component calls, and Application Auto
Scaling on ``sagemaker:inference-component:DesiredCopyCount`` (moto refuses that dimension).
Models (``CreateModel``) and CloudWatch alarms stay moto's. botocore still validates every
request against its service model before the call reaches a handler here, so a parameter
SageMaker would refuse fails the test.

SageMaker's behaviour kept: components are created only on an ``InService`` endpoint, for a
model that exists, under a name not taken; a component or endpoint being created or updated
stays so until the test says SageMaker finished (``finish_endpoint``, ``finish_components``);
a component's current copies follow its desired copies only then.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders

from tests.deploy.sagemaker_testkit import REGION, SageMaker, _backend

ACCOUNT = "123456789012"
IC_DIMENSION = "sagemaker:inference-component:DesiredCopyCount"

Response = tuple[AWSResponse, dict[str, Any]]


def _ok(body: dict[str, Any]) -> Response:
    return AWSResponse("https://sagemaker", 200, HTTPHeaders(), None), body


def _error(message: str, code: str = "ValidationException") -> Response:
    return AWSResponse("https://sagemaker", 400, HTTPHeaders(), None), {
        "Error": {"Code": code, "Message": message}
    }


def _arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name}"


class Components:
    def __init__(self, sagemaker: SageMaker) -> None:
        self.sagemaker = sagemaker
        self.autoscaling = sagemaker.watch(
            boto3.client("application-autoscaling", region_name=REGION)
        )
        self.cloudwatch = sagemaker.watch(boto3.client("cloudwatch", region_name=REGION))
        self.configs: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.components: dict[str, dict[str, Any]] = {}
        self.targets: dict[str, dict[str, Any]] = {}
        self.policies: dict[tuple[str, str], dict[str, Any]] = {}
        # Set by a test whose code waits (the CLI): SageMaker finishes whatever is being
        # created or updated the first time it is looked at.
        self.finish_when_waited = False
        events = sagemaker.client.meta.events
        # First: SageMaker's own UpdateEndpoint player knows only moto's endpoints.
        for op, handler in {
            "CreateEndpointConfig": self._create_config,
            "DescribeEndpointConfig": self._describe_config,
            "CreateEndpoint": self._create_endpoint,
            "DescribeEndpoint": self._describe_endpoint,
            "UpdateEndpoint": self._update_endpoint,
            "CreateInferenceComponent": self._create_component,
            "DescribeInferenceComponent": self._describe_component,
            "ListInferenceComponents": self._list_components,
            "UpdateInferenceComponentRuntimeConfig": self._update_runtime,
            "UpdateInferenceComponent": self._update_component,
            "DeleteInferenceComponent": self._delete_component,
        }.items():
            events.register_first(f"before-call.sagemaker.{op}", self._params(handler))
        scaling = self.autoscaling.meta.events
        for op, handler in {
            "RegisterScalableTarget": self._register,
            "DeregisterScalableTarget": self._deregister,
            "DescribeScalableTargets": self._describe_targets,
            "PutScalingPolicy": self._put_policy,
            "DeleteScalingPolicy": self._delete_policy,
            "DescribeScalingPolicies": self._describe_policies,
        }.items():
            scaling.register_first(
                f"before-call.application-autoscaling.{op}", self._params(handler)
            )

    @staticmethod
    def _params(handler: Any) -> Any:
        def call(params: dict[str, Any], **_: Any) -> Response | None:
            # Both services speak JSON: the request as serialized, after botocore validated it.
            result: Response | None = handler(json.loads(params["body"] or b"{}"))
            return result

        return call

    # Test controls ----------------------------------------------------------------------
    def finish_endpoint(self, name: str) -> None:
        """SageMaker done creating or updating the endpoint: ``InService``."""
        endpoint = self.endpoints[name]
        if endpoint.get("pending"):
            endpoint["config"] = endpoint.pop("pending")
        endpoint["status"] = "InService"

    def finish_components(self) -> None:
        """SageMaker done with every component being created or updated: ``InService``, its
        current copies what was asked."""
        for component in self.components.values():
            if component["status"] in ("Creating", "Updating"):
                component["status"] = "InService"
                component["current"] = component["desired"]

    def scale_in(self, name: str, copies: int) -> None:
        """Autoscaling having moved a component to ``copies`` (e.g. 0 when idle)."""
        self.components[name]["desired"] = self.components[name]["current"] = copies

    def copies(self) -> dict[str, tuple[str, int]]:
        """Component name -> (status, desired copies)."""
        return {n: (c["status"], c["desired"]) for n, c in sorted(self.components.items())}

    # SageMaker --------------------------------------------------------------------------
    def _create_config(self, p: dict[str, Any]) -> Response | None:
        if any("ModelName" in v for v in p["ProductionVariants"]):
            return None  # a variants configuration: moto's
        if "ExecutionRoleArn" not in p:
            return _error("ExecutionRoleArn is required for an endpoint with no model.")
        name = p["EndpointConfigName"]
        if name in self.configs:
            return _error(f'Cannot create already existing endpoint configuration "{name}".')
        self.configs[name] = p
        return _ok({"EndpointConfigArn": _arn("endpoint-config", name)})

    def _describe_config(self, p: dict[str, Any]) -> Response | None:
        config = self.configs.get(p["EndpointConfigName"])
        if config is None:
            return None
        return _ok(
            {
                "EndpointConfigName": config["EndpointConfigName"],
                "EndpointConfigArn": _arn("endpoint-config", config["EndpointConfigName"]),
                "ProductionVariants": config["ProductionVariants"],
                "ExecutionRoleArn": config["ExecutionRoleArn"],
                "CreationTime": dt.datetime.now(dt.UTC),
            }
        )

    def _create_endpoint(self, p: dict[str, Any]) -> Response | None:
        if p["EndpointConfigName"] not in self.configs:
            return None
        self.endpoints[p["EndpointName"]] = {
            "config": p["EndpointConfigName"],
            "status": "Creating",
        }
        return _ok({"EndpointArn": _arn("endpoint", p["EndpointName"])})

    def _describe_endpoint(self, p: dict[str, Any]) -> Response | None:
        name = p["EndpointName"]
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return None
        if self.finish_when_waited and endpoint["status"] in ("Creating", "Updating"):
            self.finish_endpoint(name)
        config = self.configs[endpoint["config"]]
        now = dt.datetime.now(dt.UTC)
        body: dict[str, Any] = {
            "EndpointName": name,
            "EndpointArn": _arn("endpoint", name),
            "EndpointConfigName": endpoint["config"],
            "EndpointStatus": endpoint["status"],
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        if endpoint["status"] != "Creating":
            body["ProductionVariants"] = [
                {
                    "VariantName": v["VariantName"],
                    "CurrentInstanceCount": v["InitialInstanceCount"],
                    "ManagedInstanceScaling": v.get("ManagedInstanceScaling", {}),
                }
                for v in config["ProductionVariants"]
            ]
        if endpoint.get("pending"):
            body["PendingDeploymentSummary"] = {
                "EndpointConfigName": endpoint["pending"],
                "StartTime": now,
            }
        return _ok(body)

    def _update_endpoint(self, p: dict[str, Any]) -> Response | None:
        endpoint = self.endpoints.get(p["EndpointName"])
        if endpoint is None:
            return None
        if endpoint["status"] != "InService":
            return _error(f"Cannot update in-progress endpoint {p['EndpointName']!r}.")
        if p["EndpointConfigName"] not in self.configs:
            return _error(f"Could not find endpoint configuration {p['EndpointConfigName']!r}.")
        endpoint["status"] = "Updating"
        endpoint["pending"] = p["EndpointConfigName"]
        return _ok({"EndpointArn": _arn("endpoint", p["EndpointName"])})

    def _create_component(self, p: dict[str, Any]) -> Response:
        name = p["InferenceComponentName"]
        endpoint = self.endpoints.get(p["EndpointName"])
        if endpoint is None:
            return _error(f"Could not find endpoint {p['EndpointName']!r}.")
        if endpoint["status"] != "InService":
            return _error(f"Endpoint {p['EndpointName']!r} is not in service.")
        variants = {
            v["VariantName"] for v in self.configs[endpoint["config"]]["ProductionVariants"]
        }
        if p.get("VariantName") not in variants:
            return _error(f"Could not find variant {p.get('VariantName')!r} on the endpoint.")
        model = p["Specification"]["ModelName"]
        if model not in _backend()._models:
            return _error(f"Could not find model {_arn('model', model)!r}.")
        if name in self.components:
            return _error(f"Cannot create already existing inference component {name!r}.")
        self.components[name] = {
            "endpoint": p["EndpointName"],
            "variant": p["VariantName"],
            "specification": p["Specification"],
            "status": "Creating",
            "desired": p["RuntimeConfig"]["CopyCount"],
            "current": 0,
        }
        return _ok({"InferenceComponentArn": _arn("inference-component", name)})

    def _component_or_error(self, name: str) -> dict[str, Any] | Response:
        component = self.components.get(name)
        if component is None:
            return _error(
                f"Could not find inference component {_arn('inference-component', name)!r}."
            )
        return component

    def _describe_component(self, p: dict[str, Any]) -> Response:
        name = p["InferenceComponentName"]
        component = self._component_or_error(name)
        if isinstance(component, tuple):
            return component
        return _ok(
            {
                "InferenceComponentName": name,
                "InferenceComponentArn": _arn("inference-component", name),
                "EndpointName": component["endpoint"],
                "EndpointArn": _arn("endpoint", component["endpoint"]),
                "VariantName": component["variant"],
                "Specification": component["specification"],
                "RuntimeConfig": {
                    "DesiredCopyCount": component["desired"],
                    "CurrentCopyCount": component["current"],
                },
                "InferenceComponentStatus": component["status"],
                "CreationTime": dt.datetime.now(dt.UTC),
                "LastModifiedTime": dt.datetime.now(dt.UTC),
            }
        )

    def _list_components(self, p: dict[str, Any]) -> Response:
        if self.finish_when_waited:
            self.finish_components()
        wanted = p.get("EndpointNameEquals")
        now = dt.datetime.now(dt.UTC)
        return _ok(
            {
                "InferenceComponents": [
                    {
                        "InferenceComponentName": name,
                        "InferenceComponentArn": _arn("inference-component", name),
                        "EndpointName": c["endpoint"],
                        "EndpointArn": _arn("endpoint", c["endpoint"]),
                        "VariantName": c["variant"],
                        "InferenceComponentStatus": c["status"],
                        "CreationTime": now,
                        "LastModifiedTime": now,
                    }
                    for name, c in sorted(self.components.items())
                    if wanted is None or c["endpoint"] == wanted
                ]
            }
        )

    def _update_runtime(self, p: dict[str, Any]) -> Response:
        component = self._component_or_error(p["InferenceComponentName"])
        if isinstance(component, tuple):
            return component
        if component["status"] != "InService":
            return _error("Cannot update an inference component that is not in service.")
        component["desired"] = p["DesiredRuntimeConfig"]["CopyCount"]
        component["status"] = "Updating"
        return _ok(
            {"InferenceComponentArn": _arn("inference-component", p["InferenceComponentName"])}
        )

    def _update_component(self, p: dict[str, Any]) -> Response:
        component = self._component_or_error(p["InferenceComponentName"])
        if isinstance(component, tuple):
            return component
        if component["status"] != "InService":
            return _error("Cannot update an inference component that is not in service.")
        if "Specification" in p:
            component["specification"] = p["Specification"]
        component["status"] = "Updating"
        arn = _arn("inference-component", p["InferenceComponentName"])
        return _ok({"InferenceComponentArn": arn})

    def _delete_component(self, p: dict[str, Any]) -> Response:
        name = p["InferenceComponentName"]
        component = self._component_or_error(name)
        if isinstance(component, tuple):
            return component
        if f"inference-component/{name}" in self.targets:
            # SageMaker refuses to delete what Application Auto Scaling still scales.
            return _error(f"Inference component {name!r} is registered with autoscaling.")
        del self.components[name]
        return _ok({})

    # Application Auto Scaling (the inference-component dimension only) -------------------
    def _register(self, p: dict[str, Any]) -> Response | None:
        if p.get("ScalableDimension") != IC_DIMENSION:
            return None
        self.targets[p["ResourceId"]] = {
            "ServiceNamespace": p["ServiceNamespace"],
            "ResourceId": p["ResourceId"],
            "ScalableDimension": IC_DIMENSION,
            "MinCapacity": p["MinCapacity"],
            "MaxCapacity": p["MaxCapacity"],
            "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/autoscaling",
            "CreationTime": dt.datetime.now(dt.UTC),
        }
        return _ok({"ScalableTargetARN": f"arn:aws:application-autoscaling:{p['ResourceId']}"})

    def _deregister(self, p: dict[str, Any]) -> Response | None:
        if p.get("ScalableDimension") != IC_DIMENSION:
            return None
        if self.targets.pop(p["ResourceId"], None) is None:
            return _error("No scalable target registered.", "ObjectNotFoundException")
        for key in [k for k in self.policies if k[0] == p["ResourceId"]]:
            del self.policies[key]
        return _ok({})

    def _describe_targets(self, p: dict[str, Any]) -> Response | None:
        if p.get("ScalableDimension") != IC_DIMENSION:
            return None
        ids = p.get("ResourceIds")
        return _ok(
            {
                "ScalableTargets": [
                    t for rid, t in sorted(self.targets.items()) if ids is None or rid in ids
                ]
            }
        )

    def _put_policy(self, p: dict[str, Any]) -> Response | None:
        if p.get("ScalableDimension") != IC_DIMENSION:
            return None
        if p["ResourceId"] not in self.targets:
            return _error(
                "No scalable target registered for this resource.", "ObjectNotFoundException"
            )
        arn = (
            f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:scalingPolicy:{p['ResourceId']}"
            f":policyName/{p['PolicyName']}"
        )
        self.policies[(p["ResourceId"], p["PolicyName"])] = {**p, "PolicyARN": arn}
        return _ok({"PolicyARN": arn, "Alarms": []})

    def _delete_policy(self, p: dict[str, Any]) -> Response | None:
        if p.get("ScalableDimension") != IC_DIMENSION:
            return None
        if self.policies.pop((p["ResourceId"], p["PolicyName"]), None) is None:
            return _error("No scaling policy found.", "ObjectNotFoundException")
        return _ok({})

    def _describe_policies(self, p: dict[str, Any]) -> Response | None:
        if p.get("ScalableDimension") != IC_DIMENSION:
            return None
        names = p.get("PolicyNames")
        return _ok(
            {
                "ScalingPolicies": [
                    policy
                    for (_, name), policy in sorted(self.policies.items())
                    if names is None or name in names
                ]
            }
        )


def make_component_deployer(components: Components, **overrides: Any) -> Any:
    """A ``ComponentDeployer`` on the recorded clients (see ``sagemaker_testkit``)."""
    from functions.core.deploy.component_scaling import ComponentAutoscaling
    from functions.core.deploy.components import ComponentDeployer
    from functions.core.deploy.guardrail import ModelGuardrail
    from tests.deploy.sagemaker_testkit import IMAGE, PREFIX, ROLE, ROLLBACK_5XX, TOPIC

    options: dict[str, Any] = {
        "accelerators": 1,
        "memory_mb": 8192,
        "min_copies": 1,
        "min_instances": 0,
        "max_instances": 4,
        "prefix": PREFIX,
        "role_arn": ROLE,
        "image_uri": IMAGE,
        "instance_type": "ml.g5.12xlarge",
        "instance_count": 1,
        "region": REGION,
        "client": components.sagemaker.client,
        "guardrail": ModelGuardrail(
            prefix=PREFIX, threshold=ROLLBACK_5XX, topic_arn=TOPIC, client=components.cloudwatch
        ),
        "scaling": ComponentAutoscaling(
            max_copies=4,
            target_concurrency=4,
            scale_in_cooldown_seconds=600,
            scale_out_cooldown_seconds=120,
            region=REGION,
            client=components.autoscaling,
            cloudwatch=components.cloudwatch,
        ),
    }
    options.update(overrides)
    return ComponentDeployer(**options)
