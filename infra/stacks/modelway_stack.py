"""One modelway environment: storage, SageMaker, the API, batch scoring, endpoint events
(autoscaling for new variants) and monitoring."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
from constructs import Construct

from infra.config import EnvironmentConfig
from infra.constructs.api import Api
from infra.constructs.batch import Batch
from infra.constructs.bundling import functions_code
from infra.constructs.endpoint_events import EndpointEvents
from infra.constructs.endpoints import Endpoints
from infra.constructs.monitoring import Monitoring
from infra.constructs.storage import ARTIFACTS_PREFIX, Storage
from infra.outputs import SETTINGS_OUTPUT

# functions.core.settings reads these (prefix MODELWAY_).
SIX_MB = 6 * 1024 * 1024
# How often the endpoint-events function reconciles inference components (their autoscaling,
# alias moves waiting for a copy): a move waits at most this long after its copy runs.
RECONCILE_EVERY = cdk.Duration.minutes(1)


class ModelwayStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"modelway {config.name}: serverless model serving (API Gateway, "
            "Lambda, SageMaker, S3, DynamoDB)",
            termination_protection=config.termination_protection,
            **kwargs,
        )
        self.config = config
        prefix = config.endpoint_prefix
        removal = cdk.RemovalPolicy.RETAIN if config.retain else cdk.RemovalPolicy.DESTROY
        cdk.Tags.of(self).add("project", "modelway")
        cdk.Tags.of(self).add("modelway:env", config.name)

        self.storage = Storage(
            self,
            "Storage",
            removal_policy=removal,
            outputs_expiration_days=config.data.outputs_expiration_days,
            uploads_expiration_days=config.data.uploads_expiration_days,
            access_logs_expiration_days=config.data.access_logs_expiration_days,
            captures_expiration_days=config.data.captures_expiration_days,
        )
        self.endpoints = Endpoints(
            self,
            "Endpoints",
            endpoint_prefix=prefix,
            settings=config.sagemaker,
            storage=self.storage,
        )
        # Each model's guardrail alarm is the control plane's (Monitoring.grant_model_alarms).
        environment = self.function_environment(rollback_alarm_names=[])
        self.function_settings = environment
        code = functions_code()
        self.api = Api(
            self,
            "Api",
            env_name=config.name,
            endpoint_prefix=prefix,
            settings=config.api,
            router=config.lambdas.api,
            authorizer=config.lambdas.authorizer,
            code=code,
            environment=environment,
            storage=self.storage,
            endpoints=self.endpoints,
            log_level=config.log_level,
            log_retention_days=config.log_retention_days,
            removal_policy=removal,
        )
        self.batch = Batch(
            self,
            "Batch",
            endpoint_prefix=prefix,
            settings=config.batch,
            code=code,
            environment=environment,
            storage=self.storage,
            endpoints=self.endpoints,
            log_level=config.log_level,
            log_retention_days=config.log_retention_days,
            removal_policy=removal,
        )
        self.endpoint_events = EndpointEvents(
            self,
            "EndpointEvents",
            endpoint_prefix=prefix,
            code=code,
            environment=environment,
            endpoints=self.endpoints,
            storage=self.storage,
            # Inference components report no state changes: reconcile on a schedule.
            reconcile_every=RECONCILE_EVERY if config.sagemaker.hosting == "components" else None,
            log_level=config.log_level,
            log_retention_days=config.log_retention_days,
            removal_policy=removal,
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            endpoint_prefix=prefix,
            settings=config.alarms,
            stage=self.api.rest_api.deployment_stage,
            functions={
                "api": self.api.router_function.function,
                "authorizer": self.api.authorizer_function.function,
                "batch": self.batch.function.function,
                "endpoint-events": self.endpoint_events.function.function,
            },
            dead_letter_queue=self.batch.dead_letter_queue,
            extra_alarms=[self.batch.dlq_alarm, self.endpoint_events.dlq_alarm],
            removal_policy=removal,
        )
        # The router's admin routes publish and move aliases, and the endpoint-events function
        # continues the deployments of pending moves: both may create the models' alarms.
        for deploying in (self.api.router_function, self.endpoint_events.function):
            self.monitoring.grant_model_alarms(deploying.role)
            for name, value in self.monitoring.model_alarm_environment().items():
                deploying.function.add_environment(name, value)
        self._outputs()

    def function_environment(self, *, rollback_alarm_names: list[str]) -> dict[str, str]:
        """What every function of this environment is told (``functions.core.settings``)."""
        sm = self.config.sagemaker
        return {
            "MODELWAY_ENV": self.config.name,
            "MODELWAY_TABLE_NAME": self.storage.table.table_name,
            "MODELWAY_BUCKET_NAME": self.storage.bucket.bucket_name,
            "MODELWAY_ARTIFACTS_PREFIX": ARTIFACTS_PREFIX,
            "MODELWAY_ENDPOINT_PREFIX": self.config.endpoint_prefix,
            "MODELWAY_SAGEMAKER_ROLE_ARN": self.endpoints.execution_role.role_arn,
            "MODELWAY_SERVING_IMAGE_URI": self.endpoints.image_uri,
            "MODELWAY_HOSTING": sm.hosting,
            "MODELWAY_COMPONENT_ACCELERATORS": str(sm.components.accelerators),
            "MODELWAY_COMPONENT_MEMORY_MB": str(sm.components.memory_mb),
            "MODELWAY_COMPONENT_MIN_COPIES": str(sm.components.min_copies),
            "MODELWAY_COMPONENT_MAX_COPIES": str(sm.components.max_copies),
            "MODELWAY_COMPONENT_TARGET_CONCURRENCY": str(sm.components.target_concurrency),
            "MODELWAY_INSTANCE_TYPE": sm.instance_type,
            "MODELWAY_INITIAL_INSTANCE_COUNT": str(sm.initial_instance_count),
            "MODELWAY_MIN_INSTANCE_COUNT": str(sm.min_instance_count),
            "MODELWAY_MAX_INSTANCE_COUNT": str(sm.max_instance_count),
            "MODELWAY_TARGET_INVOCATIONS_PER_INSTANCE": str(sm.target_invocations_per_instance),
            "MODELWAY_SCALE_IN_COOLDOWN_SECONDS": str(sm.scale_in_cooldown_seconds),
            "MODELWAY_SCALE_OUT_COOLDOWN_SECONDS": str(sm.scale_out_cooldown_seconds),
            "MODELWAY_DEPLOY_TRAFFIC_ROUTING": sm.deploy_traffic_routing,
            "MODELWAY_DEPLOY_CANARY_PERCENT": str(sm.deploy_canary_percent),
            "MODELWAY_DEPLOY_WAIT_INTERVAL_SECONDS": str(sm.deploy_wait_interval_seconds),
            "MODELWAY_ROLLBACK_ALARM_NAMES": json.dumps(rollback_alarm_names),
            "MODELWAY_MAX_PAYLOAD_BYTES": str(SIX_MB),
            "MODELWAY_KEY_CACHE_TTL_SECONDS": str(self.config.api.key_cache_ttl_seconds),
            "MODELWAY_REQUIRE_APPROVAL": "true" if self.config.require_approval else "false",
        }

    def _outputs(self) -> None:
        api = self.api
        outputs: dict[str, tuple[str, str]] = {
            "ApiUrl": (api.url, "Base URL of the API stage (v2/health/ready needs no key)"),
            "TableName": (self.storage.table.table_name, "DynamoDB registry table"),
            "BucketName": (
                self.storage.bucket.bucket_name,
                "Data bucket (artifacts/, uploads/, inputs/, outputs/)",
            ),
            "UsagePlanIds": (
                self.to_json_string(
                    {tier: plan.usage_plan_id for tier, plan in api.usage_plans.items()}
                ),
                "Usage plan id per tier (JSON)",
            ),
            "DefaultUsagePlanId": (
                api.usage_plans[api.default_tier].usage_plan_id,
                f"Usage plan new keys join ({api.default_tier})",
            ),
            "ServingImageUri": (self.endpoints.image_uri, "SageMaker serving image"),
            "SageMakerRoleArn": (
                self.endpoints.execution_role.role_arn,
                "Execution role of the model endpoints",
            ),
            "EndpointPrefix": (self.config.endpoint_prefix, "Prefix of every SageMaker name"),
            "RollbackAlarms": (
                f"{self.config.endpoint_prefix}-{{model}}-rollback",
                "Deployment guardrail alarm of each model (created at its first guarded update)",
            ),
            "DashboardName": (
                self.monitoring.dashboard.dashboard_name,
                "CloudWatch dashboard",
            ),
            # What the router runs with, for the CLI: python -m infra.outputs FILE.
            SETTINGS_OUTPUT: (
                self.to_json_string(
                    {
                        **self.function_settings,
                        **self.monitoring.model_alarm_environment(),
                        "MODELWAY_REGION": self.region,
                        "MODELWAY_USAGE_PLAN_ID": api.usage_plans[api.default_tier].usage_plan_id,
                        # So that `modelway keys revoke|rotate` flushes the stage's cached
                        # authorizer answers, as the router does.
                        "MODELWAY_REST_API_ID": api.rest_api.rest_api_id,
                        "MODELWAY_STAGE_NAME": api.stage_name,
                        "MODELWAY_USAGE_PLAN_IDS": self.to_json_string(
                            {tier: p.usage_plan_id for tier, p in api.usage_plans.items()}
                        ),
                    }
                ),
                "MODELWAY_* settings of this environment (JSON), for the modelway CLI",
            ),
        }
        for name, (value, description) in outputs.items():
            cdk.CfnOutput(self, name, value=value, description=description)
