"""Approval decisions: ``modelway approve | reject``. Where approval is required (prod), aliases
move only to versions another admin approved; each decision is mirrored to SageMaker on AWS."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from cli.actor import current_actor
from cli.mirror import report_mirror
from functions.core.backends import current


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for command, decision, summary in (
        ("approve", "approved", "approve a version for alias moves (who and why are recorded)"),
        ("reject", "rejected", "reject a version: aliases may not move to it where gated"),
    ):
        decide = subparsers.add_parser(
            command,
            help=summary,
            description=(
                f"{summary}. Where MODELWAY_REQUIRE_APPROVAL is on (prod), aliases move only to "
                "approved versions and a version's publisher cannot approve it."
            ),
        )
        decide.add_argument("model")
        decide.add_argument("version", type=int)
        decide.add_argument("--reason", default="")
        decide.set_defaults(func=_decide, decision=decision)


def _decide(args: argparse.Namespace) -> int:
    from cli import print_json
    from functions.core import approval

    backends = current()
    decision = approval.decide(
        registry=backends.registry,
        model=args.model,
        version=args.version,
        decision=args.decision,
        actor=current_actor(),
        reason=args.reason,
        two_person=backends.settings.require_approval,
    )
    view: dict[str, Any] = dataclasses.asdict(decision)
    mirrored = report_mirror(backends, model=args.model, version=args.version)
    if mirrored is not None:
        view["mirror"] = mirrored
    print_json(view)
    return 0
