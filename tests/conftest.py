"""Fixtures shared by every test area."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def digits_build(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The real digits demo model, trained and exported once per test session."""
    from model_build.digits import build_digits

    return build_digits(out_dir=tmp_path_factory.mktemp("digits-build"))


@pytest.fixture(scope="session")
def digits_artifact(digits_build) -> Path:  # type: ignore[no-untyped-def]
    return Path(digits_build.artifact)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Returns a function that finds a free loopback port."""
    return _free_port


@pytest.fixture
def modelway_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated local state directory, with settings re-read for it."""
    from functions.core.settings import get_settings

    home = tmp_path / "modelway-home"
    monkeypatch.setenv("MODELWAY_HOME", str(home))
    monkeypatch.setenv("MODELWAY_ENV", "local")
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()
