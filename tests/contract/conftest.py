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


@pytest.fixture(params=["local", "aws"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def registry(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if backend == "aws":
        # moto's mock (``tests.aws_testkit``): one for the test, shared with ``store``.
        yield request.getfixturevalue("aws_registry")
        return
    from functions.core.registry.sqlite import SqliteRegistry

    local = SqliteRegistry(path=tmp_path / "registry.db")
    yield local
    local.close()


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if backend == "aws":
        return request.getfixturevalue("aws_store")
    from functions.core.artifacts.local import DirectoryArtifactStore

    return DirectoryArtifactStore(artifacts_dir=tmp_path / "artifacts", data_dir=tmp_path / "data")
