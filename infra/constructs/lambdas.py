"""One modelway Lambda function: code from the shared bundle, its own role and log group.

Each function gets a role of its own that starts empty (no AWS managed policy) so that
every permission it holds is one its construct granted on purpose, and a log group with the
environment's retention instead of one Lambda would create that never expires.

A function that API Gateway calls on every request (router, authorizer) is published: each
deploy publishes a version and moves the ``live`` alias to it, and API Gateway invokes the
alias. That is what Lambda SnapStart needs (it snapshots published versions only), and it is
the same wiring with SnapStart off, so turning it on or off per environment changes nothing
else.
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import LOG_RETENTION_DAYS
from infra.constructs.bundling import ARCHITECTURE, RUNTIME
from infra.constructs.nag import acknowledge, allow

# Powertools metrics land here; the dashboard reads the router's metrics from it.
METRICS_NAMESPACE = "modelway"
# The alias API Gateway invokes on a published function.
LIVE_ALIAS = "live"
# CDK's enum lists the retention periods in ascending order, INFINITE last.
_RETENTIONS = dict(zip(sorted(LOG_RETENTION_DAYS), list(logs.RetentionDays)[:-1], strict=True))


def retention(days: int) -> logs.RetentionDays:
    return _RETENTIONS[days]


class ModelwayFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_name: str,
        handler: str,
        code: lambda_.Code,
        description: str,
        memory_mb: int,
        timeout: cdk.Duration,
        environment: Mapping[str, str],
        service_name: str,
        log_level: str,
        log_retention_days: int,
        removal_policy: cdk.RemovalPolicy,
        reserved_concurrency: int | None = None,
        published: bool = False,
        snap_start: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        if snap_start and not published:
            raise ValueError(f"{function_name}: SnapStart applies to published versions only")
        self.function_name = function_name
        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=retention(log_retention_days),
            removal_policy=removal_policy,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{function_name}: {description}",
        )
        # The log group's Arn attribute already ends in ":*", which covers its streams.
        allow(
            self.role,
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[self.log_group.log_group_arn],
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=code,
            handler=handler,
            memory_size=memory_mb,
            timeout=timeout,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            reserved_concurrent_executions=reserved_concurrency,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            environment={
                "POWERTOOLS_SERVICE_NAME": service_name,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": log_level,
                "MODELWAY_LOG_LEVEL": log_level,
                **environment,
            },
        )
        # The function's published version and the alias that follows it (see above); None
        # for functions invoked unqualified (S3, EventBridge and self-invocations).
        self.alias: lambda_.Alias | None = None
        if published:
            self.alias = lambda_.Alias(
                self,
                "LiveAlias",
                alias_name=LIVE_ALIAS,
                # current_version: a new version whenever the code or configuration changes.
                version=self.function.current_version,
                description="What API Gateway invokes: the version the last deploy published",
            )
        acknowledge(
            self.role,
            rule="AwsSolutions-IAM5[Resource::*]",
            reason="Active tracing needs xray:PutTraceSegments and xray:PutTelemetryRecords, "
            "which have no resource-level permissions; no data action is granted on '*'.",
        )

    @property
    def invoked(self) -> lambda_.IFunction:
        """What callers invoke: the ``live`` alias of a published function, else the function."""
        return self.alias if self.alias is not None else self.function

    @property
    def arn_from_name(self) -> str:
        """The ARN callers invoke (the alias's on a published function), built from names:
        usable where a reference would loop."""
        name = self.function_name if self.alias is None else f"{self.function_name}:{LIVE_ALIAS}"
        return cdk.Stack.of(self).format_arn(
            service="lambda",
            resource="function",
            resource_name=name,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
