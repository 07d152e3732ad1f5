"""The one place configuration is read (environment variables prefixed ``MODELWAY_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# SageMaker real-time endpoints and Lambda proxy integrations both cap a payload at 6 MB.
SIX_MB = 6 * 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELWAY_", extra="ignore")

    # "local" runs over SQLite + a directory + the local model server; any other name
    # (dev, staging, prod) is an AWS environment whose resource names come from the stack.
    env: str = "local"
    home: Path = Field(default_factory=lambda: Path.cwd() / ".modelway")

    # Local backend.
    serving_url: str = "http://127.0.0.1:8080"

    # AWS backend (the stack sets these on the Lambda functions).
    region: str | None = None
    table_name: str = "modelway-registry"
    bucket_name: str = "modelway-data"
    artifacts_prefix: str = "artifacts/"
    usage_plan_id: str | None = None
    sagemaker_role_arn: str | None = None
    serving_image_uri: str | None = None
    instance_type: str = "ml.g5.xlarge"
    initial_instance_count: int = 1
    rollback_alarm_names: list[str] = Field(default_factory=list)

    # Shared.
    endpoint_prefix: str | None = None
    max_payload_bytes: int = SIX_MB
    key_cache_ttl_seconds: float = 30.0
    registry_cache_ttl_seconds: float = 5.0
    runtime_connect_timeout_seconds: float = 2.0
    runtime_read_timeout_seconds: float = 30.0
    runtime_max_attempts: int = 2
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

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
