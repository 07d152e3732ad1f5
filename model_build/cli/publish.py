"""Versions and aliases: ``modelway publish | versions | models | alias | rollback | history |
approve | reject | mirror sync | retire``.
Each talks to the registry and artifact store the settings choose (local or AWS)."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.core.backends import current
from model_build.cli import print_table

if TYPE_CHECKING:
    from functions.core.backends import Backends
    from functions.core.registry.base import Alias, AliasEvent


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    publish = subparsers.add_parser(
        "publish",
        help="verify a model.tar.gz and publish it as the model's next version",
        description=(
            "Verify the artifact (manifest, checksum, parity, ONNX graph), store it and "
            "register it as a new immutable version. Publishing a model file that is already "
            "registered changes nothing and names the existing version. The new version gets "
            "the alias given by --alias (created or moved; 'default' unless --no-alias), and "
            "a model's first version always gets 'default'."
        ),
    )
    publish.add_argument("artifact", type=Path, help="path to model.tar.gz")
    target = publish.add_mutually_exclusive_group()
    target.add_argument(
        "--alias", default="default", help="alias to point at the new version (default: default)"
    )
    target.add_argument(
        "--no-alias",
        dest="alias",
        action="store_const",
        const=None,
        help="move no alias (a model's first version still gets 'default')",
    )
    publish.set_defaults(func=_publish)

    versions = subparsers.add_parser("versions", help="list a model's versions")
    versions.add_argument("model")
    versions.set_defaults(func=_versions)

    models = subparsers.add_parser("models", help="list models and their aliases")
    models.set_defaults(func=_models)

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

    retire = subparsers.add_parser(
        "retire",
        help="retire a version (refused while an alias or canary points at it)",
    )
    retire.add_argument("model")
    retire.add_argument("version", type=int)
    retire.set_defaults(func=_retire)


def current_actor() -> str:
    """Who the registry records for a move: $MODELWAY_ACTOR, else the OS user."""
    actor = os.environ.get("MODELWAY_ACTOR")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


# Commands -----------------------------------------------------------------------------------
def _publish(args: argparse.Namespace) -> int:
    from functions.core.publishing import publish_artifact
    from model_build.cli import print_json
    from model_build.verify import verify_artifact

    backends = current()
    result = publish_artifact(
        path=args.artifact,
        registry=backends.registry,
        store=backends.store,
        settings=backends.settings,
        actor=current_actor(),
        alias=args.alias,
        verify=verify_artifact,
        deployer=backends.deployer,
    )
    version = result.version
    mirrored = _mirror(backends, model=version.model, version=version.version)
    summary: dict[str, Any] = {
        "model": version.model,
        "version": version.version,
        "created": result.created,
        "sha256": version.sha256,
        "artifact_uri": version.artifact_uri,
        "aliases": {a.alias: a.version for a in result.aliases},
        # Moves waiting for the version to serve on the endpoint (AWS): made when it does.
        **({"pending": {m.alias: m.version for m in result.pending}} if result.pending else {}),
    }
    if result.held:
        # The approval gate (prod): the version serves pinned until another admin approves it.
        summary["held"] = {"aliases": list(result.held), "reason": result.held_reason}
    if mirrored is not None:
        summary["mirror"] = mirrored
    if not result.created:
        summary["note"] = (
            f"this model file is already {version.model} version {version.version}; "
            "nothing was published"
        )
    print_json(summary)
    return 0


def _versions(args: argparse.Namespace) -> int:
    registry = current().registry
    versions = registry.list_versions(model=args.model)
    pointers = _alias_pointers(registry.list_aliases(model=args.model))
    rows = [
        [
            str(v.version),
            v.status,
            ",".join(pointers.get(v.version, [])) or "-",
            v.sha256[:12],
            v.created_at,
            v.created_by,
        ]
        for v in versions
    ]
    print_table(["VERSION", "STATUS", "ALIASES", "SHA256", "CREATED", "BY"], rows)
    return 0


def _models(args: argparse.Namespace) -> int:
    registry = current().registry
    rows = []
    for model in registry.list_models():
        versions = registry.list_versions(model=model)
        active = sum(1 for v in versions if v.status == "active")
        aliases = " ".join(_describe_alias(a) for a in registry.list_aliases(model=model))
        rows.append([model, str(versions[-1].version), str(active), aliases or "-"])
    print_table(["MODEL", "LATEST", "ACTIVE", "ALIASES"], rows)
    return 0


def _alias_set(args: argparse.Namespace) -> int:
    from model_build.cli import print_json

    if args.weight is not None and args.canary is None:
        raise _usage("--weight needs --canary VERSION")
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
    from functions.core.deploy import rollout
    from model_build.cli import print_json

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


def _decide(args: argparse.Namespace) -> int:
    from functions.core import approval
    from model_build.cli import print_json

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
    mirrored = _mirror(backends, model=args.model, version=args.version)
    if mirrored is not None:
        view["mirror"] = mirrored
    print_json(view)
    return 0


def _mirror(backends: Backends, *, model: str, version: int) -> dict[str, str] | None:
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
    from functions.core.mirror import sync_after_write
    from model_build.cli import print_json

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


def _retire(args: argparse.Namespace) -> int:
    from model_build.cli import print_json

    version = current().registry.retire_version(
        model=args.model, version=args.version, actor=current_actor()
    )
    print_json({"model": version.model, "version": version.version, "status": version.status})
    return 0


# Rendering ----------------------------------------------------------------------------------
def _usage(message: str) -> Exception:
    from functions.core.exceptions import InvalidRequest

    return InvalidRequest(message, code="usage")


def _alias_pointers(aliases: Sequence[Alias]) -> dict[int, list[str]]:
    pointers: dict[int, list[str]] = {}
    for a in aliases:
        pointers.setdefault(a.version, []).append(a.alias)
        if a.canary_version is not None:
            pointers.setdefault(a.canary_version, []).append(f"{a.alias}(canary)")
    return pointers


def _describe_alias(alias: Alias) -> str:
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
