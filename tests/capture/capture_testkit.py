"""The model the capture tests shadow and compare: ``digits`` (four features in, ten logits
out), versions registered straight into a registry as ``modelway publish`` records them."""

from __future__ import annotations

from typing import Any

from functions.core.clock import utc_now
from functions.core.manifest import Manifest, ParityReport, Signature, TensorSpec
from functions.core.registry.base import ModelVersion

LABELS = [str(d) for d in range(10)]
SIGNATURE = Signature(
    inputs=[TensorSpec(name="input", datatype="FP32", shape=[-1, 4])],
    outputs=[TensorSpec(name="logits", datatype="FP32", shape=[-1, 10])],
)


def register_digits(registry: Any, number: int, *, artifact_uri: str, endpoint: str) -> None:
    """Register ``digits`` version ``number`` (the next one), labelled, served by ``endpoint``."""
    registry.next_version(model="digits")
    manifest = Manifest(
        name="digits",
        version=number,
        sha256=f"{number:064x}",
        signature=SIGNATURE,
        labels=LABELS,
        parity=ParityReport(samples=2, tolerance=1e-4, passed=True),
    )
    registry.register_version(
        version=ModelVersion(
            model="digits",
            version=number,
            sha256=f"{number:064x}",
            artifact_uri=artifact_uri,
            manifest=manifest.to_json_dict(),
            created_at=utc_now(),
            created_by="tests",
            endpoint_name=endpoint,
            variant_name=f"v{number}",
        )
    )
