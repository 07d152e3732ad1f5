"""Points the ``modelway`` CLI at a deployed environment.

Every stack publishes a ``Settings`` output: the same ``MODELWAY_*`` variables its router runs
with (table, bucket, usage plans, SageMaker role and image, endpoint prefix, rollback alarm …).
After ``cdk deploy --outputs-file cdk-outputs.json`` this prints them as shell exports::

    eval "$(.venv/bin/python -m infra.outputs cdk-outputs.json)"
    modelway keys list          # now reads and writes that environment's registry

Standard library only: it runs without the CDK installed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SETTINGS_OUTPUT = "Settings"


def settings_from_outputs(outputs: Mapping[str, Any], stack: str | None = None) -> dict[str, str]:
    """The ``MODELWAY_*`` variables of ``stack`` (the only ``modelway-*`` stack by default)."""
    stacks = {name: value for name, value in outputs.items() if SETTINGS_OUTPUT in value}
    if stack is None:
        if len(stacks) != 1:
            raise ValueError(f"choose a stack with --stack (found: {', '.join(stacks) or 'none'})")
        (stack,) = stacks
    if stack not in stacks:
        raise ValueError(f"no {SETTINGS_OUTPUT!r} output for stack {stack!r}")
    settings = json.loads(stacks[stack][SETTINGS_OUTPUT])
    return {str(k): str(v) for k, v in settings.items()}


def exports(settings: Mapping[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in settings.items())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.outputs",
        description="Print a deployed environment's MODELWAY_* settings as shell exports.",
    )
    parser.add_argument("outputs_file", type=Path, help="written by cdk deploy --outputs-file")
    parser.add_argument("--stack", help="stack name, e.g. modelway-prod")
    args = parser.parse_args(argv)
    try:
        outputs = json.loads(args.outputs_file.read_text())
        sys.stdout.write(exports(settings_from_outputs(outputs, args.stack)))
    except (OSError, ValueError) as exc:
        print(f"modelway: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
