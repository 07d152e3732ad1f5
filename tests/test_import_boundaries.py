"""What each top-level package may import (README "Layout"), read from the source, lazy imports
inside functions included: the Lambda bundle stays free of the numeric stack, torch stays in
``model_build``, and nothing but the ``modelway`` command itself depends on the command."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("functions", "serving", "model_build", "infra", "cli")
NUMERIC = {"torch", "numpy", "onnx", "onnxruntime", "tokenizers", "transformers", "sklearn"}

# package → top-level modules it must never import.
FORBIDDEN: dict[str, set[str]] = {
    "functions": NUMERIC | {"serving", "model_build", "infra", "cli", "rich", "aws_cdk"},
    "serving": {"torch", "transformers", "sklearn", "model_build", "infra", "cli", "aws_cdk"},
    "model_build": {"infra", "cli", "rich", "aws_cdk"},
    "infra": NUMERIC | {"serving", "model_build", "cli"},
    "cli": {"torch", "onnx", "transformers", "sklearn", "aws_cdk"},
}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def violations(package: str) -> list[str]:
    forbidden = FORBIDDEN[package]
    return [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / package).rglob("*.py"))
        if "node_modules" not in path.parts
        for module in sorted(imported_modules(path))
        if module.split(".")[0] in forbidden
    ]


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_what_its_layer_may(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    """The cases that matter hide inside functions (heavy imports are kept lazy)."""
    module = tmp_path / "lazy.py"
    module.write_text(
        "import json\n\ndef run():\n    import torch.nn\n    from cli.up import start_stack\n"
    )
    assert imported_modules(module) == {"json", "torch.nn", "cli.up"}


def test_every_package_is_checked() -> None:
    """A new top-level package gets its own row, or this fails."""
    packages = {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in {"tests", "benchmarks", "examples", "docs"}
    }
    assert packages == set(PACKAGES)
