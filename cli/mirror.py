"""The SageMaker Model Registry mirror from the command line: ``modelway mirror sync``, and the
report of the mirror write that follows a publish or a decision."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from functions.core.backends import current

if TYPE_CHECKING:
    from functions.core.backends import Backends


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mirror = subparsers.add_parser(
        "mirror",
        help="the SageMaker Model Registry mirror (AWS)",
        description=(
            "On AWS every publish, approve and reject also writes the SageMaker Model "
            "Registry (a package group per model, a package per version). modelway's registry "
            "is the source of truth: if that write failed, 'mirror sync' repeats it."
        ),
    )
    mirror_commands = mirror.add_subparsers(dest="mirror_command", required=True, metavar="ACTION")
    mirror_sync = mirror_commands.add_parser(
        "sync",
        help="make the model's packages match modelway's versions and decisions",
    )
    mirror_sync.add_argument("model")
    mirror_sync.add_argument("version", type=int, nargs="?", default=None)
    mirror_sync.set_defaults(func=_mirror_sync)


def report_mirror(backends: Backends, *, model: str, version: int) -> dict[str, str] | None:
    """The SageMaker Model Registry after a registry write (AWS; None locally). A failure is
    reported, on stderr too, and leaves the recorded version or decision as it is."""
    from functions.core.mirror import sync_after_write

    result = sync_after_write(
        mirror=backends.mirror, registry=backends.registry, model=model, version=version
    )
    if result.status == "failed":
        print(f"warning: {result.error}; retry with '{result.retry}'", file=sys.stderr)
    return None if result.status == "off" else result.view()


def _mirror_sync(args: argparse.Namespace) -> int:
    """Bring the SageMaker Model Registry up to date with modelway's registry: the version
    given, or every version of the model. Exit 1 if any could not be synced."""
    from cli import print_json
    from functions.core.mirror import sync_after_write

    backends = current()
    registry = backends.registry
    numbers = (
        [args.version]
        if args.version is not None
        else [v.version for v in registry.list_versions(model=args.model)]
    )
    results = {
        str(number): sync_after_write(
            mirror=backends.mirror, registry=registry, model=args.model, version=number
        )
        for number in numbers
    }
    print_json({"model": args.model, "versions": {n: r.view() for n, r in results.items()}})
    return 1 if any(r.status == "failed" for r in results.values()) else 0
