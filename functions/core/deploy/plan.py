"""Which versions a model's endpoint carries, and the variant weights.

The router names the variant on every call (``TargetVariant``), so a version must be a
variant of the endpoint before any alias sends traffic to it, and a rollback target must
still be one for the rollback to be instant. The endpoint therefore carries:

- every version an alias or its canary points at,
- every version an alias pointed at before its last move (its rollback target),
- the newest active version, so a fresh publish can be tried pinned before promotion,
- every version a pending alias move waits for (``rollout``),

minus retired versions (they cannot serve). Of these, the versions an alias, its canary or a
pending move points at are ``hot``: with inference components (``deploy/components.py``) only
they keep copies running; the others scale to zero until asked for. Weights matter only to
callers that name no variant: they follow the ``default`` alias's canary split (other
variants get 0); without a ``default`` alias every variant gets the same weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.core.registry.base import DEFAULT_ALIAS
from functions.core.registry.exceptions import ModelNotFound

if TYPE_CHECKING:
    from functions.core.registry.base import Registry


@dataclass(frozen=True)
class Target:
    """Where an alias points: a version, and optionally a canary taking ``canary_weight``%."""

    version: int
    canary_version: int | None = None
    canary_weight: int = 0

    @property
    def versions(self) -> tuple[int, ...]:
        return (
            (self.version,)
            if self.canary_version is None
            else (
                self.version,
                self.canary_version,
            )
        )


@dataclass(frozen=True)
class EndpointPlan:
    model: str
    versions: tuple[int, ...]  # ascending
    weights: dict[int, int]  # version -> weight (percent of un-targeted traffic)
    hot: frozenset[int] = frozenset()  # versions some alias (or a pending move) points at


def plan_endpoint(
    *, registry: Registry, model: str, move: tuple[str, Target] | None = None
) -> EndpointPlan:
    """The plan for the registry's current state, or for the state after ``move`` (an alias
    and its new target) if one is given."""
    try:
        versions = registry.list_versions(model=model)
    except ModelNotFound:
        versions = []
    active = {v.version for v in versions if v.status == "active"}
    current: dict[str, Target] = {
        a.alias: Target(a.version, a.canary_version, a.canary_weight)
        for a in registry.list_aliases(model=model)
    }
    previous: dict[str, Target] = {}
    for event in registry.alias_history(model=model):
        if event.from_version is not None:
            previous[event.alias] = Target(
                event.from_version, event.from_canary_version, event.from_canary_weight
            )
        else:
            previous.pop(event.alias, None)
    if move is not None:
        alias, target = move
        if alias in current:
            previous[alias] = current[alias]
        current[alias] = target
        # The targets of a move are checked active by the caller; keep them even if the
        # registry read above raced their publication.
        active.update(target.versions)
    pending = [
        Target(m.version, m.canary_version, m.canary_weight)
        for m in registry.list_pending_moves(model=model)
    ]
    wanted = {v for t in (*current.values(), *previous.values(), *pending) for v in t.versions}
    if active:
        wanted.add(max(active))
    serving = tuple(sorted(wanted & active))
    hot = {v for t in (*current.values(), *pending) for v in t.versions}
    return EndpointPlan(
        model=model,
        versions=serving,
        weights=_weights(serving, current),
        hot=frozenset(hot & set(serving)),
    )


def _weights(serving: tuple[int, ...], current: dict[str, Target]) -> dict[int, int]:
    default = current.get(DEFAULT_ALIAS)
    if default is None or default.version not in serving:
        return dict.fromkeys(serving, 1)
    weights = dict.fromkeys(serving, 0)
    weights[default.version] = 100 - default.canary_weight
    if default.canary_version is not None and default.canary_version in weights:
        weights[default.canary_version] += default.canary_weight
    if not any(weights.values()):
        return dict.fromkeys(serving, 1)
    return weights
