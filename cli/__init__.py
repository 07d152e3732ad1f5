"""The ``modelway`` command: one argparse tree, one module per group of subcommands.

The command drives the whole platform, so it sits above the other packages: it builds and
packages models through ``model_build``, publishes and moves aliases through ``functions.core``
(its backends from ``functions.core.backends``, the one wiring point), starts ``serving`` and the
router for ``modelway up``, and reads ``cdk.json`` through ``infra.config`` for ``modelway cost``.
None of those imports it.

Every command module exposes ``register(subparsers)`` and keeps its heavy imports (torch,
onnx, the servers) inside the functions it runs, so ``modelway --help`` stays instant.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from functions.core.exceptions import ModelwayError


def build_parser() -> argparse.ArgumentParser:
    # Plain imports: a command module that is missing or broken fails the CLI, never drops its
    # commands quietly. Inside the function, since the modules use this package's helpers.
    from cli import (
        aliases,
        approval,
        batch,
        build,
        cost,
        invoke,
        keys,
        mirror,
        package,
        shadow,
        up,
        versions,
    )

    parser = argparse.ArgumentParser(
        prog="modelway", description="Serve ONNX models over the Open Inference Protocol."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        build,
        package,
        versions,
        aliases,
        approval,
        mirror,
        keys,
        up,
        invoke,
        batch,
        shadow,
        cost,
    ):
        module.register(subparsers)
    return parser


def print_json(value: Any) -> None:
    from cli.output import print_json as write

    write(value)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    from cli.output import print_table as write

    write(headers, rows)


# Long work: progress bars on a terminal while these run (cli.output).
PROGRESS_COMMANDS = ("build", "package", "publish", "batch", "replay")


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser that runs a command: those with a ``func`` (``modelway jobs`` runs one and
    has subcommands too), and those with no subcommands below them."""
    children = [
        child
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for child in dict.fromkeys(action.choices.values())
    ]
    own = [parser] if not children or parser.get_default("func") is not None else []
    return own + [leaf for child in children for leaf in _leaf_parsers(child)]


def main(argv: Sequence[str] | None = None) -> int:
    from cli import output

    parser = build_parser()
    output.add_json_flag(_leaf_parsers(parser))
    args = parser.parse_args(argv)
    output.set_json(bool(getattr(args, "json", False)))
    try:
        if args.command in PROGRESS_COMMANDS:
            with output.progress_bars():
                return int(args.func(args) or 0)
        return int(args.func(args) or 0)
    except ModelwayError as exc:
        output.print_error(exc.message, exc.code)
        return output.EXIT_USAGE if exc.code == "usage" else output.EXIT_FAILED
    except KeyboardInterrupt:
        return output.EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
