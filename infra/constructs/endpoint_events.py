"""Autoscaling for variants the router adds: EventBridge → the endpoint-events function.

A production variant can be registered with Application Auto Scaling only once its endpoint
is ``InService``, minutes after the ``UpdateEndpoint`` that added it; the router cannot wait
that long. SageMaker sends "SageMaker Endpoint State Change" to the default event bus on every
status change; a rule passes this environment's endpoints (name prefix) going ``IN_SERVICE``
to the function, which registers every variant's target and policy
(``functions.endpoint_events``), and then makes the alias moves that were waiting for the
update to finish (pending moves in the registry), starting the next endpoint change when a
waiting target is not on the endpoint yet. So it may do what the router's deployments do —
the registry table, SageMaker models, endpoint configurations and endpoints of this
environment, their autoscaling — and nothing else: no bucket, no invocation, no keys.

Delivery: EventBridge retries a failed delivery and then dead-letters it; Lambda retries a
failed run and then sends it to the same queue. A message there means a variant may still
serve at its initial instance count (the next publish or alias move also registers it), so
the queue raises an alarm.
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from constructs import Construct

from infra.constructs.dead_letters import dead_letter_queue
from infra.constructs.endpoints import Endpoints
from infra.constructs.lambdas import ModelwayFunction
from infra.constructs.storage import Storage

# The event SageMaker sends ("Events that Amazon SageMaker AI sends to Amazon EventBridge").
EVENT_SOURCE = "aws.sagemaker"
EVENT_DETAIL_TYPE = "SageMaker Endpoint State Change"
IN_SERVICE = "IN_SERVICE"
# Two describes and at most a few writes per variant: small and quick.
MEMORY_MB = 256
TIMEOUT_SECONDS = 60
# Retries of a failed run (Lambda) or delivery (EventBridge), and how long an event stays
# worth delivering: after an hour the next move has likely registered the variant anyway.
RETRY_ATTEMPTS = 2
MAX_EVENT_AGE = cdk.Duration.hours(1)
DLQ_RETENTION = cdk.Duration.days(14)


class EndpointEvents(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_prefix: str,
        code: lambda_.Code,
        environment: Mapping[str, str],
        endpoints: Endpoints,
        storage: Storage,
        log_level: str,
        log_retention_days: int,
        removal_policy: cdk.RemovalPolicy,
        reconcile_every: cdk.Duration | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue, self.dlq_alarm = dead_letter_queue(
            self,
            queue_name=f"{endpoint_prefix}-endpoint-events-dlq",
            retention=DLQ_RETENTION,
            removal_policy=removal_policy,
            catches="the endpoint-events rule and function",
            alarm_name=f"{endpoint_prefix}-endpoint-events-dead-letters",
            alarm_description="An endpoint InService event failed after its retries: a new "
            "variant may serve at its initial instance count until the next publish or alias "
            "move registers its autoscaling.",
        )
        self.function = ModelwayFunction(
            self,
            "Function",
            function_name=f"{endpoint_prefix}-endpoint-events",
            handler="functions.endpoint_events.handler.handler",
            code=code,
            description="Gives endpoint variants their autoscaling when SageMaker reports "
            "the endpoint InService",
            memory_mb=MEMORY_MB,
            timeout=cdk.Duration.seconds(TIMEOUT_SECONDS),
            environment=environment,
            service_name="modelway-endpoint-events",
            log_level=log_level,
            log_retention_days=log_retention_days,
            removal_policy=removal_policy,
        )
        fn = self.function.function
        fn.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.dead_letter_queue),
            retry_attempts=RETRY_ATTEMPTS,
            max_event_age=MAX_EVENT_AGE,
        )
        # Pending alias moves live in the registry; completing one may start the endpoint
        # change it waits for (the router's deployment rights, the same prefix).
        storage.grant_table(self.function.role, write=True)
        endpoints.grant_manage(self.function.role)

        self.rule = events.Rule(
            self,
            "InServiceRule",
            rule_name=f"{endpoint_prefix}-endpoint-in-service",
            description=f"SageMaker reports a {endpoint_prefix}- endpoint InService: give its "
            "variants their autoscaling",
            event_pattern=events.EventPattern(
                source=[EVENT_SOURCE],
                detail_type=[EVENT_DETAIL_TYPE],
                detail={
                    "EndpointName": events.Match.prefix(f"{endpoint_prefix}-"),
                    "EndpointStatus": [IN_SERVICE],
                },
            ),
        )
        # An approval made in the SageMaker Model Registry (Studio) for one of this
        # environment's package groups: recorded as a modelway decision.
        self.approval_rule = events.Rule(
            self,
            "ModelPackageRule",
            rule_name=f"{endpoint_prefix}-model-package-state",
            description=f"A {endpoint_prefix}- model package's approval status changed",
            event_pattern=events.EventPattern(
                source=[EVENT_SOURCE],
                detail_type=["SageMaker Model Package State Change"],
                detail={"ModelPackageGroupName": events.Match.prefix(f"{endpoint_prefix}-")},
            ),
        )
        self.approval_rule.add_target(
            targets.LambdaFunction(
                fn,
                dead_letter_queue=self.dead_letter_queue,
                retry_attempts=RETRY_ATTEMPTS,
                max_event_age=MAX_EVENT_AGE,
            )
        )
        self.rule.add_target(
            targets.LambdaFunction(
                fn,
                dead_letter_queue=self.dead_letter_queue,
                retry_attempts=RETRY_ATTEMPTS,
                max_event_age=MAX_EVENT_AGE,
            )
        )
        # Inference components send no state-change events: a schedule reconciles every
        # model (their autoscaling once InService, the alias moves waiting for a copy).
        self.schedule: events.Rule | None = None
        if reconcile_every is not None:
            self.schedule = events.Rule(
                self,
                "ReconcileSchedule",
                rule_name=f"{endpoint_prefix}-reconcile",
                description=f"Reconcile {endpoint_prefix}- endpoints' inference components "
                "with the registry",
                schedule=events.Schedule.rate(reconcile_every),
            )
            self.schedule.add_target(
                targets.LambdaFunction(
                    fn,
                    dead_letter_queue=self.dead_letter_queue,
                    # The next tick does the same work: a failed one is not worth retrying.
                    retry_attempts=0,
                    max_event_age=reconcile_every,
                )
            )
