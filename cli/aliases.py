"""Where a model's aliases point and how they got there: ``modelway alias set | alias list |
rollback | history``. On AWS a move updates the endpoint first and waits for it to serve."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cli import print_table
from cli.actor import current_actor
from cli.output import usage
from functions.core.backends import current

if TYPE_CHECKING:
    from functions.core.registry.base import Alias, AliasEvent


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alias = subparsers.add_parser("alias", help="show or move a model's aliases")
    alias_commands = alias.add_subparsers(dest="alias_command", required=True, metavar="ACTION")
    alias_set = alias_commands.add_parser(
        "set",
        help="point an alias at a version, optionally with a canary",
        description=(
            "Point ALIAS at VERSION; with --canary, send --weight percent of its traffic "
            "to the canary version instead. The move is recorded (see 'modelway history')."
        ),
    )
    alias_set.add_argument("model")
    alias_set.add_argument("alias")
    alias_set.add_argument("version", type=int)
    alias_set.add_argument(
        "--canary",
        type=int,
        default=None,
        metavar="VERSION",
        help="canary version (weight 0 unless --weight)",
    )
    alias_set.add_argument(
        "--weight", type=int, default=None, metavar="PCT", help="canary traffic percent, 0..100"
    )
    alias_set.set_defaults(func=_alias_set)
    alias_list = alias_commands.add_parser("list", help="list a model's aliases")
    alias_list.add_argument("model")
    alias_list.set_defaults(func=_alias_list)

    rollback = subparsers.add_parser(
        "rollback",
        help="return an alias to its previous target",
        description=(
            "Return ALIAS to where it pointed before its last move (version and canary). "
            "A rollback is itself a move, so rolling back twice returns to where you started."
        ),
    )
    rollback.add_argument("model")
    rollback.add_argument("alias")
    rollback.set_defaults(func=_rollback)

    history = subparsers.add_parser("history", help="show who moved a model's aliases, and when")
    history.add_argument("model")
    history.add_argument("--alias", default=None)
    history.set_defaults(func=_history)


def _alias_set(args: argparse.Namespace) -> int:
    from cli import print_json

    if args.weight is not None and args.canary is None:
        raise usage("--weight needs --canary VERSION")
    from functions.core.deploy import rollout
    from functions.core.registry.base import PendingMove

    # On AWS the endpoint is updated first; the CLI can afford to wait until it is InService.
    alias = rollout.set_alias(
        registry=current().registry,
        deployer=current().deployer,
        wait=True,
        model=args.model,
        alias=args.alias,
        version=args.version,
        actor=current_actor(),
        canary_version=args.canary,
        canary_weight=args.weight if args.weight is not None else 0,
        require_approval=current().settings.require_approval,
    )
    if isinstance(alias, PendingMove):
        print_json({**dataclasses.asdict(alias), "pending": True})
        print(
            "the endpoint does not serve the target yet: the move is made when it does",
            file=sys.stderr,
        )
        return 0
    print_json(_alias_dict(alias))
    return 0


def _alias_list(args: argparse.Namespace) -> int:
    aliases = current().registry.list_aliases(model=args.model)
    rows = [
        [
            a.alias,
            str(a.version),
            str(a.canary_version) if a.canary_version is not None else "-",
            f"{a.canary_weight}%" if a.canary_version is not None else "-",
            a.updated_at,
            a.updated_by,
        ]
        for a in aliases
    ]
    print_table(["ALIAS", "VERSION", "CANARY", "WEIGHT", "UPDATED", "BY"], rows)
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from cli import print_json
    from functions.core.deploy import rollout

    backends = current()
    alias = rollout.rollback_alias(
        registry=backends.registry,
        deployer=backends.deployer,
        wait=True,
        model=args.model,
        alias=args.alias,
        actor=current_actor(),
        require_approval=backends.settings.require_approval,
    )
    print_json(_alias_dict(alias))
    return 0


def _history(args: argparse.Namespace) -> int:
    registry = current().registry
    events = registry.alias_history(model=args.model, alias=args.alias)
    rows = [
        [e.at, e.alias, e.action, _describe_target(e, "from"), _describe_target(e, "to"), e.actor]
        for e in events
    ]
    # Approval decisions sit beside the moves, in time order; ISO timestamps sort as text.
    rows += [
        [
            d.at,
            "-",
            d.decision,
            "-",
            f"v{d.version}" + (f" ({d.reason})" if d.reason else ""),
            d.actor,
        ]
        for d in registry.list_decisions(model=args.model)
    ]
    rows.sort(key=lambda row: row[0])
    print_table(["AT", "ALIAS", "ACTION", "FROM", "TO", "BY"], rows)
    return 0


# Rendering ----------------------------------------------------------------------------------


def alias_pointers(aliases: Sequence[Alias]) -> dict[int, list[str]]:
    pointers: dict[int, list[str]] = {}
    for a in aliases:
        pointers.setdefault(a.version, []).append(a.alias)
        if a.canary_version is not None:
            pointers.setdefault(a.canary_version, []).append(f"{a.alias}(canary)")
    return pointers


def describe_alias(alias: Alias) -> str:
    text = f"{alias.alias}=v{alias.version}"
    if alias.canary_version is not None:
        text += f"+v{alias.canary_version}@{alias.canary_weight}%"
    return text


def _describe_target(event: AliasEvent, side: str) -> str:
    version = getattr(event, f"{side}_version")
    if version is None:
        return "-"
    canary = getattr(event, f"{side}_canary_version")
    weight = getattr(event, f"{side}_canary_weight")
    text = f"v{version}" + (f"+v{canary}@{weight}%" if canary is not None else "")
    shadow = getattr(event, f"{side}_shadow_version")
    if shadow is not None:
        text += f" shadow v{shadow}@{getattr(event, f'{side}_shadow_percent')}%"
    capture = getattr(event, f"{side}_capture_percent")
    if capture:
        text += f" capture {capture}%"
    return text


def _alias_dict(alias: Alias) -> dict[str, Any]:
    return dataclasses.asdict(alias)
