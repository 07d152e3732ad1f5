"""The third way in: an object created under ``inputs/`` is scored by the batch function.

S3 invokes the function asynchronously; Lambda retries a failed invocation
(``retry_attempts``) and then hands the event, with the error, to the dead-letter queue, on
which an alarm fires as soon as anything lands there: an upload is never silently dropped.
A file too long for one invocation continues in the next: the function invokes itself
asynchronously with a continuation event.
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct

from infra.config import BatchConfig
from infra.constructs.dead_letters import dead_letter_queue
from infra.constructs.endpoints import Endpoints
from infra.constructs.lambdas import ModelwayFunction
from infra.constructs.nag import acknowledge, allow
from infra.constructs.storage import CAPTURES_PREFIX, INPUTS_PREFIX, OUTPUTS_PREFIX, Storage

# Router captures that wait for a shadow call (functions.core.capture.records.PENDING_SUFFIX).
PENDING_SUFFIX = ".pending.jsonl"

# CDK's singleton that applies bucket notifications (a custom resource and its Lambda).
NOTIFICATIONS_HANDLER_ID = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"


class Batch(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_prefix: str,
        settings: BatchConfig,
        code: lambda_.Code,
        environment: Mapping[str, str],
        storage: Storage,
        endpoints: Endpoints,
        log_level: str,
        log_retention_days: int,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue, self.dlq_alarm = dead_letter_queue(
            self,
            queue_name=f"{endpoint_prefix}-batch-dlq",
            retention=cdk.Duration.days(settings.dlq_retention_days),
            removal_policy=removal_policy,
            catches="the batch function",
            alarm_name=f"{endpoint_prefix}-batch-dead-letters",
            alarm_description="A batch event failed after its retries and waits in the "
            "dead-letter queue: the upload it names was not scored.",
        )
        self.function = ModelwayFunction(
            self,
            "Function",
            function_name=f"{endpoint_prefix}-batch",
            handler="functions.batch.handler.handler",
            code=code,
            description="Scores files uploaded under inputs/ record by record into outputs/",
            memory_mb=settings.memory_mb,
            timeout=cdk.Duration.seconds(settings.timeout_seconds),
            environment={
                **environment,
            },
            service_name="modelway-batch",
            log_level=log_level,
            log_retention_days=log_retention_days,
            removal_policy=removal_policy,
            reserved_concurrency=settings.max_concurrency,
        )
        fn = self.function.function
        fn.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.dead_letter_queue),
            retry_attempts=settings.retry_attempts,
            max_event_age=cdk.Duration.seconds(settings.max_event_age_seconds),
        )
        self._grant(storage=storage, endpoints=endpoints)

        storage.bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(fn),
            s3.NotificationKeyFilter(prefix=INPUTS_PREFIX),
        )
        # Shadow traffic on AWS: the router captures a shadowed request in a *.pending.jsonl
        # object and this function asks the shadow version (functions.batch.shadow).
        storage.bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(fn),
            s3.NotificationKeyFilter(prefix=CAPTURES_PREFIX, suffix=PENDING_SUFFIX),
        )
        _acknowledge_notifications_handler(cdk.Stack.of(self))

    def _grant(self, *, storage: Storage, endpoints: Endpoints) -> None:
        role = self.function.role
        storage.grant_table(role, write=True)  # jobs, and reading versions and aliases
        storage.grant_objects(
            role,
            prefix=INPUTS_PREFIX,
            # The bucket is versioned: every event names the object version, and a job reads
            # exactly that version (GetObject with VersionId is s3:GetObjectVersion).
            actions=["s3:GetObject", "s3:GetObjectVersion"],
            reason="The uploaded files to score, whatever their names, under inputs/ only.",
        )
        storage.grant_list(
            role,
            prefixes=[INPUTS_PREFIX, OUTPUTS_PREFIX],
            reason="Listing under inputs/ and outputs/ only, so that S3 answers 404 for an "
            "input deleted before it was scored (403 without it) and the job fails saying so.",
        )
        storage.grant_objects(
            role,
            prefix=OUTPUTS_PREFIX,
            actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            reason="Results, error files and the segments of a job spanning invocations, "
            "named after the input, under outputs/ only.",
        )
        storage.grant_objects(
            role,
            prefix=CAPTURES_PREFIX,
            # The notification names the object version (GetObject with VersionId).
            actions=["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
            reason="Shadow traffic: reads a router's pending captures and writes the shadow "
            "version's answers beside them, under captures/ only.",
        )
        endpoints.grant_invoke(role)
        # Continuing a long file: the function invokes itself (by name: a reference to its
        # own ARN from its own policy would be a circular dependency).
        allow(role, actions=["lambda:InvokeFunction"], resources=[self.function.arn_from_name])


def _acknowledge_notifications_handler(stack: cdk.Stack) -> None:
    handler = stack.node.try_find_child(NOTIFICATIONS_HANDLER_ID)
    if handler is None:
        return
    acknowledge(
        handler,
        rule="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaBasicExecutionRole]",
        reason="CDK's own bucket-notification handler (a deploy-time custom resource) uses "
        "the basic execution managed policy for its logs.",
    )
