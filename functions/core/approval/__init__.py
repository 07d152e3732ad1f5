"""Approval gates: who may point an alias at a version, per environment.

An environment with ``require_approval`` (prod in ``cdk.json``; any local home with
``MODELWAY_REQUIRE_APPROVAL=true``) moves an alias only to versions whose latest decision is
``approved``, and a publisher cannot approve their own version (two people). Without it
decisions are still recorded, and aliases move freely. Decisions live in the registry beside
alias moves (``Registry.record_decision``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.core.approval.exceptions import NotApproved, SelfApproval
from functions.core.clock import utc_now
from functions.core.registry.base import Decision

if TYPE_CHECKING:
    from collections.abc import Iterable

    from functions.core.registry.base import Registry

APPROVED = "approved"
REJECTED = "rejected"
PENDING = "pending"

__all__ = [
    "APPROVED",
    "PENDING",
    "REJECTED",
    "NotApproved",
    "SelfApproval",
    "check_move",
    "decide",
    "status_of",
]


def decide(
    *,
    registry: Registry,
    model: str,
    version: int,
    decision: str,
    actor: str,
    reason: str = "",
    two_person: bool,
) -> Decision:
    """Record ``approved`` or ``rejected`` for a version. With ``two_person`` the version's
    publisher may reject it but not approve it (``SelfApproval``)."""
    record = registry.get_version(model=model, version=version)
    if two_person and decision == APPROVED and record.created_by == actor:
        raise SelfApproval(
            f"{actor} published {model} version {version} and cannot also approve it; "
            "another admin must approve it"
        )
    return registry.record_decision(
        decision=Decision(
            model=model,
            version=version,
            decision=decision,
            actor=actor,
            reason=reason,
            at=utc_now(),
        )
    )


def status_of(*, registry: Registry, model: str, version: int) -> str:
    decisions = registry.list_decisions(model=model, version=version)
    return decisions[-1].decision if decisions else PENDING


def check_move(*, registry: Registry, model: str, versions: Iterable[int | None]) -> None:
    """Raises ``NotApproved`` (409) naming each target that is not approved and why."""
    missing = []
    for version in versions:
        if version is None:
            continue
        status = status_of(registry=registry, model=model, version=version)
        if status != APPROVED:
            missing.append(f"version {version} is {status}")
    if missing:
        raise NotApproved(
            f"this environment moves aliases of {model} only to approved versions: "
            f"{'; '.join(missing)}. An admin other than the publisher must run "
            f"'modelway approve {model} VERSION' (or POST "
            f"/v1/models/{model}/versions/VERSION/approve) first"
        )
