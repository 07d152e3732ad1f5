"""The GPU image cannot be built here (no Docker engine), so its wiring is checked statically:
``docker run IMAGE serve`` must end up in ``python -m serving serve``."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
from pathlib import Path

import pytest

from serving.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[2]
SERVING = ROOT / "serving"
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
    assert (SERVING / "Dockerfile.dockerignore").is_file()


def _copied() -> list[str]:
    """Repository paths the image receives (every COPY source but the last word)."""
    sources: list[str] = []
    for keyword, rest in _instructions():
        if keyword == "COPY":
            sources.extend(rest.split()[:-1])
    return sources


def _in_image(path: Path) -> bool:
    relative = path.relative_to(ROOT).as_posix()
    return any(
        relative == source or (source.endswith("/") and relative.startswith(source))
        for source in _copied()
    )


def _local_imports(path: Path) -> set[Path]:
    """The repository files ``path`` imports (modules and the packages above them)."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                base = ROOT.joinpath(*parts[:depth])
                for candidate in (base / "__init__.py", base.with_suffix(".py")):
                    if candidate.is_file():
                        found.add(candidate)
    return found


def test_the_image_holds_everything_the_server_imports() -> None:
    # Python needs every package's __init__ and every module the server reaches, transitively.
    todo = list(SERVING.rglob("*.py"))
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_local_imports(path))
    reached = sorted(p.relative_to(ROOT).as_posix() for p in seen)
    assert "functions/core/oip/decode.py" in reached or "functions/core/oip/signature.py" in reached
    missing = [p for p in reached if not _in_image(ROOT / p)]
    assert missing == [], f"the server imports files the image does not copy: {missing}"
    ignore = (SERVING / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert set(_copied()) - {"serving/requirements-gpu.txt"} <= allowed | {"serving/"}


def test_the_image_ships_no_heavy_part_of_functions() -> None:
    # The codec is standard library only; the router's dependencies stay out of the image.
    copied = [c for c in _copied() if c.startswith("functions/")]
    assert copied
    for source in copied:
        for path in [ROOT / source] if source.endswith(".py") else (ROOT / source).rglob("*.py"):
            for imported in _local_imports(path):
                assert _in_image(imported), f"{path} imports {imported}, not in the image"
            tree = ast.parse(path.read_text())
            modules = {
                alias.name.split(".")[0]
                for node in ast.walk(tree)
                if isinstance(node, ast.Import)
                for alias in node.names
            } | {
                node.module.split(".")[0]
                for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
            }
            assert not modules & {"pydantic", "boto3", "botocore", "fastapi", "numpy"}, path


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
