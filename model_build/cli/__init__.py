"""The ``modelway`` command: one argparse tree, one module per group of subcommands.

Every command module exposes ``register(subparsers)`` and keeps its heavy imports (torch,
onnx, the servers) inside the functions it runs, so ``modelway --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from functions.core.errors import ModelwayError

# Each names a module in this package with ``register(subparsers)``.
COMMAND_MODULES = ("build", "package", "publish", "keys", "up", "invoke", "batch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelway", description="Serve ONNX models over the Open Inference Protocol."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"model_build.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"model_build.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False, default=str))


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """A compact left-aligned table; '(none)' when empty."""
    if not rows:
        print("(none)")
        return
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    for row in [headers, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ModelwayError as exc:
        print(f"error: {exc.message} ({exc.code})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
