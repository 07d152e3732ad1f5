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


def _build_digits(args: argparse.Namespace) -> int:
    from model_build.cli import print_json
    from model_build.digits import MODEL_NAME, build_digits

    out_dir = args.out if args.out is not None else default_out_dir(MODEL_NAME)
    result = build_digits(out_dir=out_dir, seed=args.seed)
    print_json(result.summary())
    return 0
