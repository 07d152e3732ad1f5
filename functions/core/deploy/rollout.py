"""Publish and alias moves through a deployer: the endpoint first, then the registry.

The router sends each request to the variant of the version an alias names, so an alias
moves when its target can answer. A move (1) checks its targets can serve, (2) starts the
endpoint change the state after the move needs (``plan.py``; an endpoint that is already
changing defers it), then (3) records the move — at once if every target is live on the
endpoint (or the alias is new: nothing answered for it before), else as a *pending move*
(``Registry.put_pending_move``) that ``complete_pending_moves`` turns into the move once
SageMaker serves the target: the endpoint-events function runs it when SageMaker reports the
endpoint ``InService``, and every later move or publish of the model runs it too. Until
then the alias keeps answering from its current target. A rollback's target is still a
variant (the plan keeps rollback targets), so it takes effect at once.

A publish either completes or can be resumed: re-publishing the same file finds the version
registered and carries on with what is left (the endpoint, the alias).

``deployer=None`` (the local stack) goes straight to the registry.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from functions.core import approval
from functions.core.clock import utc_now
from functions.core.deploy.base import ENDPOINT_BUSY, Outcome
from functions.core.deploy.plan import EndpointPlan, Target, plan_endpoint
from functions.core.exceptions import Conflict, NotFound
from functions.core.registry.base import PendingMove
from functions.core.registry.exceptions import AliasNotFound, VersionRetired
from functions.core.registry.rules import check_alias_target

if TYPE_CHECKING:
    from functions.core.deploy.base import Deployer
    from functions.core.registry.base import Alias, ModelVersion, Registry

logger = logging.getLogger("modelway.deploy")


def deploy_published(*, registry: Registry, deployer: Deployer, version: ModelVersion) -> Outcome:
    """After a version is registered: its Model, and the endpoint carrying it (the newest
    version is always a variant, so it can be tried pinned before any alias moves).

    An endpoint mid-update defers the endpoint change ("deferred") instead of failing the
    publish: the version is registered and its Model exists, and the next move re-plans."""
    deployer.deploy_version(version=version)
    plan = plan_endpoint(registry=registry, model=version.model)
    return _apply_or_defer(registry=registry, deployer=deployer, plan=plan)


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
    require_approval: bool = False,
) -> Alias | PendingMove:
    """The alias moved, or the move pending until its target is live (see the module).
    ``require_approval`` (the environment's gate) refuses targets not approved
    (``approval.NotApproved``, 409) before anything changes."""
    if require_approval:
        approval.check_move(registry=registry, model=model, versions=(version, canary_version))
    if deployer is None:
        return registry.set_alias(
            model=model,
            alias=alias,
            version=version,
            actor=actor,
            canary_version=canary_version,
            canary_weight=canary_weight,
        )
    check_alias_target(
        alias=alias, version=version, canary_version=canary_version, canary_weight=canary_weight
    )
    target = Target(version, canary_version, canary_weight)
    _check_servable(registry=registry, model=model, target=target)
    complete_pending_moves(
        registry=registry,
        deployer=deployer,
        model=model,
        apply=False,
        require_approval=require_approval,
    )
    plan = plan_endpoint(registry=registry, model=model, move=(alias, target))
    _apply_or_defer(registry=registry, deployer=deployer, plan=plan)
    if wait:
        _wait_for(registry=registry, deployer=deployer, plan=plan)
    live = deployer.live_versions(model=model)
    if live is None or set(target.versions) <= live or not _exists(registry, model, alias):
        record = registry.set_alias(
            model=model,
            alias=alias,
            version=version,
            actor=actor,
            canary_version=canary_version,
            canary_weight=canary_weight,
        )
        _forget_pending(registry=registry, model=model, alias=alias)
        return record
    return registry.put_pending_move(
        move=PendingMove(
            model=model,
            alias=alias,
            version=version,
            canary_version=canary_version,
            canary_weight=canary_weight,
            actor=actor,
            requested_at=utc_now(),
        )
    )


def complete_pending_moves(
    *,
    registry: Registry,
    deployer: Deployer,
    model: str,
    apply: bool = True,
    require_approval: bool = False,
) -> list[Alias]:
    """Records each pending move of ``model`` whose target is now live on the endpoint;
    returns the moves made. With ``apply``, a pending target the endpoint does not carry yet
    (its change was deferred while the endpoint was busy) gets its endpoint change started.
    Idempotent: repeating it (SageMaker sends several events per change) is harmless.

    With ``require_approval`` (the environment's gate) the gate is asked again when the move
    is made, not only when it was requested: a target rejected while its move waited is
    dropped, never moved to."""
    moves = registry.list_pending_moves(model=model)
    if not moves:
        return []
    live = deployer.live_versions(model=model)
    done: list[Alias] = []
    waiting = 0
    for move in moves:
        target = Target(move.version, move.canary_version, move.canary_weight)
        if require_approval:
            try:
                approval.check_move(registry=registry, model=model, versions=target.versions)
            except approval.NotApproved as exc:
                logger.warning("dropping the pending move of %s/%s: %s", model, move.alias, exc)
                registry.delete_pending_move(
                    model=model, alias=move.alias, requested_at=move.requested_at
                )
                continue
        if live is not None and not set(target.versions) <= live:
            waiting += 1
            continue
        try:
            record = registry.set_alias(
                model=model,
                alias=move.alias,
                version=move.version,
                actor=move.actor,
                canary_version=move.canary_version,
                canary_weight=move.canary_weight,
            )
        except (NotFound, VersionRetired):
            # Its target went away meanwhile: the move cannot happen any more.
            logger.warning("dropping the pending move of %s/%s", model, move.alias)
        else:
            done.append(record)
        registry.delete_pending_move(model=model, alias=move.alias, requested_at=move.requested_at)
    if apply and waiting:
        _apply_or_defer(
            registry=registry, deployer=deployer, plan=plan_endpoint(registry=registry, model=model)
        )
    return done


def reconcile(
    *, registry: Registry, deployer: Deployer, model: str, require_approval: bool = False
) -> tuple[Outcome, list[Alias]]:
    """Brings the model's endpoint to the registry's plan again, then makes the pending moves
    whose targets now serve. What a schedule runs where state changes send no event
    (inference components, ``deploy/components.py``): a component started since the last run
    gets its autoscaling, and an alias waiting for it moves. Idempotent."""
    plan = plan_endpoint(registry=registry, model=model)
    outcome = _apply_or_defer(registry=registry, deployer=deployer, plan=plan)
    moved = complete_pending_moves(
        registry=registry,
        deployer=deployer,
        model=model,
        apply=False,
        require_approval=require_approval,
    )
    if moved:
        # The versions the aliases left may now scale to zero (or leave the endpoint).
        plan = plan_endpoint(registry=registry, model=model)
        outcome = _apply_or_defer(registry=registry, deployer=deployer, plan=plan)
    return outcome, moved


def _exists(registry: Registry, model: str, alias: str) -> bool:
    try:
        registry.get_alias(model=model, alias=alias)
    except AliasNotFound:
        return False
    return True


def _forget_pending(*, registry: Registry, model: str, alias: str) -> None:
    """A move recorded now supersedes an older pending move of the same alias."""
    for move in registry.list_pending_moves(model=model):
        if move.alias == alias:
            registry.delete_pending_move(model=model, alias=alias, requested_at=move.requested_at)


def rollback_alias(
    *,
    registry: Registry,
    deployer: Deployer | None,
    model: str,
    alias: str,
    actor: str,
    wait: bool = False,
    require_approval: bool = False,
) -> Alias:
    """The alias back at the target before its last move. A rollback is a move like any
    other: ``require_approval`` refuses one to a target not approved (a version rejected
    since it served, or one that served before the gate was turned on)."""
    # Without an earlier target the registry below raises the right error.
    target = _rollback_target(registry=registry, model=model, alias=alias)
    if require_approval and target is not None:
        approval.check_move(registry=registry, model=model, versions=target.versions)
    if deployer is not None and target is not None:
        _check_servable(registry=registry, model=model, target=target)
        plan = plan_endpoint(registry=registry, model=model, move=(alias, target))
        _apply(registry=registry, deployer=deployer, plan=plan)
        if wait:
            _wait_for(registry=registry, deployer=deployer, plan=plan)
    return registry.rollback_alias(model=model, alias=alias, actor=actor)


def _rollback_target(*, registry: Registry, model: str, alias: str) -> Target | None:
    """Where ``Registry.rollback_alias`` will move the alias: the ``from_*`` target of its
    last move (shadow and capture changes, action ``traffic``, are not moves)."""
    moves = [e for e in registry.alias_history(model=model, alias=alias) if e.action != "traffic"]
    last = moves[-1] if moves else None
    if last is None or last.from_version is None:
        return None
    return Target(last.from_version, last.from_canary_version, last.from_canary_weight)


def _check_servable(*, registry: Registry, model: str, target: Target) -> None:
    """The registry checks again when it records the move; this refuses before SageMaker is
    touched (raises ``ModelNotFound``/``VersionNotFound``/``VersionRetired``)."""
    for number in target.versions:
        if registry.get_version(model=model, version=number).status != "active":
            raise VersionRetired(f"{model} version {number} is retired and cannot serve")


def _wait_for(*, registry: Registry, deployer: Deployer, plan: EndpointPlan) -> None:
    """Blocks until the endpoint serves ``plan`` (the CLI): waits out the endpoint's change,
    then applies what only a serving endpoint takes (inference components need it
    ``InService``) and waits for that too."""
    deployer.wait(model=plan.model)
    if _apply_or_defer(registry=registry, deployer=deployer, plan=plan) != "unchanged":
        deployer.wait(model=plan.model)


def _apply_or_defer(*, registry: Registry, deployer: Deployer, plan: EndpointPlan) -> Outcome:
    """``_apply``, or "deferred" while the endpoint is changing (a pending move, or the next
    move, starts it later)."""
    try:
        return _apply(registry=registry, deployer=deployer, plan=plan)
    except Conflict as exc:
        if exc.code != ENDPOINT_BUSY:
            raise
        return "deferred"


def _apply(*, registry: Registry, deployer: Deployer, plan: EndpointPlan) -> Outcome:
    versions = {v: registry.get_version(model=plan.model, version=v) for v in plan.versions}
    for version in versions.values():
        # Idempotent; heals a version whose Model creation failed after it was registered.
        deployer.deploy_version(version=version)
    return deployer.apply(plan=plan, versions=versions)
