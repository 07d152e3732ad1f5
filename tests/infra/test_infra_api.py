"""API Gateway: keys on every route but health, the authorizer, usage plans, logging."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

from tests.infra.infra_testkit import (
    Synthesized,
    env_vars,
    environment_config,
    flat,
    function_named,
)

pytestmark = pytest.mark.infra


def _paths(synth: Synthesized) -> dict[str, str]:
    """logical id of each API resource -> its full path."""
    resources = synth.of_type("AWS::ApiGateway::Resource")
    root = {"Fn::GetAtt": [synth.logical_id(synth.stack.api.rest_api), "RootResourceId"]}

    def path_of(logical_id: str) -> str:
        props = resources[logical_id]["Properties"]
        parent = props["ParentId"]
        prefix = "" if parent == root else path_of(parent["Ref"])
        return f"{prefix}/{props['PathPart']}"

    return {logical_id: path_of(logical_id) for logical_id in resources}


def _methods(synth: Synthesized) -> dict[tuple[str, str], dict[str, Any]]:
    paths = _paths(synth)
    out = {}
    for method in synth.of_type("AWS::ApiGateway::Method").values():
        props = method["Properties"]
        resource = props["ResourceId"]
        path = paths[resource["Ref"]] if "Ref" in resource else "/"
        out[(props["HttpMethod"], path)] = props
    return out


def test_rest_api_is_regional_and_meters_the_authorizers_key(each_env: Synthesized) -> None:
    each_env.assertions.has_resource_properties(
        "AWS::ApiGateway::RestApi",
        {
            "Name": f"modelway-{each_env.name}-api",
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
            "ApiKeySourceType": "AUTHORIZER",
            # Only the binary tensor extension's bodies travel base64-encoded.
            "BinaryMediaTypes": ["application/octet-stream"],
        },
    )


def test_every_route_needs_a_key_and_the_authorizer_except_health_and_docs(
    each_env: Synthesized,
) -> None:
    methods = _methods(each_env)
    authorizer = {"Ref": each_env.logical_id(each_env.stack.api.authorizer)}
    public = {("GET", "/v2/health/live"), ("GET", "/v2/health/ready")}
    # The page, its assets and the document: what /docs loads, relative to the stage.
    public |= {("GET", "/docs"), ("GET", "/docs/{proxy+}"), ("GET", "/openapi.json")}
    assert public <= set(methods)
    assert {("ANY", "/{proxy+}"), ("ANY", "/v2"), ("ANY", "/v2/{proxy+}")} <= set(methods)
    for key, props in methods.items():
        if key in public:
            assert props["AuthorizationType"] == "NONE"
            assert props.get("ApiKeyRequired") is False
        else:
            assert props["AuthorizationType"] == "CUSTOM", key
            assert props["AuthorizerId"] == authorizer, key
            assert props["ApiKeyRequired"] is True, key
            assert props["RequestParameters"] == {"method.request.header.x-api-key": True}
            assert "RequestValidatorId" in props
    assert not any(method == "OPTIONS" for method, _ in methods), "CORS is off by default"


def test_router_integration_is_a_lambda_proxy_to_the_routers_live_alias(
    each_env: Synthesized,
) -> None:
    name = f"modelway-{each_env.name}-api"
    for props in _methods(each_env).values():
        integration = props["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        assert integration["IntegrationHttpMethod"] == "POST"
        assert flat(integration["Uri"]).endswith(f":function:{name}:live/invocations")
    permissions = [
        p["Properties"]
        for p in each_env.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    (router_permission,) = [
        p for p in permissions if flat(p["FunctionName"]).endswith(f":function:{name}:live")
    ]
    assert router_permission["Action"] == "lambda:InvokeFunction"
    assert flat(router_permission["SourceArn"]).endswith(f"/{each_env.name}/*/*")


def test_request_authorizer_reads_the_key_header_with_a_short_cache(
    each_env: Synthesized,
) -> None:
    ttl = environment_config(each_env.name).api.authorizer_cache_ttl_seconds
    each_env.assertions.has_resource_properties(
        "AWS::ApiGateway::Authorizer",
        {
            "Type": "REQUEST",
            "IdentitySource": "method.request.header.x-api-key",
            "AuthorizerResultTtlInSeconds": ttl,
        },
    )
    assert 0 < ttl <= 300


def test_request_validator_checks_parameters_and_body(each_env: Synthesized) -> None:
    each_env.assertions.has_resource_properties(
        "AWS::ApiGateway::RequestValidator",
        {"ValidateRequestParameters": True, "ValidateRequestBody": True},
    )


def test_stage_is_the_environment_with_tracing_logging_and_throttling(
    each_env: Synthesized,
) -> None:
    throttle = environment_config(each_env.name).api.stage_throttle
    stage = each_env.one("AWS::ApiGateway::Stage")["Properties"]
    assert stage["StageName"] == each_env.name
    assert stage["TracingEnabled"] is True
    (settings,) = stage["MethodSettings"]
    assert settings == {
        "DataTraceEnabled": False,
        "HttpMethod": "*",
        "LoggingLevel": "ERROR",
        "MetricsEnabled": True,
        "ResourcePath": "/*",
        "ThrottlingBurstLimit": throttle.burst_limit,
        "ThrottlingRateLimit": throttle.rate_limit,
    }
    access_log_group = each_env.logical_id(each_env.stack.api.access_log_group)
    destination = flat(stage["AccessLogSetting"]["DestinationArn"])
    assert destination.endswith(f":log-group:<{access_log_group}>")
    fields = json.loads(stage["AccessLogSetting"]["Format"])  # one JSON object per request
    assert fields["requestId"] == "$context.requestId"
    assert fields["status"] == "$context.status"
    assert fields["apiKeyId"] == "$context.identity.apiKeyId"


def test_usage_plan_per_tier_with_throttle_quota_and_the_stage(each_env: Synthesized) -> None:
    tiers = environment_config(each_env.name).api.usage_plans
    plans = {
        p["Properties"]["UsagePlanName"]: p["Properties"]
        for p in each_env.of_type("AWS::ApiGateway::UsagePlan").values()
    }
    assert set(plans) == {f"modelway-{each_env.name}-{tier}" for tier in tiers}
    stage_id = each_env.logical_id(each_env.stack.api.rest_api.deployment_stage)
    for tier, tier_config in tiers.items():
        plan = plans[f"modelway-{each_env.name}-{tier}"]
        assert plan["Throttle"] == {
            "BurstLimit": tier_config.burst_limit,
            "RateLimit": tier_config.rate_limit,
        }
        assert plan["Quota"] == {
            "Limit": tier_config.quota_limit,
            "Period": tier_config.quota_period,
        }
        (api_stage,) = plan["ApiStages"]
        assert api_stage["Stage"] == {"Ref": stage_id}


def test_router_knows_its_usage_plans(each_env: Synthesized) -> None:
    api = each_env.stack.api
    variables = env_vars(function_named(each_env, f"modelway-{each_env.name}-api"))
    default_plan = each_env.logical_id(api.usage_plans[api.default_tier])
    assert variables["MODELWAY_USAGE_PLAN_ID"] == {"Ref": default_plan}
    every_plan = flat(variables["MODELWAY_USAGE_PLAN_IDS"])
    for tier, plan in api.usage_plans.items():
        assert f'"{tier}":"<{each_env.logical_id(plan)}>"' in every_plan


@pytest.mark.parametrize(
    ("response_type", "status", "code"),
    [
        ("UNAUTHORIZED", "401", "unauthenticated"),
        ("ACCESS_DENIED", "403", "forbidden"),
        ("THROTTLED", "429", "throttled"),
        ("QUOTA_EXCEEDED", "429", "quota_exceeded"),
        ("REQUEST_TOO_LARGE", "413", "payload_too_large"),
        ("INTEGRATION_TIMEOUT", "504", "model_timeout"),
        ("MISSING_AUTHENTICATION_TOKEN", "404", "not_found"),
    ],
)
def test_api_gateways_own_errors_use_the_modelway_error_shape(
    dev: Synthesized, response_type: str, status: str, code: str
) -> None:
    dev.assertions.has_resource_properties(
        "AWS::ApiGateway::GatewayResponse",
        {
            "ResponseType": response_type,
            "StatusCode": status,
            "ResponseTemplates": {
                "application/json": f'{{"error":$context.error.messageString,"code":"{code}"}}'
            },
            "ResponseParameters": Match.object_like(
                {"gatewayresponse.header.Content-Type": "'application/json'"}
            ),
        },
    )


def test_throttled_callers_are_told_when_to_retry(dev: Synthesized) -> None:
    dev.assertions.has_resource_properties(
        "AWS::ApiGateway::GatewayResponse",
        {
            "ResponseType": "THROTTLED",
            "ResponseParameters": Match.object_like({"gatewayresponse.header.Retry-After": "'1'"}),
        },
    )


def test_execution_logging_has_its_account_role(each_env: Synthesized) -> None:
    each_env.assertions.resource_count_is("AWS::ApiGateway::Account", 1)


def test_the_routers_payload_limits_are_what_a_caller_meets(each_env: Synthesized) -> None:
    """Bodies the router would accept fit in Lambda's 6 MB invocation payload (binary ones
    base64-encoded), so a caller over a limit gets the router's own 413, not a gateway error;
    and the router knows which bodies API Gateway encodes."""
    from functions.core.settings import BINARY_MEDIA_TYPE
    from infra.constructs.api import BINARY_MEDIA_TYPES, LAMBDA_PAYLOAD_BYTES

    router = env_vars(function_named(each_env, f"modelway-{each_env.name}-api"))
    text_limit = int(router["MODELWAY_MAX_PAYLOAD_BYTES"])
    binary_limit = int(router["MODELWAY_MAX_BINARY_PAYLOAD_BYTES"])
    assert BINARY_MEDIA_TYPES == (BINARY_MEDIA_TYPE,)
    headroom = 256 * 1024  # the rest of the API Gateway event: headers, request context
    assert -(-binary_limit * 4 // 3) + headroom <= LAMBDA_PAYLOAD_BYTES
    assert text_limit * 1.15 + headroom <= LAMBDA_PAYLOAD_BYTES  # JSON string escaping
    batch = env_vars(function_named(each_env, f"modelway-{each_env.name}-batch"))
    assert int(batch["MODELWAY_MAX_PAYLOAD_BYTES"]) == 6 * 1024 * 1024  # SageMaker's, no Lambda hop


def test_batch_waits_for_slow_models_as_sagemaker_recommends(each_env: Synthesized) -> None:
    """SageMaker gives a model 60 s and recommends a 70 s client read timeout; the router
    keeps its 12 s (API Gateway's 29 s deadline), batch has no such deadline."""
    from functions.core.settings import Settings

    for function in ("batch", "api"):
        env = env_vars(function_named(each_env, f"modelway-{each_env.name}-{function}"))
        settings = Settings.model_validate(
            {k.removeprefix("MODELWAY_").lower(): v for k, v in env.items()
             if k.startswith("MODELWAY_") and "RUNTIME" in k}
        )  # fmt: skip
        # Batch's own client (functions.core.backends.make_batch_runtime_client), its own retries
        assert settings.batch_runtime_read_timeout_seconds == 70
        assert settings.batch_runtime_max_attempts == 1
        assert settings.runtime_read_timeout_seconds * settings.runtime_max_attempts < 29
