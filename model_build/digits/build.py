"""The digits demo end to end: train → gate on accuracy → ``package_torch`` (export, parity,
latency, artifact), the same packaging API any user's torch module goes through."""

from __future__ import annotations

import time
from pathlib import Path

from functions.core import progress
from model_build.exceptions import QualityGateFailed
from model_build.parity import DEFAULT_TOLERANCE
from model_build.result import BuildResult

MODEL_NAME = "digits"
MIN_TEST_ACCURACY = 0.95
DESCRIPTION = (
    "Handwritten digit classifier (scikit-learn 8x8 digits, small CNN). "
    "input: raw pixel values 0..16, FP32 [n, 1, 8, 8]; outputs: logits [n, 10], label [n]."
)


def build_digits(
    *,
    out_dir: Path,
    min_accuracy: float = MIN_TEST_ACCURACY,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int | None = None,
) -> BuildResult:
    """Build ``out_dir/model.tar.gz``. Raises ``QualityGateFailed`` / ``ParityFailed`` (both
    ``InvalidArtifact``) and writes nothing when the model does not make the grade."""
    from model_build.determinism import deterministic
    from model_build.digits.data import load_split
    from model_build.digits.net import INPUT_NAME, OUTPUT_NAMES
    from model_build.digits.train import SEED, accuracy, train
    from model_build.package import package_torch

    # A different seed is a retrain: a different model file, so a new version when published.
    seed = SEED if seed is None else seed
    started = time.perf_counter()
    progress.report("loading the digits data")
    split = load_split()
    with deterministic(seed=seed):
        model = train(images=split.train_images, labels=split.train_labels, seed=seed)
        train_accuracy = accuracy(model=model, images=split.train_images, labels=split.train_labels)
        test_accuracy = accuracy(model=model, images=split.test_images, labels=split.test_labels)
    if test_accuracy < min_accuracy:
        raise QualityGateFailed(
            f"digits test accuracy {test_accuracy:.4f} is below the required {min_accuracy}"
        )
    result = package_torch(
        model,
        name=MODEL_NAME,
        samples={INPUT_NAME: split.test_images},
        out_dir=out_dir,
        output_names=OUTPUT_NAMES,
        tolerance=tolerance,
        scores_output="logits",
        labels=[str(digit) for digit in range(10)],
        description=DESCRIPTION,
        metrics={
            "test_accuracy": round(test_accuracy, 6),
            "train_accuracy": round(train_accuracy, 6),
            "test_samples": float(len(split.test_labels)),
        },
        source={"recipe": "modelway build digits", "seed": str(seed)},
    )
    return BuildResult(
        artifact=result.artifact, manifest=result.manifest, seconds=time.perf_counter() - started
    )
