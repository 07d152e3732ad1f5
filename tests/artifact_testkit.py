"""Fake artifacts: a real ``model.tar.gz`` (valid manifest, correct sha256) whose model file is
arbitrary bytes, enough for everything but the ONNX graph check, and needing no torch. Its
``make_artifact`` fixture serves every test folder (a plugin of the root conftest)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

MakeArtifact = Callable[..., Path]


def fake_manifest(*, name: str, model_bytes: bytes, **overrides: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "format_version": 1,
        "name": name,
        "version": None,
        "model_file": "model.onnx",
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "signature": {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}],
        },
        "frameworks": {"onnx": "test"},
        "parity": {
            "samples": 8,
            "max_abs_diff": 0.0,
            "argmax_agreement": 1.0,
            "tolerance": 1e-4,
            "passed": True,
        },
        "description": "a fake model for tests",
    }
    manifest.update(overrides)
    return manifest


def write_tar(dest: Path, members: dict[str, bytes]) -> Path:
    """``members`` (archive name → bytes) as a gzipped tar at ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return dest


@pytest.fixture
def make_artifact(tmp_path: Path) -> MakeArtifact:
    """``make_artifact(name="digits", payload=b"...", **manifest_overrides) -> Path``."""
    counter = iter(range(1_000_000))

    def make(
        *,
        name: str = "digits",
        payload: bytes | None = None,
        members: dict[str, bytes] | None = None,
        **overrides: Any,
    ) -> Path:
        n = next(counter)
        model_bytes = payload if payload is not None else f"fake onnx model {n}".encode()
        manifest = fake_manifest(name=name, model_bytes=model_bytes, **overrides)
        contents = {
            "modelway.json": json.dumps(manifest).encode(),
            "model.onnx": model_bytes,
            **(members or {}),
        }
        return write_tar(tmp_path / f"artifact-{n}.tar.gz", contents)

    return make
