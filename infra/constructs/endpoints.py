"""What SageMaker needs to serve this environment's versions, short of the endpoints themselves.

Endpoints are created by the control plane when a version is published (one endpoint per
model, ``{endpoint_prefix}-{model}``, one production variant ``v{N}`` per version), so the
stack provides the rest: the serving image, the execution role those endpoints run as, the
settings every variant gets, and the permissions to invoke or manage endpoints whose names
carry this environment's prefix, and no others.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import SageMakerConfig
from infra.constructs.nag import acknowledge, allow
from infra.constructs.storage import ARTIFACTS_PREFIX, Storage

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVING_DOCKERFILE = "serving/Dockerfile"
# The image's build context is the repository root (the Dockerfile copies serving/ by that
# path) with everything but serving/ left out: no .venv, no models, no secrets.
SERVING_CONTEXT_EXCLUDE = ["*", "!serving", "**/__pycache__", "**/*.pyc"]
# What modelway autoscales: endpoint variants' instances, inference components' copies.
SCALABLE_DIMENSIONS = (
    "sagemaker:variant:DesiredInstanceCount",
    "sagemaker:inference-component:DesiredCopyCount",
)
AUTOSCALING_SLR = (
    "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)


class Endpoints(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_prefix: str,
        settings: SageMakerConfig,
        storage: Storage,
    ) -> None:
        super().__init__(scope, construct_id)
        self.endpoint_prefix = endpoint_prefix
        self.settings = settings
        stack = cdk.Stack.of(self)
        self.image = ecr_assets.DockerImageAsset(
            self,
            "ServingImage",
            directory=str(REPO_ROOT),
            file=SERVING_DOCKERFILE,
            exclude=SERVING_CONTEXT_EXCLUDE,
            ignore_mode=cdk.IgnoreMode.DOCKER,
            # SageMaker's GPU instances (ml.g5, ml.g6, ml.p4d …) are x86_64.
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        self.execution_role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{endpoint_prefix}: what the model endpoints run as",
        )
        storage.grant_objects(
            self.execution_role,
            prefix=ARTIFACTS_PREFIX,
            actions=["s3:GetObject"],
            reason="SageMaker downloads a version's model.tar.gz: it may read the artifacts "
            "prefix only, not uploads, inputs or outputs.",
        )
        self.image.repository.grant_pull(self.execution_role)
        acknowledge(
            self.execution_role,
            rule="AwsSolutions-IAM5[Resource::*]",
            reason="ecr:GetAuthorizationToken, needed to pull the serving image, has no "
            "resource-level permissions (the image pull itself is scoped to its repository).",
        )
        allow(
            self.execution_role,
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}},
            wildcard_reason="cloudwatch:PutMetricData has no resource-level permissions; the "
            "condition limits it to SageMaker's endpoint instance namespace.",
        )
        endpoint_logs = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"/aws/sagemaker/Endpoints/{endpoint_prefix}-*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        allow(
            self.execution_role,
            actions=[
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:DescribeLogStreams",
            ],
            resources=[endpoint_logs, f"{endpoint_logs}:log-stream:*"],
            wildcard_reason="The container logs of this environment's endpoints, whose log "
            "groups are named after endpoints created at publish time.",
        )
        # Deployment guardrails check the rollback alarms as the endpoint's execution role.
        allow(
            self.execution_role,
            actions=["cloudwatch:DescribeAlarms"],
            resources=[self.alarm_arns],
            wildcard_reason="The rollback alarms of this environment, all named with its "
            "prefix; SageMaker reads their state during a guarded deployment.",
        )

    # Names and ARNs -----------------------------------------------------------------------
    def _sagemaker_arn(self, resource: str) -> str:
        return cdk.Stack.of(self).format_arn(
            service="sagemaker",
            resource=resource,
            resource_name=f"{self.endpoint_prefix}-*",
            arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
        )

    @property
    def endpoint_arns(self) -> str:
        return self._sagemaker_arn("endpoint")

    @property
    def endpoint_config_arns(self) -> str:
        return self._sagemaker_arn("endpoint-config")

    @property
    def model_arns(self) -> str:
        return self._sagemaker_arn("model")

    @property
    def component_arns(self) -> str:
        return self._sagemaker_arn("inference-component")

    @property
    def alarm_arns(self) -> str:
        return cdk.Stack.of(self).format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=f"{self.endpoint_prefix}-*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )

    @property
    def image_uri(self) -> str:
        return self.image.image_uri

    # Grants -------------------------------------------------------------------------------
    def grant_invoke(self, role: iam.IRole) -> None:
        allow(
            role,
            actions=["sagemaker:InvokeEndpoint"],
            # With inference components the call names one, authorized on it too.
            resources=[self.endpoint_arns, self.component_arns],
            wildcard_reason="Endpoints are created per model at publish time; the prefix "
            "limits invocation to this environment's modelway endpoints.",
        )

    def grant_manage(self, role: iam.IRole) -> None:
        """What the control plane needs to publish versions and move aliases (the calls of
        ``functions.core.deploy``), and to give each variant its autoscaling."""
        reason = (
            "SageMaker models, endpoint configs and endpoints are created per version at "
            "publish time; the name prefix limits them to this environment's modelway ones."
        )
        allow(
            role,
            actions=[
                "sagemaker:CreateModel",
                "sagemaker:DescribeModel",
                "sagemaker:CreateEndpointConfig",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:CreateEndpoint",
                "sagemaker:DescribeEndpoint",
                "sagemaker:UpdateEndpoint",
                "sagemaker:UpdateEndpointWeightsAndCapacities",
                "sagemaker:AddTags",
            ],
            resources=[self.model_arns, self.endpoint_config_arns, self.endpoint_arns],
            wildcard_reason=reason,
        )
        # Inference components (``hosting: components``): one per version, on its model's
        # endpoint; creating one is authorized on the component and on the endpoint.
        allow(
            role,
            actions=[
                "sagemaker:CreateInferenceComponent",
                "sagemaker:DescribeInferenceComponent",
                "sagemaker:UpdateInferenceComponentRuntimeConfig",
                "sagemaker:UpdateInferenceComponent",
                "sagemaker:DeleteInferenceComponent",
                "sagemaker:AddTags",
            ],
            resources=[self.component_arns, self.endpoint_arns],
            wildcard_reason="A version's inference component is created at publish time on "
            "its model's endpoint; the name prefix limits both to this environment's.",
        )
        allow(
            role,
            actions=["sagemaker:ListInferenceComponents"],
            resources=["*"],
            wildcard_reason="sagemaker:ListInferenceComponents has no resource-level "
            "permissions; it is called with this environment's endpoint names.",
        )
        allow(
            role,
            actions=["iam:PassRole"],
            resources=[self.execution_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )
        self.grant_autoscaling(role, deregister=True)

    def grant_model_registry(self, role: iam.IRole) -> None:
        """Writing the SageMaker Model Registry mirror (``functions.core.mirror``): this
        environment's package groups (``{prefix}-{model}``) and their versioned packages
        (``model-package/{group}/{n}``), nothing else in the account's registry."""
        stack = cdk.Stack.of(self)
        allow(
            role,
            actions=["sagemaker:CreateModelPackageGroup"],
            resources=[
                stack.format_arn(
                    service="sagemaker",
                    resource="model-package-group",
                    resource_name=f"{self.endpoint_prefix}-*",
                    arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
                )
            ],
            wildcard_reason="One package group per model, created at its first publish; the "
            "prefix limits them to this environment's modelway models.",
        )
        allow(
            role,
            actions=[
                "sagemaker:CreateModelPackage",
                "sagemaker:DescribeModelPackage",
                "sagemaker:UpdateModelPackage",
            ],
            resources=[
                stack.format_arn(
                    service="sagemaker",
                    resource="model-package",
                    resource_name=f"{self.endpoint_prefix}-*/*",
                    arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
                )
            ],
            wildcard_reason="A versioned package per modelway version, numbered by SageMaker "
            "inside this environment's package groups (name prefix).",
        )
        allow(
            role,
            actions=["sagemaker:ListModelPackages"],
            resources=["*"],
            wildcard_reason="sagemaker:ListModelPackages has no resource-level permissions; "
            "it lists names and statuses, and is called with this environment's group name.",
        )

    def grant_autoscaling(self, role: iam.IRole, *, deregister: bool) -> None:
        """Giving variants their autoscaling (``functions.core.deploy.autoscaling``): target
        tracking on invocations per instance; ``deregister`` also allows taking it off, which
        only an endpoint update that drops or resizes a variant needs."""
        stack = cdk.Stack.of(self)
        actions = [
            "application-autoscaling:RegisterScalableTarget",
            "application-autoscaling:PutScalingPolicy",
        ]
        if deregister:
            actions += [
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:DeleteScalingPolicy",
            ]
        allow(
            role,
            actions=actions,
            resources=[
                stack.format_arn(
                    service="application-autoscaling",
                    resource="scalable-target",
                    resource_name="*",
                    arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
                )
            ],
            conditions={
                "StringEquals": {
                    "application-autoscaling:service-namespace": "sagemaker",
                    "application-autoscaling:scalable-dimension": list(SCALABLE_DIMENSIONS),
                }
            },
            wildcard_reason="Scalable targets get ids generated on registration; the "
            "conditions limit these actions to SageMaker endpoint variants and inference "
            "components of this account and region (no other service's targets).",
        )
        allow(
            role,
            actions=[
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingPolicies",
            ],
            resources=["*"],
            wildcard_reason="Application Auto Scaling's Describe actions have no resource-level "
            "permissions; they read settings, no data.",
        )
        # SageMaker's autoscaling prerequisites: Application Auto Scaling checks that whoever
        # registers a variant may describe its endpoint and change its capacity.
        allow(
            role,
            actions=["sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"],
            resources=[self.endpoint_arns],
            wildcard_reason="This environment's endpoints (name prefix), created at publish "
            "time; registering their variants' autoscaling needs these two.",
        )
        # Target tracking creates, updates and deletes its alarms as the caller; an inference
        # component's scale-from-zero alarm is the deployer's (``deploy/component_scaling.py``).
        allow(
            role,
            actions=[
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:DescribeAlarms",
                "cloudwatch:DeleteAlarms",
            ],
            resources=[
                stack.format_arn(
                    service="cloudwatch",
                    resource="alarm",
                    resource_name=name,
                    arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                )
                for name in (
                    f"TargetTracking-endpoint/{self.endpoint_prefix}-*",
                    f"TargetTracking-inference-component/{self.endpoint_prefix}-*",
                    f"{self.endpoint_prefix}-*-no-capacity",
                )
            ],
            wildcard_reason="The alarms target tracking creates for this environment's "
            "endpoint variants and inference components, named after them, and each "
            "component's scale-from-zero alarm (this environment's prefix).",
        )
        # The first registration creates Application Auto Scaling's role for endpoints.
        allow(
            role,
            actions=["iam:CreateServiceLinkedRole"],
            resources=[
                cdk.Stack.of(self).format_arn(
                    service="iam",
                    region="",
                    resource="role",
                    resource_name=AUTOSCALING_SLR,
                    arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
                )
            ],
            conditions={
                "StringEquals": {
                    "iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"
                }
            },
        )
