"""Hugging Face encoders from a local directory -> text-in artifacts (``package_hf``).
Importing this stays light: torch and transformers load only when a package runs."""

from __future__ import annotations

from model_build.hf.exceptions import HfModelError
from model_build.hf.package import package_hf
from model_build.hf.source import FEATURE_EXTRACTION, TASKS, TEXT_CLASSIFICATION

__all__ = ["FEATURE_EXTRACTION", "TASKS", "TEXT_CLASSIFICATION", "HfModelError", "package_hf"]
