"""A dead-letter queue and the alarm that fires as soon as anything lands in it.

Events that fail after their retries must not vanish: each function that takes events
(batch uploads, endpoint state changes) sends them to such a queue, and a message there is
something a person should look at.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.nag import acknowledge


def dead_letter_queue(
    scope: Construct,
    *,
    queue_name: str,
    retention: cdk.Duration,
    removal_policy: cdk.RemovalPolicy,
    catches: str,
    alarm_name: str,
    alarm_description: str,
) -> tuple[sqs.Queue, cloudwatch.Alarm]:
    """``DeadLetterQueue`` (encrypted, TLS only) and ``DeadLetterAlarm`` in ``scope``;
    ``catches`` names what the queue is the dead-letter destination of."""
    queue = sqs.Queue(
        scope,
        "DeadLetterQueue",
        queue_name=queue_name,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=retention,
        removal_policy=removal_policy,
    )
    acknowledge(
        queue,
        rule="AwsSolutions-SQS3",
        reason=f"This queue is the dead-letter destination of {catches}; a dead-letter queue "
        "of its own would have nothing to catch.",
    )
    alarm = cloudwatch.Alarm(
        scope,
        "DeadLetterAlarm",
        alarm_name=alarm_name,
        alarm_description=alarm_description,
        metric=queue.metric_approximate_number_of_messages_visible(
            period=cdk.Duration.minutes(1), statistic="Maximum"
        ),
        threshold=0,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    return queue, alarm
