"""One contract, two backends: every test here runs against the local implementations
(SQLite, a directory) and the AWS ones (DynamoDB, S3) under moto.

Both backends are plain imports: a missing or renamed module fails the suite, never skips the
AWS half quietly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"
TABLE = "modelway-contract"
BUCKET = "modelway-contract-data"


@pytest.fixture(params=["local", "aws"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def aws(backend: str, aws_env: None) -> Iterator[None]:
    """moto's mock for the whole test (one mock shared by the registry and the store)."""
    if backend != "aws":
        yield None
        return
    from moto import mock_aws

    with mock_aws():
        yield None


@pytest.fixture
def registry(backend: str, aws: None, tmp_path: Path) -> Iterator[Any]:
    if backend == "local":
        from functions.core.registry.sqlite import SqliteRegistry

        local = SqliteRegistry(path=tmp_path / "registry.db")
        yield local
        local.close()
        return
    from functions.core.registry.dynamodb import DynamoDBRegistry, create_table

    create_table(table_name=TABLE, region=REGION)
    yield DynamoDBRegistry(table_name=TABLE, region=REGION)


@pytest.fixture
def store(backend: str, aws: None, tmp_path: Path) -> Any:
    if backend == "local":
        from functions.core.artifacts.local import DirectoryArtifactStore

        return DirectoryArtifactStore(
            artifacts_dir=tmp_path / "artifacts", data_dir=tmp_path / "data"
        )
    import boto3

    from functions.core.artifacts.s3 import S3ArtifactStore

    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    return S3ArtifactStore(bucket=BUCKET, artifacts_prefix="artifacts/", region=REGION)
