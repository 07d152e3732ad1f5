"""Fixtures shared by every test area."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Fixtures every folder uses, registered here because pytest takes plugins only from the root
# conftest: the AWS backends under moto (``mocked``, ``aws_registry``, ``bucket``, ``aws_store``,
# ``sagemaker``, ``publish``) for the ``test_aws_*`` files, and fake artifacts (``make_artifact``).
pytest_plugins = ["tests.aws_testkit", "tests.artifact_testkit"]


@pytest.fixture(scope="session", autouse=True)
def _one_botocore_loader() -> Iterator[None]:
    """Every boto3 session a test makes reads botocore's data files (service models, the 1 MB
    endpoints file) through one loader, so each is parsed once per run instead of once per
    session: about half a second per moto test. The files and what they say are the same."""
    import functools

    import botocore.loaders
    import botocore.session

    mp = pytest.MonkeyPatch()
    mp.setattr(botocore.session, "create_loader", functools.cache(botocore.loaders.create_loader))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def digits_build(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The real digits demo model, trained and exported once per test session."""
    from model_build.digits import build_digits

    return build_digits(out_dir=tmp_path_factory.mktemp("digits-build"))


@pytest.fixture(scope="session")
def digits_artifact(digits_build) -> Path:  # type: ignore[no-untyped-def]
    return Path(digits_build.artifact)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BERT encoder saved like a Hugging Face model directory."""
    from tests.text_testkit import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.text_testkit import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("tiny-classifier"), classifier=True)


@pytest.fixture(scope="session")
def tiny_text_build(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The tiny encoder through ``package_hf`` (feature extraction), once per session."""
    from model_build.hf import package_hf

    return package_hf(tiny_bert_dir, name="tiny-text", out_dir=tmp_path_factory.mktemp("tiny-text"))


@pytest.fixture(scope="session")
def tiny_text_artifact(tiny_text_build) -> Path:  # type: ignore[no-untyped-def]
    return Path(tiny_text_build.artifact)


@pytest.fixture(scope="session")
def tiny_classifier_build(tiny_classifier_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from model_build.hf import TEXT_CLASSIFICATION, package_hf

    return package_hf(
        tiny_classifier_dir,
        task=TEXT_CLASSIFICATION,
        name="tiny-sentiment",
        out_dir=tmp_path_factory.mktemp("tiny-sentiment"),
    )


@pytest.fixture(scope="session")
def minilm_build(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The real all-MiniLM-L6-v2 from its wheel through ``modelway build minilm``'s code,
    once per test session (a few minutes on a CPU: only the tests that need the real model
    use it)."""
    from model_build.minilm import build_minilm

    return build_minilm(out_dir=tmp_path_factory.mktemp("minilm-build"))


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


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials in us-east-1, and no profile, config, credentials file or endpoint from
    the developer's shell: nothing reaches a real account (moto tests)."""
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
    ):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    # boto3's default session (``boto3.client``) keeps the credentials it first resolved: one
    # built on these fake ones must not outlive the test (a later test without credentials
    # would still sign with them).
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


@pytest.fixture
def swap_backends() -> Iterator[Callable[..., Any]]:
    """Pins the process's backends (``functions.core.backends``, the one wiring point every
    entry point reads) to the parts given, the others built from the settings in force;
    unpinned after the test. ``swap_backends(registry=..., settings=...)`` returns them;
    ``swap_backends(built)`` pins a ``Backends`` already built (an app's, so that the CLI or a
    handler shares its clients: the same mirror client a test made fail, say)."""
    from functions.core import backends
    from functions.core.settings import get_settings

    def swap(
        built: backends.Backends | None = None, /, *, settings: Any = None, **parts: Any
    ) -> backends.Backends:
        if built is not None and (settings is not None or parts):
            raise TypeError("swap_backends takes a built Backends or its parts, not both")
        pinned = built or backends.Backends(settings=settings or get_settings(), **parts)
        backends.use(pinned)
        return pinned

    yield swap
    backends.use(None)


@pytest.fixture(autouse=True)
def _iam_proof() -> Iterator[None]:
    """Fails a test whose code under test made an AWS call its function's role in the
    synthesized template does not allow (``tests/iam_proof``)."""
    from tests.iam_proof import capture, proof

    with capture.capturing() as calls:
        yield
    if calls:
        denied = proof.check(calls)
        if denied:
            pytest.fail(
                "calls the synthesized IAM policies do not allow:\n  "
                + "\n  ".join(dict.fromkeys(str(d) for d in denied)),
                pytrace=False,
            )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker of a parallel run (pytest-xdist) hands its IAM-proof uses to the controller,
    which prints the summary."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        from tests.iam_proof import proof

        workeroutput["iam_proof"] = [[*use, ok] for use, ok in proof.CHECKED.items()]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    from tests.iam_proof import proof

    for function, action, resource, ok in getattr(node, "workeroutput", {}).get("iam_proof", []):
        proof.CHECKED[(function, action, resource)] = ok


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.iam_proof import proof

    if not proof.CHECKED:
        return
    functions = {function for function, _, _ in proof.CHECKED}
    terminalreporter.write_line(
        f"IAM proof: {len(proof.CHECKED)} (function, action, resource) uses by "
        f"{len(functions)} functions checked against the synthesized {proof.ENV} template"
    )
    report = os.environ.get("MODELWAY_IAM_PROOF_REPORT")
    if report:
        rows = sorted(proof.CHECKED.items())
        Path(report).write_text(
            "\n".join(
                f"{'ok ' if ok else 'NO '} {f.split('.')[1]:16} {a:55} {r}"
                for (f, a, r), ok in rows
            )
            + "\n"
        )
