"""Why a build stops: every gate a model must pass before it becomes an artifact.

Subclasses of ``InvalidArtifact`` so that the CLI's one error path (and publishing) treat a
model that fails its quality gate exactly like an artifact that fails verification.
"""

from __future__ import annotations

from functions.core.errors import InvalidArtifact


class QualityGateFailed(InvalidArtifact):
    """The trained model is not good enough to ship (accuracy below the floor)."""

    code = "quality_gate_failed"


class ParityFailed(InvalidArtifact):
    """The exported ONNX graph does not compute what the torch model computes."""

    code = "parity_failed"
