"""The one place configuration is read (environment variables prefixed ``MODELWAY_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from functions.core.naming import ENV_NAME_PATTERN

# SageMaker real-time endpoints and Lambda proxy integrations both cap a payload at 6 MB.
SIX_MB = 6 * 1024 * 1024
# The media type of the binary tensor extension's bodies: the only one the REST API passes to
# the router base64-encoded (its binary media types); JSON travels as text.
BINARY_MEDIA_TYPE = "application/octet-stream"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELWAY_", extra="ignore")

    # "local" runs over SQLite + a directory + the local model server; any other name
    # (dev, staging, prod) is an AWS environment whose resource names come from the stack.
    # No '-' in the name (``functions.core.naming``).
    env: str = Field(default="local", pattern=ENV_NAME_PATTERN)
    home: Path = Field(default_factory=lambda: Path.cwd() / ".modelway")

    # Approval gate (cdk.json ``requireApproval``; prod): aliases move only to versions an
    # admin other than their publisher approved (``functions.core.approval``).
    require_approval: bool = False

    # Local backend.
    serving_url: str = "http://127.0.0.1:8080"

    # AWS backend (the stack sets these on the Lambda functions).
    region: str | None = None
    table_name: str = "modelway-registry"
    bucket_name: str = "modelway-data"
    artifacts_prefix: str = "artifacts/"
    usage_plan_id: str | None = None
    # The REST API and stage, whose cached authorizer answers a revoke or rotate flushes.
    rest_api_id: str | None = None
    stage_name: str | None = None
    sagemaker_role_arn: str | None = None
    serving_image_uri: str | None = None
    instance_type: str = "ml.g5.xlarge"
    initial_instance_count: int = 1
    # Deployment guardrails: each model's own rollback alarm (``deploy/guardrail.py``) trips
    # at this many 5xx for the model in a minute; rollback_alarm_names are watched in addition.
    rollback_alarm_names: list[str] = Field(default_factory=list)
    rollback_5xx_count: int = Field(default=10, ge=1)
    alarm_topic_arn: str | None = None
    # Every usage plan of the stage by tier (JSON); usage_plan_id is the default tier's.
    usage_plan_ids: dict[str, str] = Field(default_factory=dict)
    # How versions are hosted (``functions.core.deploy``): "variants", a production variant
    # with its own instances per version kept; or "components", one instance fleet per model
    # and a SageMaker inference component per version packed onto it, where versions no alias
    # points at scale to zero copies.
    hosting: Literal["variants", "components"] = "variants"
    # One copy of a version's inference component: accelerators (0 on a CPU instance type)
    # and memory it reserves; how many copies it may scale to, and keeps while an alias points
    # at it; the concurrent requests per copy target tracking aims at.
    component_accelerators: int = Field(default=1, ge=0)
    component_memory_mb: int = Field(default=4096, ge=128)
    component_max_copies: int = Field(default=4, ge=1)
    component_min_copies: int = Field(default=1, ge=1)
    component_target_concurrency: int = Field(default=4, ge=1)
    # Autoscaling of the instances: each variant's (target tracking on invocations per
    # instance) or, with components, the fleet's (SageMaker managed instance scaling, which
    # may go down to 0 instances when no component has a copy).
    min_instance_count: int = Field(default=1, ge=0)
    max_instance_count: int = Field(default=1, ge=1)
    target_invocations_per_instance: int = Field(default=100, ge=1)
    scale_in_cooldown_seconds: int = Field(default=600, ge=0)
    scale_out_cooldown_seconds: int = Field(default=120, ge=0)
    # Server-side encryption asked for on every S3 write (a KMS key id only with aws:kms).
    s3_sse: Literal["AES256", "aws:kms"] = "AES256"
    s3_kms_key_id: str | None = None
    # Publishing and alias moves create SageMaker models and update the model's endpoint.
    # Off where something else serves the versions (the over-the-wire test's local server).
    sagemaker_deploy: bool = True
    # SageMaker deployment guardrails for endpoint updates that keep the variant names.
    deploy_traffic_routing: Literal["ALL_AT_ONCE", "CANARY", "LINEAR"] = "ALL_AT_ONCE"
    # SageMaker: a canary is at most 50% of the fleet; a linear step 10-50%.
    deploy_canary_percent: int = Field(default=10, ge=1, le=50)
    deploy_wait_interval_seconds: int = Field(default=300, ge=0, le=3600)
    deploy_termination_wait_seconds: int = Field(default=300, ge=0, le=3600)
    deploy_max_execution_timeout_seconds: int = Field(default=3600, ge=600, le=28800)
    # Sends the AWS backend's sagemaker-runtime calls elsewhere (the local model server in the
    # over-the-wire test); unset on AWS.
    runtime_endpoint_url: str | None = None

    # Shared.
    endpoint_prefix: str | None = None
    max_payload_bytes: int = SIX_MB
    # Bodies of BINARY_MEDIA_TYPE reach a Lambda router base64-encoded (4/3 their size) inside
    # Lambda's 6 MB invocation payload, so the stack gives them a lower limit; None: the same.
    max_binary_payload_bytes: int | None = None
    key_cache_ttl_seconds: float = 30.0
    registry_cache_ttl_seconds: float = 5.0
    # Every inference's deadline: API Gateway's integration timeout (a client may ask for less
    # with X-Request-Timeout, see functions/api/deadlines.py).
    request_timeout_seconds: float = Field(default=29.0, gt=0)
    runtime_connect_timeout_seconds: float = 2.0
    # Two attempts of 12 s stay inside API Gateway's 29 s integration timeout.
    runtime_read_timeout_seconds: float = 12.0
    runtime_max_attempts: int = 2
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Batch scoring (functions/batch): S3 uploads under inputs/ scored record by record.
    batch_max_records_per_request: int = Field(default=1024, ge=1)
    # SageMaker lets a model answer for up to 60 s and recommends a client read timeout of 70 s;
    # batch has no API Gateway deadline, so it waits that long instead of the router's 12 s
    # (a micro-batch of 1,024 sentences takes ~10 s on two CPU cores), and retries with its
    # own backoff (batch_max_attempts) rather than botocore's on top.
    batch_runtime_read_timeout_seconds: float = Field(default=70.0, gt=0)
    batch_runtime_max_attempts: int = Field(default=1, ge=1)
    # Tries per micro-batch when the endpoint fails (exponential backoff between them).
    batch_max_attempts: int = Field(default=5, ge=1)
    batch_backoff_base_seconds: float = 0.5
    batch_backoff_max_seconds: float = 20.0
    # Time kept back from the Lambda deadline to finish one request and checkpoint.
    batch_time_margin_seconds: float = 90.0
    # Conservative scoring rate used to guess, before measuring, whether a file finishes in
    # the invocation at hand (bytes of input per second).
    batch_estimated_bytes_per_second: int = 1_000_000
    # A file continues in at most this many invocations before its job fails.
    batch_max_slices: int = Field(default=12, ge=1)

    @model_validator(mode="after")
    def _variants_keep_an_instance(self) -> Settings:
        if self.hosting == "variants" and self.min_instance_count < 1:
            raise ValueError("variants hosting needs min_instance_count >= 1")
        return self

    @model_validator(mode="after")
    def _linear_steps_of_ten_percent_or_more(self) -> Settings:
        if self.deploy_traffic_routing == "LINEAR" and self.deploy_canary_percent < 10:
            raise ValueError("LINEAR traffic routing needs deploy_canary_percent 10..50")
        return self

    def payload_limit(self, content_type: str | None) -> int:
        """The largest request body accepted with this ``Content-Type``."""
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        if media_type == BINARY_MEDIA_TYPE and self.max_binary_payload_bytes is not None:
            return self.max_binary_payload_bytes
        return self.max_payload_bytes

    @property
    def is_local(self) -> bool:
        return self.env == "local"

    @property
    def registry_path(self) -> Path:
        return self.home / "registry.db"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def data_dir(self) -> Path:
        """The local stand-in for the data bucket (batch inputs/outputs)."""
        return self.home / "data"

    @property
    def resolved_endpoint_prefix(self) -> str:
        return self.endpoint_prefix or f"modelway-{self.env}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
