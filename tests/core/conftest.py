"""Fixtures for the core services: a local registry and store (fake artifacts:
``tests/artifact_testkit.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.core.artifacts.local import DirectoryArtifactStore
from functions.core.registry.sqlite import SqliteRegistry
from functions.core.settings import Settings


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    return Settings(env="local", home=tmp_path / "home")


@pytest.fixture
def registry(local_settings: Settings) -> Iterator[SqliteRegistry]:
    registry = SqliteRegistry(path=local_settings.registry_path)
    yield registry
    registry.close()


@pytest.fixture
def store(local_settings: Settings) -> DirectoryArtifactStore:
    return DirectoryArtifactStore(
        artifacts_dir=local_settings.artifacts_dir, data_dir=local_settings.data_dir
    )
