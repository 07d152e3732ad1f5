"""The AWS backends under moto's in-process ``mock_aws``, for every test folder's ``test_aws_*``
files (a plugin of the root ``tests/conftest.py``): the registry table (``aws_registry``), the
bucket (``bucket``, ``aws_store``), SageMaker (``sagemaker``, ``publish``). The AWS fixtures are
named apart from the local ones of the same role (``registry``, ``store``, ``make_artifact`` in
tests/core and tests/api), so a test says which backend it runs on.

moto executes one request at a time only by accident: its DynamoDB transaction snapshots
the table and restores the snapshot on failure, so two threads could interleave inside one
request. Real AWS applies each request atomically, so ``serialize_moto`` serializes moto's
request handling — threads still race between requests, which is the concurrency the
registry must survive.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

REGION = "us-east-1"
TABLE = "modelway-test-registry"
BUCKET = "modelway-test-data"


def serialize_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make each moto request atomic (see the module docstring)."""
    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.RLock()
    original = BotocoreStubber.process_request

    def process_request(self: BotocoreStubber, request: Any) -> Any:
        with lock:
            return original(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)


@pytest.fixture
def mocked(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    serialize_moto(monkeypatch)
    with mock_aws():
        yield


@pytest.fixture
def aws_registry(mocked: None) -> Any:
    from functions.core.registry.dynamodb import DynamoDBRegistry, create_table

    create_table(table_name=TABLE, region=REGION)
    return DynamoDBRegistry(table_name=TABLE, region=REGION)


@pytest.fixture
def bucket(mocked: None) -> str:
    import boto3

    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture
def aws_store(bucket: str) -> Any:
    from functions.core.artifacts.s3 import S3ArtifactStore

    return S3ArtifactStore(bucket=bucket, artifacts_prefix="artifacts/", region=REGION)


@pytest.fixture
def sagemaker(mocked: None) -> Any:
    """SageMaker under moto, recording calls and playing ``UpdateEndpoint``
    (``sagemaker_testkit.SageMaker``)."""
    from tests.deploy.sagemaker_testkit import SageMaker

    return SageMaker()


@pytest.fixture
def publish(aws_registry: Any, aws_store: Any, sagemaker: Any, make_artifact: Any) -> Any:
    """``publish(payload, alias="default", deployer=None) -> PublishResult``: publishes a fake
    artifact of model ``digits`` through a deployer (``sagemaker_testkit.make_deployer``'s
    unless one is given)."""
    from functions.core import archive, publishing
    from functions.core.settings import Settings
    from tests.deploy.sagemaker_testkit import PREFIX, make_deployer
    from tests.iam_proof.capture import acting_as

    settings = Settings(env="test", endpoint_prefix=PREFIX)
    default = make_deployer(sagemaker)

    def run(payload: bytes, *, alias: str | None = "default", deployer: Any = None) -> Any:
        # As the router publishes (POST /v1/models/{m}/versions): its role is checked.
        with acting_as("functions.api.handler.handler"):
            return _publish(payload, alias=alias, deployer=deployer)

    def _publish(payload: bytes, *, alias: str | None, deployer: Any) -> Any:
        return publishing.publish_artifact(
            path=make_artifact(payload=payload),
            registry=aws_registry,
            store=aws_store,
            settings=settings,
            actor="tester",
            alias=alias,
            verify=archive.check_artifact,
            deployer=deployer or default,
        )

    return run
