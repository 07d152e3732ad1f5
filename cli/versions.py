"""A model's versions: ``modelway publish | versions | models | retire``.
Each talks to the registry and artifact store the settings choose (local or AWS)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cli import print_table
from cli.actor import current_actor
from cli.aliases import alias_pointers, describe_alias
from cli.mirror import report_mirror
from functions.core.backends import current


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

    retire = subparsers.add_parser(
        "retire",
        help="retire a version (refused while an alias or canary points at it)",
    )
    retire.add_argument("model")
    retire.add_argument("version", type=int)
    retire.set_defaults(func=_retire)


def _publish(args: argparse.Namespace) -> int:
    from cli import print_json
    from functions.core.publishing import publish_artifact
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
    mirrored = report_mirror(backends, model=version.model, version=version.version)
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
    pointers = alias_pointers(registry.list_aliases(model=args.model))
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
        aliases = " ".join(describe_alias(a) for a in registry.list_aliases(model=model))
        rows.append([model, str(versions[-1].version), str(active), aliases or "-"])
    print_table(["MODEL", "LATEST", "ACTIVE", "ALIASES"], rows)
    return 0


def _retire(args: argparse.Namespace) -> int:
    from cli import print_json

    version = current().registry.retire_version(
        model=args.model, version=args.version, actor=current_actor()
    )
    print_json({"model": version.model, "version": version.version, "status": version.status})
    return 0
