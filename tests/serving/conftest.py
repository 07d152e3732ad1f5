"""Fixtures for the model server tests; the builders live in ``serving_testkit``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.serving.serving_testkit import CLASSIFIER_SIGNATURE, classifier_onnx, package


@pytest.fixture(scope="session")
def classifier_bytes() -> bytes:
    return classifier_onnx(seed=1)


@pytest.fixture
def classifier_tar(tmp_path: Path, classifier_bytes: bytes) -> Path:
    return package(
        tmp_path / "model.tar.gz",
        classifier_bytes,
        name="digits",
        version=3,
        signature=CLASSIFIER_SIGNATURE,
    )


@pytest.fixture
def batch() -> np.ndarray:
    return np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
