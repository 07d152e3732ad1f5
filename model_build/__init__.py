"""Train, export, check and package models; the ``modelway`` CLI.

The packaging API (heavy imports happen inside each call)::

    from model_build import package_onnx, package_torch, package_hf
"""

from __future__ import annotations

from model_build.package import package_hf, package_onnx, package_torch
from model_build.result import BuildResult

__all__ = ["BuildResult", "package_hf", "package_onnx", "package_torch"]
