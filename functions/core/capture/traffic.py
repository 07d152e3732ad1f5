"""Changing an alias's shadow and capture settings: the one way the router's PUT and the CLI
both take (settings given change, the others stay; removing the shadow stops shadowing)."""

from __future__ import annotations

from functions.core.registry.base import Alias, Registry


class _Keep:
    """A setting left as it is (as opposed to None, which clears the shadow version)."""


KEEP = _Keep()


def set_traffic(
    *,
    registry: Registry,
    model: str,
    alias: str,
    actor: str,
    shadow_version: int | _Keep | None = KEEP,
    shadow_percent: int | _Keep = KEEP,
    capture_percent: int | _Keep = KEEP,
) -> Alias:
    """Raises what ``Registry.set_alias_traffic`` raises (``AliasNotFound``, ...)."""
    current = registry.get_alias(model=model, alias=alias)
    shadow = current.shadow_version if isinstance(shadow_version, _Keep) else shadow_version
    if shadow_version is None:
        rate = 0  # removing the shadow stops shadowing, whatever the rate said
    elif isinstance(shadow_percent, _Keep):
        rate = current.shadow_percent
    else:
        rate = shadow_percent
    return registry.set_alias_traffic(
        model=model,
        alias=alias,
        actor=actor,
        shadow_version=shadow,
        shadow_percent=rate,
        capture_percent=(
            current.capture_percent if isinstance(capture_percent, _Keep) else capture_percent
        ),
    )
