"""The Lambda entry point: the clients it builds, and the continuation it sends itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from functions.batch import handler as batch_handler
from functions.core import backends
from tests.batch.batch_testkit import FakeContext, Stack, jsonl, row


@pytest.fixture
def wired(stack: Stack, swap_backends: Callable[..., Any]) -> Stack:
    """The handler on the test stack's clients, swapped in at the one wiring point."""
    swap_backends(
        settings=stack.settings,
        registry=stack.registry,
        store=stack.store,
        batch_runtime=stack.runtime,
    )
    return stack


def test_the_handler_scores_an_s3_notification(wired: Stack) -> None:
    event = wired.upload("inputs/toy/default/h.jsonl", jsonl([row(1), row(2)]))
    summary = batch_handler.handler(event, FakeContext(600_000))
    (job,) = summary["jobs"]
    assert (job["status"], job["records"], job["action"]) == ("succeeded", 2, "finished")


@pytest.mark.parametrize("backend", ["aws"])  # locally a job goes on in-process
def test_on_aws_a_long_file_continues_in_an_async_invocation_of_the_same_function(
    wired: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[dict[str, Any], str]] = []
    monkeypatch.setattr(
        batch_handler,
        "_invoke_async",
        lambda event, *, function_arn: sent.append((event, function_arn)),
    )
    wired.settings.batch_max_records_per_request = 1
    event = wired.upload("inputs/toy/default/long.jsonl", jsonl([row(n) for n in range(5)]))
    context = FakeContext(lambda: 600_000 if len(wired.runtime.calls) < 2 else 1_000)

    summary = batch_handler.handler(event, context)

    assert summary["jobs"][0]["action"] == "continued"
    ((continuation, arn),) = sent
    assert arn == context.invoked_function_arn
    assert continuation["source"] == "modelway.batch"
    assert continuation["slice"] == 1
    done = batch_handler.handler(continuation, FakeContext(600_000))
    assert done["jobs"][0]["status"] == "succeeded"


def test_get_deps_builds_the_configured_backends_lazily(
    modelway_home: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.core.artifacts.local import DirectoryArtifactStore
    from functions.core.registry.sqlite import SqliteRegistry

    backends.use(None)
    try:
        deps = batch_handler.get_deps()
        assert isinstance(deps.registry, SqliteRegistry)
        assert isinstance(deps.store, DirectoryArtifactStore)
        assert deps.continue_later is None
        # Batch scoring's own runtime client (it waits for a slow model), not the router's.
        assert deps.runtime is backends.current().batch_runtime
        assert deps.runtime is not backends.current().runtime
        again = batch_handler.get_deps()  # the same clients: built once, kept
        assert again.registry is deps.registry
        assert again.store is deps.store
        assert again.runtime is deps.runtime
    finally:
        backends.use(None)


def test_scoring_reports_progress_to_a_listener(wired: Stack) -> None:
    """What ``modelway batch submit`` draws on a terminal: bytes of the input scored so far
    (of its size) and the records, as the job goes."""
    from functions.core import progress

    seen: list[tuple[str, Any, Any, Any]] = []

    def listener(step: str, *, done: Any = None, total: Any = None, detail: Any = None) -> None:
        seen.append((step, done, total, detail))

    body = jsonl([row(i) for i in range(40)])
    event = wired.upload("inputs/toy/default/p.jsonl", body)
    with progress.reporting(listener):
        batch_handler.handler(event, FakeContext(600_000))
    scoring = [s for s in seen if s[0] == "scoring"]
    assert scoring
    _, done, total, detail = scoring[-1]
    assert (done, total) == (len(body), len(body))
    assert detail == "40 records, 0 refused"
    assert [s[1] for s in scoring] == sorted(s[1] for s in scoring)
