"""The registry contract: versions, aliases (with history), API keys, batch jobs.

Two implementations keep it: SQLite (``local.py``) and DynamoDB (``dynamodb.py``). The one
contract test suite in ``tests/contract`` runs against both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

DEFAULT_ALIAS = "default"


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    sha256: str
    artifact_uri: str
    manifest: dict[str, Any]
    created_at: str
    created_by: str
    endpoint_name: str
    variant_name: str
    status: str = "active"  # "active" | "retired"


@dataclass(frozen=True)
class Alias:
    model: str
    alias: str
    version: int
    canary_version: int | None = None
    canary_weight: int = 0  # percent of traffic sent to canary_version, 0..100
    updated_at: str = ""
    updated_by: str = ""
    # Shadow traffic: this percent of requests is also sent to shadow_version after the
    # caller's answer is ready (never seen by the caller); capture_percent of requests (and
    # every shadowed one) is written to captures/ (``functions.core.capture``).
    shadow_version: int | None = None
    shadow_percent: int = 0
    capture_percent: int = 0


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias: who moved it, when, from where to where."""

    model: str
    alias: str
    seq: int
    action: str  # "set" | "rollback" | "traffic"
    from_version: int | None
    from_canary_version: int | None
    from_canary_weight: int
    to_version: int
    to_canary_version: int | None
    to_canary_weight: int
    actor: str
    at: str
    # The alias's shadow and capture settings before and after (action "traffic" changes only
    # these; a move carries them over unchanged).
    from_shadow_version: int | None = None
    from_shadow_percent: int = 0
    from_capture_percent: int = 0
    to_shadow_version: int | None = None
    to_shadow_percent: int = 0
    to_capture_percent: int = 0


@dataclass(frozen=True)
class Decision:
    """An approval decision on a version: who approved or rejected it, when, and why. The
    version's approval status is its latest decision ("pending" before any)."""

    model: str
    version: int
    decision: str  # "approved" | "rejected"
    actor: str
    reason: str
    at: str


@dataclass(frozen=True)
class PendingMove:
    """An alias move waiting for its target to be live on the model's endpoint: recorded
    when the endpoint update that carries the target is started, turned into the move (by
    ``deploy.rollout.complete_pending_moves``) once SageMaker serves it. One per alias: a
    newer request replaces it."""

    model: str
    alias: str
    version: int
    canary_version: int | None
    canary_weight: int
    actor: str
    requested_at: str


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    secret_hash: str
    models: tuple[str, ...]  # ("*",) for every model
    admin: bool
    created_at: str
    tenant: str = "default"
    revoked_at: str | None = None
    rotated_at: str | None = None
    last_used_at: str | None = None
    apigw_key_id: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def may_call(self, model: str) -> bool:
        return "*" in self.models or model in self.models


@dataclass(frozen=True)
class Job:
    """A batch scoring job, keyed by the input object (bucket, key, version id)."""

    job_id: str
    model: str
    target: str  # the alias or version the input asked for
    version: int | None
    input_uri: str
    status: str  # "running" | "succeeded" | "partial" | "failed"
    created_at: str
    updated_at: str
    records: int = 0
    ok: int = 0
    errors: int = 0
    output_uri: str | None = None
    errors_uri: str | None = None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# Narrow stores: each caller asks for the part it uses (the authorizer a ``KeyStore``, batch a
# ``JobStore`` and the reads that resolve its target); both backends implement them all, as
# ``Registry``.
class VersionStore(Protocol):
    def next_version(self, *, model: str) -> int:
        """Reserve the model's next version number (atomic; numbers are never reused)."""

    def register_version(self, *, version: ModelVersion) -> ModelVersion:
        """Write an immutable version. Raises ``VersionExists`` if the number is taken and
        ``DuplicateArtifact`` (carrying the existing version) if the sha256 is registered."""

    def get_version(self, *, model: str, version: int) -> ModelVersion:
        """Raises ``ModelNotFound`` / ``VersionNotFound``."""

    def find_by_sha256(self, *, model: str, sha256: str) -> ModelVersion | None: ...

    def list_models(self) -> list[str]: ...

    def list_versions(self, *, model: str) -> list[ModelVersion]:
        """Ascending by version. Raises ``ModelNotFound`` for a model with no versions."""

    def retire_version(self, *, model: str, version: int, actor: str) -> ModelVersion:
        """Raises ``VersionInUse`` while an alias (or its canary) points at it."""


class AliasStore(Protocol):
    def get_alias(self, *, model: str, alias: str) -> Alias:
        """Raises ``AliasNotFound``."""

    def list_aliases(self, *, model: str) -> list[Alias]: ...

    def set_alias(
        self,
        *,
        model: str,
        alias: str,
        version: int,
        actor: str,
        canary_version: int | None = None,
        canary_weight: int = 0,
    ) -> Alias:
        """Move an alias to active versions and record the move. Raises ``VersionNotFound``
        or ``VersionRetired`` for a target that cannot serve."""

    def rollback_alias(self, *, model: str, alias: str, actor: str) -> Alias:
        """Return the alias to where it pointed before its last move; recorded as a move.
        Raises ``NothingToRollBack`` when there is no earlier target."""

    def set_alias_traffic(
        self,
        *,
        model: str,
        alias: str,
        actor: str,
        shadow_version: int | None,
        shadow_percent: int,
        capture_percent: int,
    ) -> Alias:
        """Set an existing alias's shadow version and rates (its targets stay), recorded in
        its history as a ``traffic`` event. Raises ``AliasNotFound``, ``InvalidAliasTarget``
        (rates outside 0..100, a shadow rate without a shadow version), ``VersionNotFound`` or
        ``VersionRetired`` for a shadow version that cannot serve."""

    def alias_history(self, *, model: str, alias: str | None = None) -> list[AliasEvent]:
        """Oldest first."""


class ApprovalStore(Protocol):
    """Approval decisions on versions, and the alias moves waiting for one."""

    def record_decision(self, *, decision: Decision) -> Decision:
        """Append an approval decision. Raises ``VersionNotFound`` for an unknown version."""

    def list_decisions(self, *, model: str, version: int | None = None) -> list[Decision]:
        """Oldest first."""

    def put_pending_move(self, *, move: PendingMove) -> PendingMove:
        """Record (or replace) the alias's pending move."""

    def list_pending_moves(self, *, model: str) -> list[PendingMove]:
        """Oldest request first."""

    def delete_pending_move(self, *, model: str, alias: str, requested_at: str) -> bool:
        """Forget the alias's pending move if it is still the one requested at
        ``requested_at`` (a newer request stays). Returns whether it was deleted."""


class KeyStore(Protocol):
    def create_key(self, *, key: ApiKey) -> ApiKey: ...

    def get_key(self, *, key_id: str) -> ApiKey:
        """Raises ``KeyNotFound``."""

    def find_key_by_hash(self, *, secret_hash: str) -> ApiKey | None: ...

    def list_keys(self) -> list[ApiKey]: ...

    def revoke_key(self, *, key_id: str) -> ApiKey: ...

    def rotate_key(
        self, *, key_id: str, expected_hash: str, secret_hash: str, apigw_key_id: str | None
    ) -> ApiKey:
        """Replace the secret's hash (and the key's API Gateway key id) in one conditional
        write: only while the stored hash is ``expected_hash`` and the key is not revoked, so
        that a revoke racing a rotate is never undone. The old secret stops matching at once.
        Raises ``KeyNotFound``, or ``Conflict`` (``key_revoked``, ``key_changed``)."""

    def set_apigw_key_id(
        self, *, key_id: str, apigw_key_id: str | None, expected: str | None
    ) -> ApiKey:
        """Set the key's API Gateway key id, only while it is still ``expected``.
        Raises ``KeyNotFound``, or ``Conflict`` (``key_changed``)."""

    def touch_key(self, *, key_id: str, at: str) -> None:
        """Record last use (best effort)."""


class JobStore(Protocol):
    def create_job(self, *, job: Job) -> tuple[Job, bool]:
        """Conditional create: returns (job, True) or (the existing job, False)."""

    def update_job(self, *, job: Job, expected_updated_at: str | None = None) -> Job:
        """Overwrite the job. With ``expected_updated_at``, a compare-and-set: the write
        happens only if the stored job's ``updated_at`` is still that value (it is read and
        written atomically), else ``JobChanged``; writers that use it must give every write a
        new ``updated_at``. Raises ``JobNotFound``."""

    def get_job(self, *, job_id: str) -> Job:
        """Raises ``JobNotFound``."""

    def list_jobs(self, *, model: str | None = None, limit: int = 100) -> list[Job]:
        """Newest first."""


class Registry(VersionStore, AliasStore, ApprovalStore, KeyStore, JobStore, Protocol):
    """The whole registry: what each backend (SQLite, DynamoDB) implements."""
