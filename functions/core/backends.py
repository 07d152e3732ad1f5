"""Builds the registry, artifact store and runtime client that the settings ask for.

Imports are lazy so that a cold start loads only the backend in use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from functions.core.artifacts.base import ArtifactStore
    from functions.core.deploy.base import Deployer
    from functions.core.keys import KeyGateway
    from functions.core.registry.base import Registry
    from functions.core.runtime.base import RuntimeClient
    from functions.core.settings import Settings


def make_registry(settings: Settings) -> Registry:
    if settings.is_local:
        from functions.core.registry.local import SqliteRegistry

        return SqliteRegistry(path=settings.registry_path)
    from functions.core.registry.dynamodb import DynamoDBRegistry

    return DynamoDBRegistry(table_name=settings.table_name, region=settings.region)


def make_artifact_store(settings: Settings) -> ArtifactStore:
    if settings.is_local:
        from functions.core.artifacts.local import DirectoryArtifactStore

        return DirectoryArtifactStore(
            artifacts_dir=settings.artifacts_dir, data_dir=settings.data_dir
        )
    from functions.core.artifacts.s3 import S3ArtifactStore

    return S3ArtifactStore(
        bucket=settings.bucket_name,
        artifacts_prefix=settings.artifacts_prefix,
        region=settings.region,
        sse=settings.s3_sse,
        kms_key_id=settings.s3_kms_key_id,
    )


def make_runtime_client(settings: Settings) -> RuntimeClient:
    from functions.core.runtime.sagemaker import SageMakerRuntimeClient

    return SageMakerRuntimeClient(
        endpoint_url=settings.serving_url if settings.is_local else settings.runtime_endpoint_url,
        region=settings.region,
        connect_timeout=settings.runtime_connect_timeout_seconds,
        read_timeout=settings.runtime_read_timeout_seconds,
        max_attempts=settings.runtime_max_attempts,
        signed=not settings.is_local,
    )


def make_key_gateway(settings: Settings) -> KeyGateway | None:
    """API Gateway usage-plan keys on AWS; none locally (or where no usage plan is set)."""
    if settings.is_local or not settings.usage_plan_id:
        return None
    from functions.core.gateway import ApiGatewayKeys

    return ApiGatewayKeys.from_settings(settings)


def make_deployer(settings: Settings) -> Deployer | None:
    """SageMaker models and endpoints on AWS; none locally, where the model server serves
    every version on disk (``functions.core.deploy.rollout`` then only moves the registry)."""
    if settings.is_local or not settings.sagemaker_deploy:
        return None
    from functions.core.deploy.sagemaker import SageMakerDeployer

    return SageMakerDeployer.from_settings(settings)
