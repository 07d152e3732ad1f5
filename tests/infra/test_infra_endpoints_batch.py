"""The serving image, and batch scoring: the inputs/ and pending captures notifications,
retries, dead letters."""

from __future__ import annotations

import json

import pytest

from tests.infra.infra_testkit import REPO_ROOT, Synthesized, environment_config, flat

pytestmark = pytest.mark.infra


def _docker_assets(synth: Synthesized) -> dict[str, dict[str, object]]:
    manifest = json.loads((synth.outdir / f"{synth.stack.stack_name}.assets.json").read_text())
    return dict(manifest["dockerImages"])


def test_serving_image_is_staged_from_its_dockerfile_for_x86(dev: Synthesized) -> None:
    (image,) = _docker_assets(dev).values()
    source = image["source"]
    assert isinstance(source, dict)
    assert source["dockerFile"] == "serving/Dockerfile"
    assert source["platform"] == "linux/amd64"
    staged = dev.outdir / str(source["directory"])
    assert (staged / "serving" / "Dockerfile").is_file()
    # The build context holds serving/ and nothing else: no .venv, functions or models.
    assert sorted(p.name for p in staged.iterdir()) == ["serving"]
    assert not list(staged.rglob("__pycache__"))
    assert (REPO_ROOT / "serving" / "Dockerfile").is_file()


def test_router_is_told_the_image_uri(dev: Synthesized) -> None:
    router = dev.stack.api.router_function.function
    variables = dev.resources[dev.logical_id(router)]["Properties"]["Environment"]["Variables"]
    uri = flat(variables["MODELWAY_SERVING_IMAGE_URI"])
    (image_hash,) = _docker_assets(dev)
    assert "/cdk-hnb659fds-container-assets-" in uri
    assert uri.endswith(f":{image_hash}")


def test_inputs_and_pending_captures_notify_the_batch_function(each_env: Synthesized) -> None:
    from functions.core.capture.records import PENDING_SUFFIX, PREFIX

    notifications = each_env.one("Custom::S3BucketNotifications")["Properties"]
    bucket = each_env.logical_id(each_env.stack.storage.bucket)
    assert notifications["BucketName"] == {"Ref": bucket}
    configs = notifications["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    batch = each_env.logical_id(each_env.stack.batch.function.function)
    assert all(c["Events"] == ["s3:ObjectCreated:*"] for c in configs)
    assert all(c["LambdaFunctionArn"] == {"Fn::GetAtt": [batch, "Arn"]} for c in configs)
    filters = sorted(
        sorted((r["Name"], r["Value"]) for r in c["Filter"]["Key"]["FilterRules"]) for c in configs
    )
    # Uploads to score; the router's captures waiting for a shadow call (same names as the
    # runtime code's: infra imports none of it).
    assert filters == sorted(
        [[("prefix", "inputs/")], [("prefix", PREFIX), ("suffix", PENDING_SUFFIX)]]
    )
    each_env.assertions.has_resource_properties(
        "AWS::Lambda::Permission",
        {"Principal": "s3.amazonaws.com", "FunctionName": {"Fn::GetAtt": [batch, "Arn"]}},
    )


def test_failed_events_land_in_an_encrypted_dead_letter_queue(each_env: Synthesized) -> None:
    config = environment_config(each_env.name).batch
    dlq = each_env.logical_id(each_env.stack.batch.dead_letter_queue)
    batch = {"Ref": each_env.logical_id(each_env.stack.batch.function.function)}
    (invoke,) = [
        r["Properties"]
        for r in each_env.of_type("AWS::Lambda::EventInvokeConfig").values()
        if r["Properties"]["FunctionName"] == batch
    ]
    assert invoke["MaximumRetryAttempts"] == config.retry_attempts
    assert invoke["MaximumEventAgeInSeconds"] == config.max_event_age_seconds
    assert invoke["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": [dlq, "Arn"]}}
    }
    queue = each_env.resources[dlq]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == config.dlq_retention_days * 86400
    (policy,) = [
        r
        for r in each_env.of_type("AWS::SQS::QueuePolicy").values()
        if r["Properties"]["Queues"] == [{"Ref": dlq}]
    ]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_a_dead_letter_raises_an_alarm(each_env: Synthesized) -> None:
    dlq = each_env.logical_id(each_env.stack.batch.dead_letter_queue)
    each_env.assertions.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": f"modelway-{each_env.name}-batch-dead-letters",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Namespace": "AWS/SQS",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}],
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            "EvaluationPeriods": 1,
        },
    )
