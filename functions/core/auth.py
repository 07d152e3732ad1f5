"""API key secrets: generation and hashing. Only the hash is ever stored."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "mw"


def new_key_id() -> str:
    return "key_" + secrets.token_hex(6)


def new_secret(*, key_id: str) -> str:
    """``mw_<key id>_<43 url-safe chars>``: 256 bits of entropy, and the id readable in logs."""
    return f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    # Secrets are 256-bit random, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
