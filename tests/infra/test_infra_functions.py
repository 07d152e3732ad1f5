"""The Lambda functions: runtime, handlers, sizes, logs, tracing and what they are told."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from tests.infra.infra_testkit import Synthesized, env_vars, environment_config, function_named

pytestmark = pytest.mark.infra

HANDLERS = {
    "api": "functions.api.handler.handler",
    "authorizer": "functions.authorizer.handler.handler",
    "batch": "functions.batch.handler.handler",
    "endpoint-events": "functions.endpoint_events.handler.handler",
}


@pytest.mark.parametrize("role", sorted(HANDLERS))
def test_functions_are_python_arm64_traced_with_their_handler(
    each_env: Synthesized, role: str
) -> None:
    props = function_named(each_env, f"modelway-{each_env.name}-{role}")["Properties"]
    assert props["Handler"] == HANDLERS[role]
    runtime = props["Runtime"]
    assert runtime.startswith("python3.")
    assert int(runtime.split(".")[1]) >= 12
    assert props["Architectures"] == ["arm64"]
    assert props["TracingConfig"] == {"Mode": "Active"}


def test_memory_and_timeouts_come_from_the_environment(each_env: Synthesized) -> None:
    from infra.constructs import endpoint_events

    config = environment_config(each_env.name)
    expected = {
        "api": (config.lambdas.api.memory_mb, config.lambdas.api.timeout_seconds),
        "authorizer": (
            config.lambdas.authorizer.memory_mb,
            config.lambdas.authorizer.timeout_seconds,
        ),
        "batch": (config.batch.memory_mb, config.batch.timeout_seconds),
        "endpoint-events": (endpoint_events.MEMORY_MB, endpoint_events.TIMEOUT_SECONDS),
    }
    for role, (memory, timeout) in expected.items():
        props = function_named(each_env, f"modelway-{each_env.name}-{role}")["Properties"]
        assert (props["MemorySize"], props["Timeout"]) == (memory, timeout), role
    batch = function_named(each_env, f"modelway-{each_env.name}-batch")["Properties"]
    assert batch["ReservedConcurrentExecutions"] == config.batch.max_concurrency


def test_functions_share_one_code_bundle(each_env: Synthesized) -> None:
    keys = {
        json.dumps(
            function_named(each_env, f"modelway-{each_env.name}-{role}")["Properties"]["Code"]
        )
        for role in HANDLERS
    }
    assert len(keys) == 1


def test_each_function_logs_to_its_own_group_with_retention(each_env: Synthesized) -> None:
    retention = environment_config(each_env.name).log_retention_days
    for role in HANDLERS:
        name = f"modelway-{each_env.name}-{role}"
        each_env.assertions.has_resource_properties(
            "AWS::Logs::LogGroup",
            {"LogGroupName": f"/aws/lambda/{name}", "RetentionInDays": retention},
        )
        props = function_named(each_env, name)["Properties"]
        assert "LogGroup" in props["LoggingConfig"]


@pytest.mark.parametrize("role", sorted(HANDLERS))
def test_functions_get_the_settings_they_read(each_env: Synthesized, role: str) -> None:
    config = environment_config(each_env.name)
    stack = each_env.stack
    variables = env_vars(function_named(each_env, f"modelway-{each_env.name}-{role}"))
    assert variables["MODELWAY_ENV"] == each_env.name
    assert variables["MODELWAY_TABLE_NAME"] == {"Ref": each_env.logical_id(stack.storage.table)}
    assert variables["MODELWAY_BUCKET_NAME"] == {"Ref": each_env.logical_id(stack.storage.bucket)}
    assert variables["MODELWAY_ARTIFACTS_PREFIX"] == "artifacts/"
    assert variables["MODELWAY_ENDPOINT_PREFIX"] == f"modelway-{each_env.name}"
    assert variables["MODELWAY_SAGEMAKER_ROLE_ARN"] == {
        "Fn::GetAtt": [each_env.logical_id(stack.endpoints.execution_role), "Arn"]
    }
    assert "MODELWAY_SERVING_IMAGE_URI" in variables
    assert variables["MODELWAY_INSTANCE_TYPE"] == config.sagemaker.instance_type
    assert variables["MODELWAY_INITIAL_INSTANCE_COUNT"] == str(
        config.sagemaker.initial_instance_count
    )
    assert variables["MODELWAY_MIN_INSTANCE_COUNT"] == str(config.sagemaker.min_instance_count)
    assert variables["MODELWAY_MAX_INSTANCE_COUNT"] == str(config.sagemaker.max_instance_count)
    assert json.loads(variables["MODELWAY_ROLLBACK_ALARM_NAMES"]) == []
    # The router's own limit sits below Lambda's 6 MB event (test_infra_api); the others
    # send SageMaker up to its 6 MB.
    limit = 5 * 1024 * 1024 if role == "api" else 6 * 1024 * 1024
    assert variables["MODELWAY_MAX_PAYLOAD_BYTES"] == str(limit)
    assert variables["MODELWAY_KEY_CACHE_TTL_SECONDS"] == str(config.api.key_cache_ttl_seconds)
    # Only prod gates alias moves on a second person's approval (cdk.json).
    gated = {"prod": "true"}.get(each_env.name, "false")
    assert variables["MODELWAY_REQUIRE_APPROVAL"] == gated
    assert variables["POWERTOOLS_SERVICE_NAME"] == f"modelway-{role}"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "modelway"
    assert variables["POWERTOOLS_LOG_LEVEL"] == config.log_level


def test_the_settings_the_stack_sets_are_ones_the_functions_read(dev: Synthesized) -> None:
    """Every MODELWAY_ variable maps onto a field of functions.core.settings.Settings."""
    from functions.core.settings import Settings

    fields = set(Settings.model_fields)
    for role in HANDLERS:
        for name in env_vars(function_named(dev, f"modelway-dev-{role}")):
            if name.startswith("MODELWAY_"):
                assert name.removeprefix("MODELWAY_").lower() in fields, name


def test_function_roles_start_empty(each_env: Synthesized) -> None:
    """No AWS managed policy on our functions: every permission is granted on purpose."""
    each_env.assertions.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": Match.object_like(
                {
                    "Statement": [
                        Match.object_like({"Principal": {"Service": "lambda.amazonaws.com"}})
                    ]
                }
            ),
            "ManagedPolicyArns": Match.absent(),
        },
    )
    for role in (
        each_env.stack.api.router_function.role,
        each_env.stack.api.authorizer_function.role,
        each_env.stack.batch.function.role,
        each_env.stack.endpoint_events.function.role,
    ):
        props = each_env.resources[each_env.logical_id(role)]["Properties"]
        assert "ManagedPolicyArns" not in props
