"""The digits demo model (scikit-learn 8x8 digits). Importing this stays light: torch loads
only when a build runs."""

from __future__ import annotations

from model_build.digits.build import MODEL_NAME, build_digits
from model_build.digits.data import load_sample
from model_build.result import BuildResult

__all__ = ["MODEL_NAME", "BuildResult", "build_digits", "load_sample"]
