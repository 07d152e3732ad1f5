"""The README's standard clients, run as a user runs them against the local stack: Triton's
Open Inference Protocol client (JSON and binary tensors, the key as a header), boto3's
sagemaker-runtime against the model server, and curl."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_local_stack import Stack, stack  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _run(script: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_tritonclient_example_json_and_binary(stack: Stack) -> None:  # noqa: F811
    out = _run("oip_client.py", MODELWAY_URL=stack.router, MODELWAY_API_KEY=stack.digits_only)
    lines = out.splitlines()
    assert lines[0] == "live: True"
    assert lines[1] == "inputs: [('input', 'FP32', [-1, 1, 8, 8])]"
    assert lines[2].startswith("JSON  : version 1 says 7 (logit ")
    assert lines[3].startswith("binary: version 1 says 7 (logit ")
    # The same logits either way: the binary extension carries the same float32s.
    assert lines[2].split("logit ")[1] == lines[3].split("logit ")[1]


def test_tritonclient_example_without_a_valid_key_is_refused(stack: Stack) -> None:  # noqa: F811
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "oip_client.py")],
        env={**os.environ, "MODELWAY_URL": stack.router, "MODELWAY_API_KEY": stack.other_only},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "may not call model 'digits'" in done.stderr


def test_boto3_sagemaker_runtime_example(stack: Stack) -> None:  # noqa: F811
    out = _run(
        "sagemaker_runtime.py", MODELWAY_SERVING_URL=stack.serving, MODELWAY_ENDPOINT=stack.endpoint
    )
    lines = out.splitlines()
    assert lines[0] == "variant: v1"
    answer = json.loads(lines[1].replace("'", '"'))
    assert answer["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [1], "data": [7]}]


def test_curl_example(stack: Stack) -> None:  # noqa: F811
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("no curl on this machine")
    pixels = [0, 0, 4, 15, 16, 13, 13, 10, 0, 0, 12, 13, 10, 15, 14, 2, 0, 2, 16, 6, 2, 14]
    pixels += [6, 0, 0, 1, 5, 0, 9, 11, 0, 0, 0, 0, 7, 12, 16, 14, 6, 0, 0, 0, 8, 15, 15, 11]
    pixels += [2, 0, 0, 0, 2, 16, 8, 0, 0, 0, 0, 0, 7, 15, 4, 0, 0, 0]
    body = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": pixels}]
    }
    done = subprocess.run(
        [
            curl,
            "-s",
            f"{stack.router}/v2/models/digits/infer",
            "-H",
            f"x-api-key: {stack.digits_only}",
            "-H",
            "content-type: application/json",
            "-d",
            json.dumps(body),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer = json.loads(done.stdout)
    assert answer["model_version"] == "1"
    assert answer["outputs"][1]["data"] == [7]
