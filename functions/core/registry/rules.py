"""Checks every registry backend makes before it touches storage, so both refuse alike."""

from __future__ import annotations

from functions.core.naming import ALIAS_NAME_RE
from functions.core.registry.exceptions import InvalidAliasTarget


def check_alias_target(
    *, alias: str, version: int, canary_version: int | None, canary_weight: int
) -> None:
    """Raises ``InvalidAliasTarget`` for a bad alias name, a weight outside 0..100, a weight
    without a canary, or a canary equal to the main version."""
    check_alias_name(alias)
    if not 0 <= canary_weight <= 100:
        raise InvalidAliasTarget(f"canary weight must be 0..100, got {canary_weight}")
    if canary_version is None and canary_weight:
        raise InvalidAliasTarget("a canary weight needs a canary version")
    if canary_version is not None and canary_version == version:
        raise InvalidAliasTarget("the canary version must differ from the alias's version")


def check_alias_name(alias: str) -> None:
    if not ALIAS_NAME_RE.match(alias):
        raise InvalidAliasTarget(
            f"invalid alias name {alias!r}: lowercase letters, digits, '-' and '_', "
            "starting with a letter, at most 32 characters"
        )
