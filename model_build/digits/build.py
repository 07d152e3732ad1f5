"""The digits demo end to end: train → gate on accuracy → export → parity → latency → package."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from functions.core.clock import utc_now
from functions.core.manifest import ARTIFACT_NAME, MODEL_FILE_NAME, Manifest
from model_build.errors import ParityFailed, QualityGateFailed
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
    import onnx
    import onnxruntime
    import torch

    from model_build.determinism import deterministic
    from model_build.digits.data import load_split
    from model_build.digits.net import INPUT_NAME, OUTPUT_NAMES
    from model_build.digits.train import SEED, accuracy, train

    # A different seed is a retrain: a different model file, so a new version when published.
    seed = SEED if seed is None else seed
    from model_build.export import EXPORTER, OPSET, export_onnx
    from model_build.latency import measure_latency
    from model_build.package import sha256_file, write_artifact
    from model_build.parity import check_parity
    from model_build.signature import signature_from_onnx
    from model_build.verify import verify_artifact

    started = time.perf_counter()
    split = load_split()
    with deterministic(seed=seed):
        model = train(images=split.train_images, labels=split.train_labels, seed=seed)
        train_accuracy = accuracy(model=model, images=split.train_images, labels=split.train_labels)
        test_accuracy = accuracy(model=model, images=split.test_images, labels=split.test_labels)
    if test_accuracy < min_accuracy:
        raise QualityGateFailed(
            f"digits test accuracy {test_accuracy:.4f} is below the required {min_accuracy}"
        )

    with tempfile.TemporaryDirectory(prefix="modelway-build-") as work:
        onnx_path = export_onnx(
            model=model,
            example=torch.from_numpy(split.test_images[:2]),
            path=Path(work) / MODEL_FILE_NAME,
            input_name=INPUT_NAME,
            output_names=OUTPUT_NAMES,
        )
        parity = check_parity(
            model=model,
            onnx_path=onnx_path,
            inputs=split.test_images,
            input_name=INPUT_NAME,
            output_names=OUTPUT_NAMES,
            scores_output="logits",
            tolerance=tolerance,
        )
        if not parity.passed:
            raise ParityFailed(
                f"ONNX Runtime disagrees with torch on {parity.samples} test images: max abs "
                f"diff {parity.max_abs_diff:.3g} (tolerance {tolerance:g}), argmax agreement "
                f"{parity.argmax_agreement:.4f}"
            )
        latency = measure_latency(
            onnx_path=onnx_path, samples=split.test_images, input_name=INPUT_NAME
        )
        manifest = Manifest(
            name=MODEL_NAME,
            sha256=sha256_file(onnx_path),
            signature=signature_from_onnx(onnx_path),
            frameworks={
                "torch": torch.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
                "opset": str(OPSET),
                "exporter": EXPORTER,
            },
            parity=parity,
            metrics={
                "test_accuracy": round(test_accuracy, 6),
                "train_accuracy": round(train_accuracy, 6),
                "test_samples": float(len(split.test_labels)),
            },
            latency_ms=latency,
            labels=[str(digit) for digit in range(10)],
            description=DESCRIPTION,
            created_at=utc_now(),
        )
        artifact = write_artifact(
            model_path=onnx_path, manifest=manifest, dest=out_dir / ARTIFACT_NAME
        )
    # The same gate publishing applies; a build that cannot pass it should not claim success.
    verify_artifact(path=artifact)
    return BuildResult(artifact=artifact, manifest=manifest, seconds=time.perf_counter() - started)
