"""What a build hands back to its caller (the CLI, ``modelway up``, tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from functions.core.manifest import Manifest


@dataclass(frozen=True)
class BuildResult:
    # The verified model.tar.gz, ready for ``modelway publish``.
    artifact: Path
    manifest: Manifest
    seconds: float

    @property
    def test_accuracy(self) -> float:
        return self.manifest.metrics["test_accuracy"]

    def summary(self) -> dict[str, object]:
        """The figures a person running a build wants to see."""
        return {
            "artifact": str(self.artifact),
            "name": self.manifest.name,
            "sha256": self.manifest.sha256,
            "signature": {
                side: [
                    f"{spec.name} {spec.datatype} {spec.shape}"
                    + (f" max {spec.max_shape}" if spec.max_shape else "")
                    for spec in getattr(self.manifest.signature, side)
                ]
                for side in ("inputs", "outputs")
            },
            "metrics": self.manifest.metrics,
            "parity": self.manifest.parity.model_dump(),
            "latency_ms": self.manifest.latency_ms,
            "build_seconds": round(self.seconds, 2),
        }
