"""``python -m serving serve|local`` as real processes (how the container and ``modelway up``
start it), and the boundary that lets the server ship alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import numpy as np
import pytest

from serving.__main__ import LISTENING
from tests.serving.serving_testkit import infer_body, publish_classifier, wait_for

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def serving_process(args: list[str], env: dict[str, str] | None = None) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
        assert line.startswith(LISTENING), line
        url = line.split()[-1]
        wait_for(lambda: _ping(url) or process.poll() is not None, timeout=60, what="/ping")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            # uvicorn shuts down gracefully, then re-raises the signal it caught.
            assert process.wait(timeout=30) in (0, -signal.SIGTERM)
            assert "Application shutdown complete" in process.stdout.read()
        finally:
            if process.poll() is None:
                process.kill()
            process.stdout.close()


def _ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_local_mode_answers_boto3(tmp_path: Path) -> None:
    publish_classifier(tmp_path, model="digits", version=4, seed=1)
    args = ["local", "--artifacts-dir", str(tmp_path), "--endpoint-prefix", "mw-test"]
    with serving_process([*args, "--port", "0"]) as url:
        client = boto3.client(
            "sagemaker-runtime",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        x = np.zeros((1, 1, 8, 8), np.float32)
        response = client.invoke_endpoint(
            EndpointName="mw-test-digits",
            TargetVariant="v4",
            Body=json.dumps(infer_body(x)),
            ContentType="application/json",
        )
        assert response["InvokedProductionVariant"] == "v4"
        assert json.loads(response["Body"].read())["model_version"] == "4"


def test_serve_mode_honours_sagemaker_bind_to_port(tmp_path: Path) -> None:
    archive = publish_classifier(tmp_path, model="digits", version=2, seed=1)
    env = {"SAGEMAKER_BIND_TO_PORT": "0", "MODELWAY_ORT_THREADS": "1"}
    with serving_process(
        ["serve", "--model-dir", str(archive.parent), "--host", "127.0.0.1"], env
    ) as url:
        doc = _post(f"{url}/invocations", infer_body(np.zeros((1, 1, 8, 8), np.float32)))
        assert doc["model_version"] == "2"


def test_serve_exits_non_zero_when_the_model_cannot_load(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving",
            "serve",
            "--model-dir",
            str(tmp_path),
            "--port",
            "0",
            "--host",
            "127.0.0.1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "artifact has no modelway.json" in result.stderr


def test_bad_tuning_is_refused_at_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving",
            "local",
            "--artifacts-dir",
            str(tmp_path),
            "--endpoint-prefix",
            "x",
            "--port",
            "0",
        ],
        cwd=REPO,
        env={**os.environ, "MODELWAY_MAX_BATCH_SIZE": "zero"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "MODELWAY_MAX_BATCH_SIZE" in result.stderr


def test_the_server_imports_only_the_codec_from_functions_and_no_torch() -> None:
    """It ships in its container with numpy, onnxruntime, starlette/uvicorn, the stdlib, and
    the shared dependency-free codec (``functions.core.oip`` and the errors it subclasses)."""
    code = (
        "import sys, serving.__main__, serving.app\n"
        "shared = {'functions', 'functions.core', 'functions.core.exceptions'}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'functions', 'torch', 'pydantic', 'fastapi', 'boto3', 'botocore'} "
        "and m not in shared and not m.startswith('functions.core.oip'))\n"
        "print(bad)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("argv", [["serve"], ["serve", "--model-dir", "/x", "--port", "9000"]])
def test_serve_arguments_parse(argv: list[str]) -> None:
    from serving.__main__ import build_parser

    args = build_parser().parse_args(argv)
    assert args.command == "serve"


def test_tests_import_the_real_server_package() -> None:
    """tests/serving must not shadow serving/ (pytest's ``pythonpath = ["."]`` sees to it)."""
    import serving

    assert serving.__file__ == str(REPO / "serving" / "__init__.py")
