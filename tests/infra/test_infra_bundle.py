"""The Lambda bundle: functions/ and its light dependencies, built without Docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.constructs.bundling import (
    FORBIDDEN,
    PROVIDED_BY_RUNTIME,
    PYTHON_VERSION,
    REPO_ROOT,
    bundle_size,
    dependencies_dir,
    dependencies_hash,
    lambda_requirements,
    source_files,
)
from tests.infra.infra_testkit import Synthesized

pytestmark = pytest.mark.infra

BUDGET_BYTES = 15 * 1000 * 1000  # 15 MB unzipped


@pytest.fixture(scope="module")
def bundle(dev: Synthesized) -> Path:
    """The code asset the synthesized stack ships: one, shared by the three functions."""
    staged = [p for p in dev.outdir.glob("asset.*") if (p / "functions").is_dir()]
    assert len(staged) == 1
    return staged[0]


def test_bundle_size_stays_under_budget(bundle: Path) -> None:
    size = bundle_size(bundle)
    code = bundle_size(bundle / "functions")
    print(
        f"Lambda bundle: {size / 1e6:.2f} MB unzipped ({size / 2**20:.2f} MiB), "
        f"of which functions/ {code / 1e3:.0f} kB"
    )
    assert size < BUDGET_BYTES


def test_bundle_has_no_numeric_stack(bundle: Path) -> None:
    names = {p.name.lower() for p in bundle.iterdir()}
    for forbidden in ("torch", "onnxruntime", "onnx", "numpy"):
        assert forbidden in FORBIDDEN
        assert not any(n == forbidden or n.startswith(f"{forbidden}-") for n in names), forbidden
    assert not [p for p in bundle.rglob("*") if "numpy" in p.name or "onnxruntime" in p.name]


def test_bundle_holds_the_handlers_and_their_dependencies(bundle: Path) -> None:
    for handler in ("api", "authorizer", "batch", "endpoint_events"):
        assert (bundle / "functions" / handler / "handler.py").is_file(), handler
    assert (bundle / "functions" / "core" / "settings.py").is_file()
    for package in ("fastapi", "mangum", "pydantic", "pydantic_settings", "aws_lambda_powertools"):
        assert (bundle / package).is_dir(), package
    # Native code is for Lambda (Linux arm64, the runtime's CPython), not for this machine.
    (core,) = (bundle / "pydantic_core").glob("_pydantic_core.*.so")
    tag = PYTHON_VERSION.replace(".", "")
    assert core.name == f"_pydantic_core.cpython-{tag}-aarch64-linux-gnu.so"


def test_bundle_holds_the_docs_pages_assets(bundle: Path) -> None:
    """/docs serves Swagger UI from the bundle itself (functions/api/docs.py): no CDN."""
    from functions.api.docs import _ASSET_DIR, ASSETS

    folder = bundle.joinpath("aws_lambda_powertools", *_ASSET_DIR)
    for filename, _ in ASSETS.values():
        assert (folder / filename).stat().st_size > 100_000, filename
    # The rest of Powertools' event handler is not loaded by the FastAPI router: trimmed.
    handler_dir = bundle / "aws_lambda_powertools" / "event_handler"
    assert all(p.is_relative_to(folder) for p in handler_dir.rglob("*") if p.is_file())


def test_bundle_leaves_out_what_lambda_already_has_and_what_is_not_code(bundle: Path) -> None:
    for paths in PROVIDED_BY_RUNTIME.values():
        for path in paths:
            assert not (bundle / path).exists(), path
    assert not list(bundle.rglob("__pycache__"))
    assert not (bundle / "functions" / "cli").exists()
    assert not list((bundle / "functions").rglob("tests"))
    assert not (bundle / "bin").exists()


def test_dependencies_come_from_the_lambda_group_of_pyproject() -> None:
    requirements = lambda_requirements()
    assert any(r.startswith("fastapi") for r in requirements)
    assert not any(r.startswith(("torch", "numpy", "onnx")) for r in requirements)


def test_dependencies_are_installed_once_and_reused(bundle: Path) -> None:
    """Another environment, another synth, an edit of functions/: pip does not run again."""
    deps = dependencies_dir()
    assert deps.name == f"deps-{dependencies_hash()[:32]}"
    code = sum((REPO_ROOT / rel).stat().st_size for rel in source_files())
    assert bundle_size(bundle) == bundle_size(deps) + code
