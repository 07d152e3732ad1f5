"""Batch tests run on both backends: the local ones (SQLite + a directory) and the AWS ones
(DynamoDB + a versioned S3 bucket) under moto, with a fake runtime client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.core.settings import Settings
from tests.batch.batch_testkit import Stack, publish, toy_model
from tests.runtime_testkit import FakeRuntime

REGION = "us-east-1"
TABLE = "modelway-batch-test"
BUCKET = "modelway-batch-test-data"


@pytest.fixture(params=["local", "aws"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stack(backend: str, aws_env: None, tmp_path: Path) -> Iterator[Stack]:
    """A published model ``toy`` (versions 1 and 2, alias default → 1) over ``backend``."""
    if backend == "local":
        from functions.core.artifacts.local import DirectoryArtifactStore
        from functions.core.registry.sqlite import SqliteRegistry

        settings = Settings(env="local", home=tmp_path / "home")
        registry = SqliteRegistry(path=settings.registry_path)
        store = DirectoryArtifactStore(
            artifacts_dir=settings.artifacts_dir, data_dir=settings.data_dir
        )
        yield _with_model(Stack(settings=settings, registry=registry, store=store,
                                runtime=FakeRuntime(answer=toy_model())))  # fmt: skip
        registry.close()
        return

    import boto3
    from moto import mock_aws

    from functions.core.artifacts.s3 import S3ArtifactStore
    from functions.core.registry.dynamodb import DynamoDBRegistry, create_table

    with mock_aws():
        settings = Settings(
            env="test", home=tmp_path / "home", bucket_name=BUCKET, table_name=TABLE, region=REGION
        )
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        create_table(table_name=TABLE, region=REGION)
        yield _with_model(
            Stack(
                settings=settings,
                registry=DynamoDBRegistry(table_name=TABLE, region=REGION),
                store=S3ArtifactStore(bucket=BUCKET, region=REGION),
                runtime=FakeRuntime(answer=toy_model()),
                s3=s3,
            )
        )


def _with_model(stack: Stack) -> Stack:
    publish(stack.registry, version=1)
    publish(stack.registry, version=2)
    stack.registry.set_alias(model="toy", alias="default", version=1, actor="test")
    return stack


@pytest.fixture
def local_stack(tmp_path: Path) -> Iterator[Stack]:
    """The local backend only, for tests about local behaviour or pure logic."""
    from functions.core.artifacts.local import DirectoryArtifactStore
    from functions.core.registry.sqlite import SqliteRegistry

    settings = Settings(env="local", home=tmp_path / "home")
    registry = SqliteRegistry(path=settings.registry_path)
    store = DirectoryArtifactStore(artifacts_dir=settings.artifacts_dir, data_dir=settings.data_dir)
    yield _with_model(Stack(settings=settings, registry=registry, store=store,
                            runtime=FakeRuntime(answer=toy_model())))  # fmt: skip
    registry.close()
