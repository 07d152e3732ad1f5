"""The Lambda code bundle, built without Docker.

``pip install --platform … --only-binary=:all:`` fetches the wheels Lambda's arm64 Python
runtime needs straight from the package index, whatever machine synthesizes; then the
``functions/`` package is copied beside them. The dependency list is the ``lambda`` group of
``pyproject.toml`` (one source of truth). The installed dependencies are cached on disk under
a hash of the pip command and that list, so synthesizing dev, staging and prod, or again after
an edit of ``functions/``, pip-installs once; the asset hash covers the code as well.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = REPO_ROOT / "functions"
PYPROJECT = REPO_ROOT / "pyproject.toml"
CACHE_DIR = REPO_ROOT / "cdk.out" / ".lambda-bundle-cache"

RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
PYTHON_VERSION = RUNTIME.name.removeprefix("python")
# Lambda's arm64 runtimes run on Amazon Linux 2023 (glibc 2.34): both wheel tags load there.
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
# The Lambda Python runtime ships the AWS SDK and the packages it depends on. Leaving our copy
# out keeps the bundle about 35 MB smaller (botocore alone is 32 MB unzipped), under the 15 MB
# budget, and leaves the runtime's botocore with the exact dependencies it was released with
# (an older urllib3 or dateutil of ours would shadow them). Distribution -> what it installs.
PROVIDED_BY_RUNTIME = {
    "boto3": ("boto3",),
    "botocore": ("botocore",),
    "s3transfer": ("s3transfer",),
    "jmespath": ("jmespath",),
    "python_dateutil": ("dateutil",),
    "six": ("six.py",),
    "urllib3": ("urllib3",),
}
# What must never reach a Lambda: the heavy numeric stack belongs to serving/ and model_build/.
FORBIDDEN = ("torch", "onnxruntime", "onnx", "numpy")
# Files of installed packages that the functions never load: C sources, and Powertools' event
# handler (the router is FastAPI) but for its Swagger UI build, which the router's /docs page
# serves (functions/api/docs.py). Folder -> the one subfolder of it that is kept.
TRIMMED: tuple[str, ...] = ()
TRIMMED_BUT = {
    "aws_lambda_powertools/event_handler": "aws_lambda_powertools/event_handler/openapi/swagger_ui"
}
TRIMMED_SUFFIXES = (".c", ".pyx", ".h")
# Folders that are not Lambda code: anywhere in functions/, and only at its top.
EXCLUDED_DIRS = ("tests", "__pycache__")
EXCLUDED_TOP_DIRS = ("cli",)
BUNDLE_SCHEME = "1"  # bump when the steps below change what a bundle contains


class BundlingError(RuntimeError):
    """The bundle could not be built, or came out with something it must not hold."""


def lambda_requirements() -> list[str]:
    with PYPROJECT.open("rb") as f:
        project = tomllib.load(f)["project"]
    return list(project["optional-dependencies"]["lambda"])


def source_files() -> list[Path]:
    """The files of ``functions/`` that go into the bundle, relative to the repo root."""
    files: list[Path] = []
    for root, dirs, names in os.walk(FUNCTIONS_DIR):
        rel_root = Path(root).relative_to(FUNCTIONS_DIR)
        dirs[:] = sorted(d for d in dirs if _keep_source_dir(rel_root, d))
        files.extend(
            Path(root, n).relative_to(REPO_ROOT) for n in sorted(names) if not n.endswith(".pyc")
        )
    return files


def _keep_source_dir(rel_root: Path, name: str) -> bool:
    if name in EXCLUDED_DIRS:
        return False
    return not (rel_root == Path(".") and name in EXCLUDED_TOP_DIRS)


def dependencies_hash() -> str:
    """What the installed dependencies depend on: the pip command and the requirements."""
    h = hashlib.sha256()
    parts = (
        BUNDLE_SCHEME,
        PYTHON_VERSION,
        *PLATFORMS,
        *PROVIDED_BY_RUNTIME,
        *TRIMMED,
        *(f"{folder}!{kept}" for folder, kept in TRIMMED_BUT.items()),
        *TRIMMED_SUFFIXES,
        *lambda_requirements(),
    )
    for part in parts:
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def bundle_hash() -> str:
    """The asset hash: the dependencies and every source file that goes in."""
    h = hashlib.sha256(dependencies_hash().encode())
    for rel in source_files():
        h.update(str(rel).encode() + b"\0" + (REPO_ROOT / rel).read_bytes() + b"\0")
    return h.hexdigest()


def dependencies_dir() -> Path:
    """The installed dependencies, pip-installed once per requirement list and cached.

    Editing ``functions/`` does not reinstall them: only the code is copied again.
    """
    target = CACHE_DIR / f"deps-{dependencies_hash()[:32]}"
    if target.is_dir():
        return target
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="building-", dir=CACHE_DIR))
    try:
        _pip_install(staging)
        _trim(staging)
        _check(staging)
        try:
            staging.rename(target)
        except OSError:  # another synth finished the same install first
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for stale in CACHE_DIR.iterdir():  # one install at a time is plenty
        if stale != target and not stale.name.startswith("building-"):
            shutil.rmtree(stale, ignore_errors=True)
    return target


def build_bundle(output_dir: Path) -> Path:
    """Writes the bundle (dependencies, then ``functions/``) into ``output_dir``."""
    shutil.copytree(dependencies_dir(), output_dir, dirs_exist_ok=True)
    for rel in source_files():
        dest = output_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, dest)
    return output_dir


def bundle_size(path: Path) -> int:
    """Unzipped size in bytes: what Lambda's 250 MB limit counts."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _pip_install(target: Path) -> None:
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-input", "--no-compile",
        "--disable-pip-version-check", "--only-binary=:all:", "--implementation", "cp",
        "--python-version", PYTHON_VERSION,
        *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
        "--target", str(target), *lambda_requirements(),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BundlingError(
            f"pip could not fetch the Lambda dependencies:\n{result.stdout}{result.stderr}"
        )


def _trim(root: Path) -> None:
    doomed: list[Path] = [root / "bin", *(root / rel for rel in TRIMMED)]
    for dist, paths in PROVIDED_BY_RUNTIME.items():
        doomed.extend(root / path for path in paths)
        doomed.extend(root.glob(f"{dist}-*.dist-info"))
    doomed.extend(root.rglob("__pycache__"))
    # pip's install records: only pip uninstall reads them.
    doomed.extend(root.glob("*.dist-info/RECORD"))
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for suffix in TRIMMED_SUFFIXES:
        for path in root.rglob(f"*{suffix}"):
            path.unlink()
    for folder, kept in TRIMMED_BUT.items():
        # Deepest first, so a folder is emptied before it is looked at.
        for path in sorted((root / folder).rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.relative_to(root).is_relative_to(kept):
                continue
            if path.is_file():
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def _check(root: Path) -> None:
    installed = {p.name.split("-")[0].lower() for p in root.glob("*.dist-info")}
    present = sorted(name for name in FORBIDDEN if name in installed or (root / name).exists())
    if present:
        raise BundlingError(f"the Lambda bundle must not contain {present}")


@jsii.implements(cdk.ILocalBundling)
class LocalBundler:
    """CDK's hook for bundling on this machine instead of in a Docker container."""

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **options: Any) -> bool:
        build_bundle(Path(output_dir))
        return True


def functions_code() -> lambda_.Code:
    """The ``functions/`` bundle as Lambda code (one asset shared by every function)."""
    return lambda_.Code.from_asset(
        str(FUNCTIONS_DIR),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        asset_hash=bundle_hash(),
        bundling=cdk.BundlingOptions(
            # Never pulled: the local bundler always succeeds or raises.
            image=cdk.DockerImage.from_registry("public.ecr.aws/sam/build-python3.14"),
            local=LocalBundler(),
        ),
    )
