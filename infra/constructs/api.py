"""The HTTPS way in: API Gateway (REST, regional) in front of the router Lambda.

* Every route needs an API key but the two health checks. The key is checked by the
  REQUEST authorizer (``x-api-key``, results cached for a short TTL), which also hands API
  Gateway the key to meter (API key source ``AUTHORIZER``): usage plans per tier throttle and
  cap each key.
* Errors API Gateway produces itself (401, 403, 413, 429, 504 …) are rewritten to modelway's
  ``{"error": …, "code": …}`` shape, like every answer of the router.
* The router's integration names the function by ARN built from its name, not by reference:
  the router must know the usage plans' ids, and a usage plan depends on the stage, which
  depends on the deployment, which depends on the methods: a reference would close the loop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import ApiConfig, FunctionConfig
from infra.constructs.endpoints import Endpoints
from infra.constructs.lambdas import ModelwayFunction, retention
from infra.constructs.nag import acknowledge, allow
from infra.constructs.storage import ARTIFACTS_PREFIX, CAPTURES_PREFIX, UPLOADS_PREFIX, Storage

API_KEY_HEADER = "x-api-key"
# The bodies the API treats as binary: the Open Inference Protocol's binary tensor extension
# (functions.core.settings.BINARY_MEDIA_TYPE). Only these reach the router base64-encoded;
# JSON travels as text, so it is not inflated by a third on its way through Lambda.
BINARY_MEDIA_TYPES = ("application/octet-stream",)
# Lambda's synchronous invocation payload (the whole API Gateway event) is 6 MB. The router's
# own limits sit below what fits in it, so a caller over them gets the router's 413 (JSON
# error) rather than a gateway failure: a JSON body up to 5 MiB leaves 1 MiB for the event
# around it and JSON string escaping; a binary body up to 4 MiB is 5.33 MiB in base64.
LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024
ROUTER_MAX_PAYLOAD_BYTES = 5 * 1024 * 1024
ROUTER_MAX_BINARY_PAYLOAD_BYTES = 4 * 1024 * 1024
HEALTH_ROUTES = ("live", "ready")
# The API's page and document (functions/api/docs.py): GET only, no key.
DOCS_RESOURCE = "docs"
OPENAPI_RESOURCE = "openapi.json"
# API Gateway's own access log variables, one JSON object per request.
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "httpMethod": "$context.httpMethod",
    "path": "$context.path",
    "resourcePath": "$context.resourcePath",
    "protocol": "$context.protocol",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "apiKeyId": "$context.identity.apiKeyId",
    "keyId": "$context.authorizer.keyId",
    "authorizerStatus": "$context.authorizer.status",
    "authorizerLatency": "$context.authorizer.latency",
    "errorType": "$context.error.responseType",
    "errorMessage": "$context.error.message",
    "xrayTraceId": "$context.xrayTraceId",
}
# (response type, status, code, extra headers) for the errors API Gateway answers itself.
GATEWAY_ERRORS: tuple[tuple[apigw.ResponseType, str, str, dict[str, str]], ...] = (
    (apigw.ResponseType.UNAUTHORIZED, "401", "unauthenticated", {}),
    (apigw.ResponseType.ACCESS_DENIED, "403", "forbidden", {}),
    (apigw.ResponseType.INVALID_API_KEY, "403", "forbidden", {}),
    (apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, "404", "not_found", {}),
    (apigw.ResponseType.BAD_REQUEST_PARAMETERS, "400", "invalid_request", {}),
    (apigw.ResponseType.BAD_REQUEST_BODY, "400", "invalid_request", {}),
    (apigw.ResponseType.REQUEST_TOO_LARGE, "413", "payload_too_large", {}),
    (apigw.ResponseType.THROTTLED, "429", "throttled", {"Retry-After": "'1'"}),
    (apigw.ResponseType.QUOTA_EXCEEDED, "429", "quota_exceeded", {}),
    (apigw.ResponseType.INTEGRATION_TIMEOUT, "504", "model_timeout", {"Retry-After": "'5'"}),
    (apigw.ResponseType.AUTHORIZER_FAILURE, "500", "internal_error", {}),
    (apigw.ResponseType.DEFAULT_4_XX, "", "invalid_request", {}),
    (apigw.ResponseType.DEFAULT_5_XX, "", "internal_error", {}),
)


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        endpoint_prefix: str,
        settings: ApiConfig,
        router: FunctionConfig,
        authorizer: FunctionConfig,
        code: lambda_.Code,
        environment: Mapping[str, str],
        storage: Storage,
        endpoints: Endpoints,
        log_level: str,
        log_retention_days: int,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stage_name = env_name
        self.authorizer_function = ModelwayFunction(
            self,
            "Authorizer",
            function_name=f"{endpoint_prefix}-authorizer",
            handler="functions.authorizer.handler.handler",
            code=code,
            description="REQUEST authorizer: checks x-api-key against the registry",
            memory_mb=authorizer.memory_mb,
            timeout=cdk.Duration.seconds(authorizer.timeout_seconds),
            environment=environment,
            service_name="modelway-authorizer",
            log_level=log_level,
            log_retention_days=log_retention_days,
            removal_policy=removal_policy,
            published=True,
            snap_start=authorizer.snap_start,
        )
        storage.grant_table(self.authorizer_function.role, write=False)

        self.router_function = ModelwayFunction(
            self,
            "Router",
            function_name=f"{endpoint_prefix}-api",
            handler="functions.api.handler.handler",
            code=code,
            description="Router: Open Inference Protocol data plane and the control plane",
            memory_mb=router.memory_mb,
            timeout=cdk.Duration.seconds(router.timeout_seconds),
            environment=environment,
            service_name="modelway-api",
            log_level=log_level,
            log_retention_days=log_retention_days,
            removal_policy=removal_policy,
            published=True,
            snap_start=router.snap_start,
        )
        self._grant_router(self.router_function.role, storage=storage, endpoints=endpoints)
        fn = self.router_function.function
        fn.add_environment("MODELWAY_MAX_PAYLOAD_BYTES", str(ROUTER_MAX_PAYLOAD_BYTES))
        fn.add_environment(
            "MODELWAY_MAX_BINARY_PAYLOAD_BYTES", str(ROUTER_MAX_BINARY_PAYLOAD_BYTES)
        )

        self.access_log_group = logs.LogGroup(
            self,
            "AccessLogs",
            retention=retention(log_retention_days),
            removal_policy=removal_policy,
        )
        cors = (
            apigw.CorsOptions(
                allow_origins=settings.cors_allow_origins,
                allow_headers=["Content-Type", API_KEY_HEADER, "Inference-Header-Content-Length"],
                expose_headers=["x-model-version"],
            )
            if settings.cors_allow_origins
            else None
        )
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=f"{endpoint_prefix}-api",
            description=f"modelway ({env_name}): Open Inference Protocol API with keys",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.AUTHORIZER,
            # Binary tensor bodies pass base64-encoded, untouched (Mangum decodes them);
            # everything else is text. Binary responses need the caller's Accept to name it.
            binary_media_types=list(BINARY_MEDIA_TYPES),
            default_cors_preflight_options=cors,
            # Execution logging needs the account's API Gateway logging role. That setting is
            # one per account and region, shared with any other stack there: keep the role
            # when this environment goes, or their logging would break.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=cdk.RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=env_name,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # bodies are tensors and keys: keep them out of logs
                throttling_rate_limit=settings.stage_throttle.rate_limit,
                throttling_burst_limit=settings.stage_throttle.burst_limit,
                access_log_destination=apigw.LogGroupLogDestination(self.access_log_group),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT)),
            ),
        )
        acknowledge(
            self.rest_api,
            rule="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            reason="API Gateway's account-level logging role: the AWS managed policy is the "
            "documented one and covers only CloudWatch Logs delivery.",
        )
        acknowledge(
            self.rest_api,
            rule="AwsSolutions-COG4",
            reason="Callers are programs holding modelway API keys, checked by the REQUEST "
            "authorizer against hashed keys in the registry; there is no Cognito user pool.",
        )
        acknowledge(
            self.rest_api,
            rule="AwsSolutions-APIG3",
            reason="No AWS WAF web ACL by default: per-key throttling and quotas come from the "
            "usage plans, and a web ACL can be associated per account when one exists.",
        )

        self.authorizer = apigw.RequestAuthorizer(
            self,
            "KeyAuthorizer",
            authorizer_name=f"{endpoint_prefix}-keys",
            # The alias: CDK grants API Gateway the invoke permission on it.
            handler=self.authorizer_function.invoked,
            identity_sources=[apigw.IdentitySource.header(API_KEY_HEADER)],
            results_cache_ttl=cdk.Duration.seconds(settings.authorizer_cache_ttl_seconds),
        )
        self.request_validator = apigw.RequestValidator(
            self,
            "Validator",
            rest_api=self.rest_api,
            request_validator_name="parameters-and-body",
            validate_request_parameters=True,
            validate_request_body=True,
        )
        self._add_routes()
        self._add_gateway_responses()
        self._add_router_permission()

        self.usage_plans: dict[str, apigw.UsagePlan] = {}
        for tier, plan in settings.usage_plans.items():
            self.usage_plans[tier] = self.rest_api.add_usage_plan(
                f"UsagePlan-{tier}",
                name=f"{endpoint_prefix}-{tier}",
                description=f"modelway {env_name} '{tier}' tier",
                throttle=apigw.ThrottleSettings(
                    rate_limit=plan.rate_limit, burst_limit=plan.burst_limit
                ),
                quota=apigw.QuotaSettings(
                    limit=plan.quota_limit, period=apigw.Period[plan.quota_period]
                ),
                api_stages=[
                    apigw.UsagePlanPerApiStage(
                        api=self.rest_api, stage=self.rest_api.deployment_stage
                    )
                ],
            )
        self.default_tier = settings.default_tier
        self._configure_router_keys()

    # Routes -------------------------------------------------------------------------------
    def _add_routes(self) -> None:
        router_arn = self.router_function.arn_from_name
        self.integration = apigw.Integration(
            type=apigw.IntegrationType.AWS_PROXY,
            integration_http_method="POST",
            uri=f"arn:{cdk.Aws.PARTITION}:apigateway:{cdk.Aws.REGION}:lambda:path"
            f"/2015-03-31/functions/{router_arn}/invocations",
        )
        protected: dict[str, Any] = {
            "authorizer": self.authorizer,
            "authorization_type": apigw.AuthorizationType.CUSTOM,
            "api_key_required": True,
            "request_validator": self.request_validator,
            "request_parameters": {f"method.request.header.{API_KEY_HEADER}": True},
        }
        root = self.rest_api.root
        v2 = root.add_resource("v2")
        health = v2.add_resource("health")
        # API Gateway matches the most specific resource first and does not fall back to a
        # parent's greedy path, so each explicit level gets its own catch-all.
        for resource in (root, v2, health):
            resource.add_resource("{proxy+}").add_method("ANY", self.integration, **protected)
        v2.add_method("ANY", self.integration, **protected)  # GET /v2: server metadata
        for route in HEALTH_ROUTES:
            self._add_public_get(
                health.add_resource(route),
                reason="Liveness and readiness are public by design (probes carry no key) and "
                "reveal nothing else; every other route needs a key and the authorizer.",
            )
        docs = root.add_resource(DOCS_RESOURCE)
        why = (
            "The API's documentation page, its static assets and its OpenAPI document are "
            "public by design: they describe the API, the same for every caller, and hold "
            "nothing of a tenant's; trying a route from the page still needs a key."
        )
        for resource in (docs, docs.add_resource("{proxy+}"), root.add_resource(OPENAPI_RESOURCE)):
            self._add_public_get(resource, reason=why)

    def _add_public_get(self, resource: apigw.IResource, *, reason: str) -> None:
        method = resource.add_method(
            "GET",
            self.integration,
            authorization_type=apigw.AuthorizationType.NONE,
            api_key_required=False,
        )
        acknowledge(method, rule="AwsSolutions-APIG4", reason=reason)

    def _add_gateway_responses(self) -> None:
        for response_type, status, code, headers in GATEWAY_ERRORS:
            self.rest_api.add_gateway_response(
                response_type.response_type.title().replace("_", ""),
                type=response_type,
                status_code=status or None,
                response_headers={"Content-Type": "'application/json'", **headers},
                templates={
                    "application/json": f'{{"error":$context.error.messageString,"code":"{code}"}}'
                },
            )

    def _add_router_permission(self) -> None:
        # On the alias the integration invokes (a permission on the unqualified function
        # would not cover it); by name, like the integration, to keep the loop open.
        lambda_.CfnPermission(
            self,
            "InvokeRouter",
            action="lambda:InvokeFunction",
            function_name=self.router_function.arn_from_name,
            principal="apigateway.amazonaws.com",
            source_arn=self.rest_api.arn_for_execute_api(stage=self.stage_name),
        )

    # Router permissions -------------------------------------------------------------------
    def _grant_router(self, role: iam.IRole, *, storage: Storage, endpoints: Endpoints) -> None:
        storage.grant_table(role, write=True)
        storage.grant_objects(
            role,
            prefix=UPLOADS_PREFIX,
            # The bucket is versioned: registering reads and copies the upload's version it
            # verified (HeadObject, GetObject and CopyObject/UploadPartCopy naming VersionId).
            actions=["s3:GetObject", "s3:GetObjectVersion"],
            reason="Registering a version reads the artifact a caller uploaded under uploads/ "
            "(the exact version it verifies) and copies it server-side into artifacts/.",
        )
        storage.grant_objects(
            role,
            prefix=ARTIFACTS_PREFIX,
            actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"],
            reason="Publishing writes a version's model.tar.gz under artifacts/ (and removes "
            "it again when the publish fails).",
        )
        storage.grant_objects(
            role,
            prefix=CAPTURES_PREFIX,
            actions=["s3:PutObject", "s3:GetObject"],
            reason="Request capture writes sampled requests and answers under captures/ (one "
            "object per batch, named by time), and the compare report reads them back.",
        )
        storage.grant_list(
            role,
            prefixes=[UPLOADS_PREFIX, ARTIFACTS_PREFIX, CAPTURES_PREFIX],
            reason="Listing under uploads/, artifacts/ and captures/ only: a missing upload is "
            "a 404 (the caller's mistake), not a 403, and a report lists a day's captures.",
        )
        endpoints.grant_invoke(role)
        endpoints.grant_manage(role)
        # POST /v1/models/{m}/versions, .../approve and .../reject write the mirror.
        endpoints.grant_model_registry(role)

    def _configure_router_keys(self) -> None:
        """Tells the router its usage plans and lets it put keys on them."""
        role = self.router_function.role
        fn = self.router_function.function
        plan_ids = {tier: plan.usage_plan_id for tier, plan in self.usage_plans.items()}
        fn.add_environment("MODELWAY_USAGE_PLAN_ID", plan_ids[self.default_tier])
        fn.add_environment("MODELWAY_USAGE_PLAN_IDS", cdk.Stack.of(self).to_json_string(plan_ids))
        fn.add_environment("MODELWAY_REST_API_ID", self.rest_api.rest_api_id)
        fn.add_environment("MODELWAY_STAGE_NAME", self.stage_name)
        region = cdk.Aws.REGION
        base = f"arn:{cdk.Aws.PARTITION}:apigateway:{region}::"
        allow(role, actions=["apigateway:POST"], resources=[f"{base}/apikeys"])
        allow(
            role,
            actions=["apigateway:GET", "apigateway:DELETE"],
            resources=[f"{base}/apikeys/*"],
            wildcard_reason="API keys get ids generated when the router creates them; it "
            "reads and deletes (revokes, rotates) the keys it created.",
        )
        allow(
            role,
            actions=["apigateway:PUT", "apigateway:POST"],
            resources=[f"{base}/tags/*"],
            conditions={"ForAllValues:StringEquals": {"aws:TagKeys": ["modelway:key_id"]}},
            wildcard_reason="Tagging a new API key with its modelway key id, and only that "
            "tag key (the condition).",
        )
        allow(
            role,
            actions=["apigateway:POST"],
            resources=[f"{base}/usageplans/{plan_id}/keys" for plan_id in plan_ids.values()],
        )
        allow(
            role,
            actions=["apigateway:DELETE"],
            resources=[f"{base}/usageplans/{plan_id}/keys/*" for plan_id in plan_ids.values()],
            wildcard_reason="Taking a key off this stage's usage plans (revoke, rotate): the "
            "API key ids are generated when the router creates them.",
        )
        # A revoke or rotate flushes the authorizer answers this stage caches.
        allow(
            role,
            actions=["apigateway:DELETE"],
            resources=[
                f"{base}/restapis/{self.rest_api.rest_api_id}/stages/{self.stage_name}"
                "/cache/authorizers"
            ],
        )

    @property
    def url(self) -> str:
        return self.rest_api.url
