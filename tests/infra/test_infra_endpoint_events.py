"""Autoscaling for new variants: SageMaker's InService event → the endpoint-events function."""

from __future__ import annotations

from typing import Any

import pytest

from tests.events import sample_event
from tests.infra.infra_testkit import Synthesized, function_named

pytestmark = pytest.mark.infra

SAMPLE = "sagemaker-endpoint-in-service.json"


def _rule(synth: Synthesized) -> dict[str, Any]:
    rule = synth.resources[synth.logical_id(synth.stack.endpoint_events.rule)]
    return dict(rule["Properties"])


def test_the_rule_passes_this_environments_endpoints_going_in_service(
    each_env: Synthesized,
) -> None:
    rule = _rule(each_env)
    assert rule["State"] == "ENABLED"
    assert rule["Name"] == f"modelway-{each_env.name}-endpoint-in-service"
    assert "EventBusName" not in rule  # SageMaker sends to the default bus
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Endpoint State Change"],
        "detail": {
            "EndpointName": [{"prefix": f"modelway-{each_env.name}-"}],
            "EndpointStatus": ["IN_SERVICE"],
        },
    }


def _matches(pattern: Any, event: Any) -> bool:
    """EventBridge matching for the pattern forms the rule uses (exact values, prefix)."""
    if isinstance(pattern, dict):
        return isinstance(event, dict) and all(
            key in event and _matches(value, event[key]) for key, value in pattern.items()
        )
    assert isinstance(pattern, list)
    return any(
        event.startswith(p["prefix"]) if isinstance(p, dict) else event == p for p in pattern
    )


def test_the_sample_event_matches_the_dev_rule_only(synthesized: dict[str, Synthesized]) -> None:
    """events/sagemaker-endpoint-in-service.json (dev's digits endpoint) is what the rule
    passes; the same event for another status or environment is not."""
    event = sample_event(SAMPLE)
    assert _matches(_rule(synthesized["dev"])["EventPattern"], event)
    assert not _matches(_rule(synthesized["prod"])["EventPattern"], event)
    updating = {**event, "detail": {**event["detail"], "EndpointStatus": "UPDATING"}}
    assert not _matches(_rule(synthesized["dev"])["EventPattern"], updating)


def test_the_rule_targets_the_function_with_retries_and_a_dead_letter_queue(
    each_env: Synthesized,
) -> None:
    from infra.constructs import endpoint_events as construct

    stack = each_env.stack
    fn = each_env.logical_id(stack.endpoint_events.function.function)
    dlq = each_env.logical_id(stack.endpoint_events.dead_letter_queue)
    (target,) = _rule(each_env)["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [fn, "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq, "Arn"]}}
    assert target["RetryPolicy"] == {
        "MaximumRetryAttempts": construct.RETRY_ATTEMPTS,
        "MaximumEventAgeInSeconds": construct.MAX_EVENT_AGE.to_seconds(),
    }
    rule = each_env.logical_id(stack.endpoint_events.rule)
    each_env.assertions.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "Principal": "events.amazonaws.com",
            "FunctionName": {"Fn::GetAtt": [fn, "Arn"]},
            "SourceArn": {"Fn::GetAtt": [rule, "Arn"]},
        },
    )
    # A run that fails after Lambda's retries lands in the same queue.
    (invoke,) = [
        r["Properties"]
        for r in each_env.of_type("AWS::Lambda::EventInvokeConfig").values()
        if r["Properties"]["FunctionName"] == {"Ref": fn}
    ]
    assert invoke["MaximumRetryAttempts"] == construct.RETRY_ATTEMPTS
    assert invoke["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": [dlq, "Arn"]}}
    }


def test_only_the_rule_may_dead_letter_into_the_encrypted_queue(each_env: Synthesized) -> None:
    stack = each_env.stack
    dlq = each_env.logical_id(stack.endpoint_events.dead_letter_queue)
    assert each_env.resources[dlq]["Properties"]["SqsManagedSseEnabled"] is True
    (policy,) = [
        r["Properties"]["PolicyDocument"]
        for r in each_env.of_type("AWS::SQS::QueuePolicy").values()
        if r["Properties"]["Queues"] == [{"Ref": dlq}]
    ]
    deny, *allows = policy["Statement"]
    assert (deny["Effect"], deny["Condition"]) == (
        "Deny",
        {"Bool": {"aws:SecureTransport": "false"}},
    )
    # The in-service rule, the model-package (approval) rule and the reconcile schedule, each
    # for itself.
    rules = [stack.endpoint_events.rule, stack.endpoint_events.approval_rule]
    if stack.endpoint_events.schedule is not None:
        rules.append(stack.endpoint_events.schedule)
    for allow in allows:
        assert allow["Principal"] == {"Service": "events.amazonaws.com"}
        assert allow["Action"] == "sqs:SendMessage"
    sources = sorted(a["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0] for a in allows)
    assert sources == sorted(each_env.logical_id(rule) for rule in rules)


def test_a_dead_letter_raises_an_alarm_on_the_alarm_topic(each_env: Synthesized) -> None:
    dlq = each_env.logical_id(each_env.stack.endpoint_events.dead_letter_queue)
    topic = each_env.logical_id(each_env.stack.monitoring.topic)
    each_env.assertions.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": f"modelway-{each_env.name}-endpoint-events-dead-letters",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}],
            "Threshold": 0,
            "AlarmActions": [{"Ref": topic}],
        },
    )


def test_the_function_is_told_the_environment_it_serves(each_env: Synthesized) -> None:
    props = function_named(each_env, f"modelway-{each_env.name}-endpoint-events")["Properties"]
    variables = props["Environment"]["Variables"]
    assert variables["MODELWAY_ENV"] == each_env.name
    assert variables["MODELWAY_ENDPOINT_PREFIX"] == f"modelway-{each_env.name}"
    config = each_env.stack.config.sagemaker
    # The bounds and policy every variant gets (Settings -> VariantAutoscaling.from_settings).
    assert variables["MODELWAY_MIN_INSTANCE_COUNT"] == str(config.min_instance_count)
    assert variables["MODELWAY_MAX_INSTANCE_COUNT"] == str(config.max_instance_count)
    assert variables["MODELWAY_TARGET_INVOCATIONS_PER_INSTANCE"] == str(
        config.target_invocations_per_instance
    )
    assert variables["MODELWAY_SCALE_IN_COOLDOWN_SECONDS"] == str(config.scale_in_cooldown_seconds)
    assert variables["MODELWAY_SCALE_OUT_COOLDOWN_SECONDS"] == str(
        config.scale_out_cooldown_seconds
    )


def test_model_registry_approvals_of_this_environment_reach_the_function(
    synthesized: dict[str, Synthesized],
) -> None:
    """events/sagemaker-model-package-approved.json (prod's digits group, approved in Studio)
    passes prod's model-package rule only, and that rule targets the endpoint-events function."""
    event = sample_event("sagemaker-model-package-approved.json")
    prod, dev = synthesized["prod"], synthesized["dev"]

    def rule(synth: Synthesized) -> dict[str, Any]:
        logical = synth.logical_id(synth.stack.endpoint_events.approval_rule)
        return dict(synth.resources[logical]["Properties"])

    assert rule(prod)["Name"] == "modelway-prod-model-package-state"
    assert _matches(rule(prod)["EventPattern"], event)
    assert not _matches(rule(dev)["EventPattern"], event)
    (target,) = rule(prod)["Targets"]
    function = prod.logical_id(prod.stack.endpoint_events.function.function)
    assert target["Arn"] == {"Fn::GetAtt": [function, "Arn"]}


def test_inference_components_are_reconciled_every_minute_by_the_function(
    each_env: Synthesized,
) -> None:
    """Components send no state-change events: with ``hosting: components`` (every
    environment in cdk.json) a schedule runs the function, which then reconciles every model
    (``functions.endpoint_events.in_service.handle_schedule``)."""
    stack = each_env.stack
    assert stack.config.sagemaker.hosting == "components"
    assert stack.endpoint_events.schedule is not None
    logical = each_env.logical_id(stack.endpoint_events.schedule)
    rule = each_env.resources[logical]["Properties"]
    assert rule["Name"] == f"modelway-{each_env.name}-reconcile"
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    (target,) = rule["Targets"]
    fn = each_env.logical_id(stack.endpoint_events.function.function)
    assert target["Arn"] == {"Fn::GetAtt": [fn, "Arn"]}
    # A failed tick is not retried: the next one, a minute later, does the same work.
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0
    # What the schedule sends is what events/eventbridge-scheduled.json holds.
    from functions.endpoint_events.in_service import is_schedule

    assert is_schedule(sample_event("eventbridge-scheduled.json"))


def test_the_functions_settings_build_the_component_deployer(
    each_env: Synthesized, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variables the stack sets are the settings ``backends.make_deployer`` reads: an
    environment hosting components gets a ``ComponentDeployer`` with cdk.json's numbers."""
    from functions.core.backends import make_deployer
    from functions.core.deploy.components import ComponentDeployer
    from functions.core.settings import Settings

    props = function_named(each_env, f"modelway-{each_env.name}-api")["Properties"]
    for name, value in props["Environment"]["Variables"].items():
        if name.startswith("MODELWAY_") and isinstance(value, str):  # not the CFN references
            monkeypatch.setenv(name, value)
    settings = Settings()
    deployer = make_deployer(settings)
    assert isinstance(deployer, ComponentDeployer)
    components = each_env.stack.config.sagemaker.components
    assert deployer.requirements() == {
        "MinMemoryRequiredInMb": components.memory_mb,
        "NumberOfAcceleratorDevicesRequired": float(components.accelerators),
    }
    fleet = deployer.fleet_variant()["ManagedInstanceScaling"]
    config = each_env.stack.config.sagemaker
    assert (fleet["MinInstanceCount"], fleet["MaxInstanceCount"]) == (
        config.min_instance_count,
        config.max_instance_count,
    )
