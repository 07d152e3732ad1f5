"""The CDK app: ``cdk synth|deploy -c env=dev|staging|prod``.

The environments live in ``cdk.json`` under the ``environments`` context key. This is the
only module that reads context: it parses the chosen environment into an
:class:`~infra.config.EnvironmentConfig` and hands typed values to the stack. Account and
region come from the CDK CLI (``CDK_DEFAULT_ACCOUNT`` / ``CDK_DEFAULT_REGION``, i.e. the
credentials' defaults); without them the stack is environment-agnostic.

Run by the CLI as ``.venv/bin/python -m infra.app`` (see ``cdk.json``), from the repo root.
"""

from __future__ import annotations

import os
import sys

import aws_cdk as cdk

from infra.config import ConfigError, load_environment
from infra.stacks.modelway_stack import ModelwayStack


def build(app: cdk.App) -> ModelwayStack:
    """Adds the stack of the environment that ``-c env=NAME`` chose to ``app``."""
    config = load_environment(
        app.node.try_get_context("environments"), app.node.try_get_context("env")
    )
    return ModelwayStack(
        app,
        f"modelway-{config.name}",
        config=config,
        env=cdk.Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=os.environ.get("CDK_DEFAULT_REGION"),
        ),
    )


def main() -> None:
    app = cdk.App()
    try:
        build(app)
    except ConfigError as exc:
        print(f"modelway: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    app.synth()


if __name__ == "__main__":
    main()
