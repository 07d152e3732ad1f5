"""The GPU image cannot be built here (no Docker engine), so its wiring is checked statically:
``docker run IMAGE serve`` must end up in ``python -m serving serve``."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

from serving.__main__ import build_parser

SERVING = Path(__file__).resolve().parents[2] / "serving"
DOCKERFILE = SERVING / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def _exec_form(keyword: str) -> list[str]:
    values = [rest for kw, rest in _instructions() if kw == keyword]
    assert values, f"no {keyword}"
    parsed = json.loads(values[-1])  # exec form: no shell between SageMaker and the server
    assert isinstance(parsed, list)
    return parsed


def test_docker_run_image_serve_runs_the_hosting_server() -> None:
    argv = [*_exec_form("ENTRYPOINT"), "serve"]  # SageMaker: docker run IMAGE serve
    assert argv[:3] == ["python", "-m", "serving"]
    args = build_parser().parse_args(argv[3:])
    assert args.command == "serve"
    assert args.model_dir == "/opt/ml/model"
    assert _exec_form("CMD") == ["serve"]


def test_serve_script_on_path_runs_the_same() -> None:
    script = SERVING / "serve"
    assert os.access(script, os.X_OK)
    assert script.read_text().startswith("#!/bin/sh")
    exec_lines = [line for line in script.read_text().splitlines() if line.startswith("exec ")]
    assert [shlex.split(line) for line in exec_lines] == [
        ["exec", "python", "-m", "serving", "serve", "$@"]
    ]
    runs = " ".join(rest for kw, rest in _instructions() if kw == "RUN")
    assert "serving/serve /usr/local/bin/serve" in runs


def test_image_shape() -> None:
    instructions = _instructions()
    base = next(rest for kw, rest in instructions if kw == "FROM")
    assert re.fullmatch(r"nvidia/cuda:12\.[\d.]+-cudnn-runtime-ubuntu[\d.]+", base)
    assert ("EXPOSE", "8080") in instructions
    user = [rest for kw, rest in instructions if kw == "USER"]
    assert user
    assert user[-1] not in ("root", "0")
    copies = [rest for kw, rest in instructions if kw == "COPY"]
    sources = {c.split()[0] for c in copies}
    assert sources == {"serving/requirements-gpu.txt", "serving/"}  # only the server ships
    assert (SERVING / "Dockerfile.dockerignore").is_file()


@pytest.mark.parametrize("name", ["requirements-gpu.txt", "requirements.txt"])
def test_requirements_are_pinned_and_complete(name: str) -> None:
    lines = [
        line.split("#")[0].strip()
        for line in (SERVING / name).read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    pins = dict(line.split("==") for line in lines)
    assert all(re.fullmatch(r"[\d.]+", v) for v in pins.values()), lines
    runtime = "onnxruntime-gpu" if name == "requirements-gpu.txt" else "onnxruntime"
    assert {runtime, "numpy", "starlette", "uvicorn"} <= set(pins)
    assert not {"torch", "fastapi", "boto3", "pydantic"} & set(pins)
