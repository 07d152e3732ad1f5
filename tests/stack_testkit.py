"""A local stack in the test process's hands, as ``modelway up`` runs it: the model server and
the router as child processes over a state directory of the test's own, the models published
first, keys made on demand; and ``modelway ARGS`` run in-process for its JSON answer.

Every stack test starts its stack here, so what a stack needs (the settings re-read, batch
scoring in this process pointed at the stack's model server, the process's backends rebuilt,
all put back on exit) is written once."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from cli.up import LocalStack
    from functions.core.settings import Settings


def run_cli(*args: str | Path) -> dict[str, Any]:
    """``modelway ARGS`` in this process; its JSON answer (the command must succeed)."""
    from cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main([str(a) for a in args])
    assert status == 0, out.getvalue()
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Caller:
    """A stack's router and the key a test calls it with."""

    router: str
    key: str


@dataclass
class RunningStack:
    settings: Settings
    local: LocalStack

    @property
    def router(self) -> str:
        return self.local.router_url

    @property
    def serving(self) -> str:
        return self.local.serving_url

    def key(self, *models: str, name: str = "team", admin: bool = False) -> str:
        """A new API key for ``models`` (``"*"``: every model); its secret."""
        from functions.core import keys
        from functions.core.backends import make_registry

        _, secret = keys.create_key(
            registry=make_registry(self.settings), name=name, models=list(models), admin=admin
        )
        return secret

    def caller(self, *models: str, name: str = "team") -> Caller:
        """The router with a new (non-admin) key for ``models``."""
        return Caller(router=self.router, key=self.key(*models, name=name))

    def endpoint(self, model: str) -> str:
        """The SageMaker-style endpoint name of ``model`` on the local runtime path."""
        return f"{self.settings.resolved_endpoint_prefix}-{model}"


@contextlib.contextmanager
def local_stack(
    *,
    home: Path,
    free_port: Callable[[], int],
    artifacts: Sequence[Path | str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[RunningStack]:
    """A stack over ``home`` with each of ``artifacts`` published (``modelway publish``: each a
    new model, version 1 on ``default``); stopped, and the environment put back, on exit.
    ``env``: more ``MODELWAY_*`` settings, in force before anything is published."""
    from cli.up import start_stack
    from functions.core.backends import use
    from functions.core.settings import get_settings

    mp = pytest.MonkeyPatch()
    local: LocalStack | None = None
    try:
        for name, value in {
            "MODELWAY_HOME": str(home),
            "MODELWAY_ENV": "local",
            **(env or {}),
        }.items():
            mp.setenv(name, value)
        get_settings.cache_clear()
        use(None)  # the process's backends, from these settings
        for artifact in artifacts:
            summary = run_cli("publish", artifact)
            assert (summary["version"], summary["created"]) == (1, True), summary
        settings = get_settings()
        local = start_stack(
            settings=settings, host="127.0.0.1", port=free_port(), serving_port=free_port()
        )
        # Batch scoring (in this process) calls the same model server.
        mp.setenv("MODELWAY_SERVING_URL", local.serving_url)
        get_settings.cache_clear()
        use(None)
        yield RunningStack(settings=get_settings(), local=local)
    finally:
        if local is not None:
            local.stop()
        use(None)
        mp.undo()
        get_settings.cache_clear()
