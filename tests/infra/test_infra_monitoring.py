"""Dashboard, alarms (the rollback alarm among them), and the stack's outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from infra_testkit import Synthesized, env_vars, environment_config, flat, function_named, text

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


def test_rollback_alarm_is_the_one_the_router_hands_to_sagemaker(each_env: Synthesized) -> None:
    name = f"modelway-{each_env.name}-rollback"
    rollback = _alarms(each_env)[name]
    assert rollback["MetricName"] == "5XXError"
    assert rollback["Namespace"] == "AWS/ApiGateway"
    assert rollback["Period"] == 60
    assert rollback["Threshold"] == environment_config(each_env.name).alarms.rollback_5xx_count
    dimensions = {d["Name"]: d["Value"] for d in rollback["Dimensions"]}
    assert dimensions["Stage"] == {
        "Ref": each_env.logical_id(each_env.stack.api.rest_api.deployment_stage)
    }
    router = env_vars(function_named(each_env, f"modelway-{each_env.name}-api"))
    assert json.loads(router["MODELWAY_ROLLBACK_ALARM_NAMES"]) == [name]


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
        "RollbackAlarmName",
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
