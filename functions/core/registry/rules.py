"""Rules every registry backend applies, so both refuse (and move) alike."""

from __future__ import annotations

from functions.core.clock import utc_now
from functions.core.naming import is_alias_name, is_version_number
from functions.core.registry.base import Alias
from functions.core.registry.exceptions import InvalidAliasTarget, VersionNotFound


def check_alias_target(
    *, alias: str, version: int, canary_version: int | None, canary_weight: int
) -> None:
    """Raises ``InvalidAliasTarget`` for a bad alias name, a weight outside 0..100, a weight
    without a canary, or a canary equal to the main version; ``VersionNotFound`` for a number
    no version can have (past 64 bits, say)."""
    check_alias_name(alias)
    for number in (version, canary_version):
        if number is not None and not is_version_number(number):
            raise VersionNotFound(f"model has no version {number}")
    if not 0 <= canary_weight <= 100:
        raise InvalidAliasTarget(f"canary weight must be 0..100, got {canary_weight}")
    if canary_version is None and canary_weight:
        raise InvalidAliasTarget("a canary weight needs a canary version")
    if canary_version is not None and canary_version == version:
        raise InvalidAliasTarget("the canary version must differ from the alias's version")


def check_alias_name(alias: str) -> None:
    if not is_alias_name(alias):
        raise InvalidAliasTarget(
            f"invalid alias name {alias!r}: lowercase letters, digits, '-' and '_', "
            "starting with a letter, at most 32 characters"
        )


def check_alias_traffic(
    *, alias: str, shadow_version: int | None, shadow_percent: int, capture_percent: int
) -> None:
    """Raises ``InvalidAliasTarget`` for rates outside 0..100 or a shadow rate without a shadow
    version; ``VersionNotFound`` for a number no version can have."""
    check_alias_name(alias)
    if shadow_version is not None and not is_version_number(shadow_version):
        raise VersionNotFound(f"model has no version {shadow_version}")
    for name, value in (("shadow", shadow_percent), ("capture", capture_percent)):
        if not 0 <= value <= 100:
            raise InvalidAliasTarget(f"{name} percent must be 0..100, got {value}")
    if shadow_version is None and shadow_percent:
        raise InvalidAliasTarget("a shadow percent needs a shadow version")


def moved_alias(
    *,
    before: Alias | None,
    model: str,
    alias: str,
    target: tuple[int, int | None, int],
    actor: str,
) -> Alias:
    """The alias after a move to ``target`` (version, canary version, canary weight), stamped
    now: a move keeps the alias's shadow and capture settings."""
    version, canary_version, canary_weight = target
    return Alias(
        model=model,
        alias=alias,
        version=version,
        canary_version=canary_version,
        canary_weight=canary_weight,
        updated_at=utc_now(),
        updated_by=actor,
        shadow_version=before.shadow_version if before else None,
        shadow_percent=before.shadow_percent if before else 0,
        capture_percent=before.capture_percent if before else 0,
    )
