"""Batch tests run on both backends: the local ones (SQLite + a directory) and the AWS ones
(DynamoDB + a versioned S3 bucket) under moto, with a fake runtime client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.core.settings import Settings
from tests.aws_testkit import BUCKET, REGION, TABLE
from tests.batch.batch_testkit import Stack, publish, toy_model
from tests.runtime_testkit import FakeRuntime


@pytest.fixture(params=["local", "aws"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stack(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
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

    # moto's mock, table and bucket (``tests.aws_testkit``); batch reads uploads by version.
    registry = request.getfixturevalue("aws_registry")
    store = request.getfixturevalue("aws_store")
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    settings = Settings(
        env="test", home=tmp_path / "home", bucket_name=BUCKET, table_name=TABLE, region=REGION
    )
    yield _with_model(
        Stack(
            settings=settings,
            registry=registry,
            store=store,
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
