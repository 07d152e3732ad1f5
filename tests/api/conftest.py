"""Fixtures for the router: the real app over a SQLite registry in tmp_path, a fake runtime
client (no model server), a hand-driven clock and a seeded RNG. Builders: ``api_testkit``."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from functions.core.registry.base import ModelVersion
from functions.core.registry.sqlite import SqliteRegistry
from functions.core.settings import Settings
from tests.api.api_testkit import (
    MODEL,
    PAYLOAD_LIMIT,
    PREFIX,
    FakeClock,
    add_version,
    build_app,
    make_key,
)
from tests.openapi_contract import ContractChecker
from tests.runtime_testkit import FakeRuntime


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        env="local",
        home=tmp_path / "home",
        endpoint_prefix=PREFIX,
        max_payload_bytes=PAYLOAD_LIMIT,
        key_cache_ttl_seconds=30.0,
        registry_cache_ttl_seconds=5.0,
    )


@pytest.fixture
def registry(settings: Settings) -> Iterator[SqliteRegistry]:
    registry = SqliteRegistry(path=settings.registry_path)
    yield registry
    registry.close()


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20240601)


@pytest.fixture
def app(
    settings: Settings,
    registry: SqliteRegistry,
    runtime: FakeRuntime,
    clock: FakeClock,
    rng: random.Random,
) -> FastAPI:
    return build_app(settings=settings, registry=registry, runtime=runtime, clock=clock, rng=rng)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """Every response it receives is checked against the app's OpenAPI document."""
    checker = ContractChecker(app.openapi())
    with TestClient(app, raise_server_exceptions=False) as client:
        client.event_hooks = {"response": [checker.check_response]}
        yield client


@pytest.fixture
def digits_v1(registry: SqliteRegistry) -> ModelVersion:
    return add_version(registry)


@pytest.fixture
def user_key(registry: SqliteRegistry) -> str:
    """May call digits only."""
    return make_key(registry, models=[MODEL], name="digits-user")


@pytest.fixture
def admin_key(registry: SqliteRegistry) -> str:
    return make_key(registry, models=["*"], admin=True, name="ops")
