"""Dashboard, alarms, what each model's rollback alarm needs, and the stack's outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.infra_testkit import (
    Synthesized,
    env_vars,
    environment_config,
    flat,
    function_named,
    grants,
    role_policy,
    text,
)

pytestmark = pytest.mark.infra


def _alarms(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in synth.of_type("AWS::CloudWatch::Alarm").values()
    }


def test_dashboard_shows_api_endpoints_gpu_and_throttles(each_env: Synthesized) -> None:
    dashboard = each_env.one("AWS::CloudWatch::Dashboard")["Properties"]
    assert dashboard["DashboardName"] == f"modelway-{each_env.name}-overview"
    body = text(dashboard["DashboardBody"])
    for needle in (
        '"AWS/ApiGateway","Count"',
        '"AWS/ApiGateway","Latency"',
        '"stat":"p50"',
        '"stat":"p99"',
        '"AWS/ApiGateway","4XXError"',
        '"AWS/ApiGateway","5XXError"',
        '"AWS/Lambda","Throttles"',
        'MetricName=\\"Invocations\\"',
        'MetricName=\\"ModelLatency\\"',
        'MetricName=\\"GPUUtilization\\"',
        "/aws/sagemaker/Endpoints",
        f"modelway-{each_env.name}",
        "{modelway,service,model,version}",  # the router's Powertools metrics
        "ApproximateNumberOfMessagesVisible",
    ):
        assert needle in body, needle


def test_alarms_on_error_rate_and_latency_from_the_environment(each_env: Synthesized) -> None:
    config = environment_config(each_env.name).alarms
    alarms = _alarms(each_env)
    rate = alarms[f"modelway-{each_env.name}-api-5xx-rate"]
    assert rate["Threshold"] == config.api_5xx_rate_percent
    assert rate["EvaluationPeriods"] == config.evaluation_periods
    expression = next(m for m in rate["Metrics"] if "Expression" in m)
    assert "100 * errors / requests" in expression["Expression"]
    latency = alarms[f"modelway-{each_env.name}-api-p99-latency"]
    assert latency["ExtendedStatistic"] == "p99"
    assert latency["MetricName"] == "Latency"
    assert latency["Threshold"] == config.api_p99_latency_ms


def test_no_stage_wide_alarm_gates_a_deployment(each_env: Synthesized) -> None:
    """Issue 10: the rollback alarm counted every 5xx of the stage, so any caller could roll
    back any model's guarded update. Each model's alarm is made at run time instead."""
    assert not any(name.endswith("-rollback") for name in _alarms(each_env))
    for function in ("api", "batch", "authorizer", "endpoint-events"):
        variables = env_vars(function_named(each_env, f"modelway-{each_env.name}-{function}"))
        assert json.loads(variables["MODELWAY_ROLLBACK_ALARM_NAMES"]) == [], function


def test_the_router_makes_each_models_rollback_alarm_and_only_those(
    each_env: Synthesized,
) -> None:
    from functions.core.deploy import guardrail
    from infra.constructs import monitoring

    # infra imports no runtime code: its copy of the names must be the router's.
    assert monitoring.MODEL_ERRORS_METRIC == guardrail.METRIC
    assert monitoring.ROLLBACK_SUFFIX == guardrail.ROLLBACK_SUFFIX
    assert guardrail.alarm_name(prefix=f"modelway-{each_env.name}", model="digits") == (
        f"modelway-{each_env.name}-digits-rollback"
    )
    stack = each_env.stack
    router = env_vars(function_named(each_env, f"modelway-{each_env.name}-api"))
    config = environment_config(each_env.name).alarms
    assert router["MODELWAY_ROLLBACK_5XX_COUNT"] == str(config.rollback_5xx_count)
    assert router["MODELWAY_ALARM_TOPIC_ARN"] == {
        "Ref": each_env.logical_id(stack.monitoring.topic)
    }
    allowed = grants(role_policy(each_env, stack.api.router_function.role))
    assert (
        "arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:"
        f"modelway-{each_env.name}-*-rollback"
    ) in allowed["cloudwatch:PutMetricAlarm"]
    # Only the control plane writes alarms.
    for function in (stack.batch.function, stack.api.authorizer_function):
        assert "cloudwatch:PutMetricAlarm" not in grants(role_policy(each_env, function.role))
    # SageMaker reads them (as the endpoints' execution role) during a guarded update.
    execution = grants(role_policy(each_env, stack.endpoints.execution_role))
    assert any(
        flat(r).endswith(f"alarm:modelway-{each_env.name}-*")
        for r in execution["cloudwatch:DescribeAlarms"]
    )
    body = text(each_env.one("AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    assert '{modelway,service,model} MetricName=\\"ModelErrors\\"' in body


def test_every_alarm_notifies_the_encrypted_alarm_topic(each_env: Synthesized) -> None:
    topic = each_env.logical_id(each_env.stack.monitoring.topic)
    for name, alarm in _alarms(each_env).items():
        assert alarm["AlarmActions"] == [{"Ref": topic}], name
    props = each_env.one("AWS::SNS::Topic")["Properties"]
    key = each_env.logical_id(each_env.stack.monitoring.topic_key)
    assert props["KmsMasterKeyId"] == {"Fn::GetAtt": [key, "Arn"]}
    assert each_env.resources[key]["Properties"]["EnableKeyRotation"] is True


def test_outputs_tell_the_cli_how_to_reach_the_environment(each_env: Synthesized) -> None:
    outputs = each_env.template["Outputs"]
    for name in (
        "ApiUrl",
        "TableName",
        "BucketName",
        "UsagePlanIds",
        "DefaultUsagePlanId",
        "ServingImageUri",
        "SageMakerRoleArn",
        "EndpointPrefix",
        "RollbackAlarms",
        "DashboardName",
        "Settings",
    ):
        assert name in outputs, name
    assert outputs["EndpointPrefix"]["Value"] == f"modelway-{each_env.name}"
    stage = each_env.logical_id(each_env.stack.api.rest_api.deployment_stage)
    url = flat(outputs["ApiUrl"]["Value"])
    assert url.startswith("https://")
    assert ".execute-api." in url
    assert url.endswith(f"/<{stage}>/")
