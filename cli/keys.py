"""``modelway keys create | list | revoke | rotate``: API keys in the registry the settings
choose. A secret is printed once, when it is made; only its hash is kept."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from cli.output import print_note
from functions.core.backends import current

if TYPE_CHECKING:
    from functions.core.registry.base import ApiKey

_ONCE = "Store this secret now: it is shown only once and cannot be recovered (rotate to replace)."


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = subparsers.add_parser("keys", help="create, list, revoke and rotate API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    create = actions.add_parser(
        "create",
        help="create a key and print its secret (once)",
        description="Create an API key scoped to some models (or '*') and optionally admin.",
    )
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument(
        "--models",
        required=True,
        help="comma-separated model names the key may call, or '*' for every model",
    )
    create.add_argument("--admin", action="store_true", help="allow the control plane too")
    create.add_argument("--tenant", default="default")
    create.set_defaults(func=_create)

    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.set_defaults(func=_list)

    revoke = actions.add_parser("revoke", help="revoke a key; it stops working at once")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_revoke)

    rotate = actions.add_parser(
        "rotate", help="give a key a new secret (printed once); the old one stops at once"
    )
    rotate.add_argument("key_id")
    rotate.set_defaults(func=_rotate)


def _with_secret(key: ApiKey, secret: str) -> dict[str, Any]:
    from functions.core.keys import key_summary

    return {**key_summary(key), "secret": secret}


def _create(args: argparse.Namespace) -> int:
    from cli import print_json
    from functions.core.keys import create_key

    # The router's wiring: on AWS a key is also an API Gateway key on the usage plan, or API
    # Gateway would refuse it.
    backends = current()
    key, secret = create_key(
        registry=backends.registry,
        gateway=backends.key_gateway,
        name=args.name,
        models=args.models.split(","),
        admin=args.admin,
        tenant=args.tenant,
    )
    print_json(_with_secret(key, secret))
    print_note(_ONCE)
    return 0


def _list(args: argparse.Namespace) -> int:
    from cli import print_table

    rows = [
        [
            k.key_id,
            k.name,
            ",".join(k.models),
            "yes" if k.admin else "no",
            "active" if k.active else "revoked",
            k.created_at,
            k.last_used_at or "-",
        ]
        for k in current().registry.list_keys()
    ]
    print_table(["KEY ID", "NAME", "MODELS", "ADMIN", "STATUS", "CREATED", "LAST USED"], rows)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from cli import print_json
    from functions.core.keys import key_summary, revoke_key

    backends = current()
    key = revoke_key(registry=backends.registry, key_id=args.key_id, gateway=backends.key_gateway)
    print_json(key_summary(key))
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from cli import print_json
    from functions.core.keys import rotate_key

    backends = current()
    key, secret = rotate_key(
        registry=backends.registry, key_id=args.key_id, gateway=backends.key_gateway
    )
    print_json(_with_secret(key, secret))
    print_note(_ONCE)
    return 0
