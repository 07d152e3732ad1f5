"""Publish and alias moves through a deployer: the endpoint first, then the registry.

The router sends each request to the variant of the version an alias names, so the order
matters: a version becomes a variant of the endpoint before an alias may point at it. A move
therefore (1) checks its targets can serve, (2) applies the endpoint plan for the state after
the move (``plan.py``), then (3) records the move in the registry. If the endpoint refuses
(it is mid-update), nothing moves. A rollback's target is still a variant (the plan keeps
rollback targets), so its endpoint plan is unchanged and it takes effect at once.

``deployer=None`` (the local stack) goes straight to the registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.core.deploy.base import ENDPOINT_BUSY, Outcome
from functions.core.deploy.plan import EndpointPlan, Target, plan_endpoint
from functions.core.errors import Conflict
from functions.core.registry.exceptions import VersionRetired
from functions.core.registry.rules import check_alias_target

if TYPE_CHECKING:
    from functions.core.deploy.base import Deployer
    from functions.core.registry.base import Alias, ModelVersion, Registry


def deploy_published(*, registry: Registry, deployer: Deployer, version: ModelVersion) -> Outcome:
    """After a version is registered: its Model, and the endpoint carrying it (the newest
    version is always a variant, so it can be tried pinned before any alias moves).

    An endpoint mid-update defers the endpoint change ("deferred") instead of failing the
    publish: the version is registered and its Model exists, and the next move re-plans."""
    deployer.deploy_version(version=version)
    plan = plan_endpoint(registry=registry, model=version.model)
    try:
        return _apply(registry=registry, deployer=deployer, plan=plan)
    except Conflict as exc:
        if exc.code != ENDPOINT_BUSY:
            raise
        return "deferred"


def set_alias(
    *,
    registry: Registry,
    deployer: Deployer | None,
    model: str,
    alias: str,
    version: int,
    actor: str,
    canary_version: int | None = None,
    canary_weight: int = 0,
    wait: bool = False,
) -> Alias:
    if deployer is not None:
        check_alias_target(
            alias=alias, version=version, canary_version=canary_version, canary_weight=canary_weight
        )
        target = Target(version, canary_version, canary_weight)
        _check_servable(registry=registry, model=model, target=target)
        plan = plan_endpoint(registry=registry, model=model, move=(alias, target))
        _apply(registry=registry, deployer=deployer, plan=plan)
        if wait:
            deployer.wait(model=model)
    return registry.set_alias(
        model=model,
        alias=alias,
        version=version,
        actor=actor,
        canary_version=canary_version,
        canary_weight=canary_weight,
    )


def rollback_alias(
    *,
    registry: Registry,
    deployer: Deployer | None,
    model: str,
    alias: str,
    actor: str,
    wait: bool = False,
) -> Alias:
    if deployer is not None:
        history = registry.alias_history(model=model, alias=alias)
        last = history[-1] if history else None
        # Without an earlier target the registry below raises the right error.
        if last is not None and last.from_version is not None:
            target = Target(last.from_version, last.from_canary_version, last.from_canary_weight)
            _check_servable(registry=registry, model=model, target=target)
            plan = plan_endpoint(registry=registry, model=model, move=(alias, target))
            _apply(registry=registry, deployer=deployer, plan=plan)
            if wait:
                deployer.wait(model=model)
    return registry.rollback_alias(model=model, alias=alias, actor=actor)


def _check_servable(*, registry: Registry, model: str, target: Target) -> None:
    """The registry checks again when it records the move; this refuses before SageMaker is
    touched (raises ``ModelNotFound``/``VersionNotFound``/``VersionRetired``)."""
    for number in target.versions:
        if registry.get_version(model=model, version=number).status != "active":
            raise VersionRetired(f"{model} version {number} is retired and cannot serve")


def _apply(*, registry: Registry, deployer: Deployer, plan: EndpointPlan) -> Outcome:
    versions = {v: registry.get_version(model=plan.model, version=v) for v in plan.versions}
    for version in versions.values():
        # Idempotent; heals a version whose Model creation failed after it was registered.
        deployer.deploy_version(version=version)
    return deployer.apply(plan=plan, versions=versions)
