"""The Registry contract (functions/core/registry/base.py), for every backend."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from functions.core.exceptions import Conflict, NotFound
from functions.core.registry.base import ApiKey, Decision, Job, ModelVersion
from functions.core.registry.exceptions import (
    AliasNotFound,
    DuplicateArtifact,
    InvalidAliasTarget,
    JobChanged,
    JobNotFound,
    KeyNotFound,
    ModelNotFound,
    NothingToRollBack,
    VersionExists,
    VersionInUse,
    VersionNotFound,
    VersionRetired,
)


def mv(model: str, version: int, *, sha: str | None = None, **overrides: Any) -> ModelVersion:
    manifest = {
        "name": model,
        "version": version,
        "signature": {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]},
        "parity": {"passed": True, "max_abs_diff": 1.5e-7},
        "labels": ["a", "b"],
    }
    fields: dict[str, Any] = {
        "model": model,
        "version": version,
        "sha256": sha or f"{version:064x}",
        "artifact_uri": f"s3://bucket/artifacts/{model}/{version}/model.tar.gz",
        "manifest": manifest,
        "created_at": f"2025-01-01T00:00:{version:02d}.000Z",
        "created_by": "alice",
        "endpoint_name": f"modelway-test-{model}",
        "variant_name": f"v{version}",
    }
    fields.update(overrides)
    return ModelVersion(**fields)


def publish(registry: Any, model: str, count: int) -> list[ModelVersion]:
    """Register ``count`` versions the way publishing does: reserve, then register."""
    out = []
    for _ in range(count):
        n = registry.next_version(model=model)
        out.append(
            registry.register_version(version=mv(model, n, sha=f"{model}-{n}".ljust(64, "0")))
        )
    return out


# Versions ------------------------------------------------------------------------------------
def test_numbers_are_per_model_ascending_and_never_reused(registry: Any) -> None:
    assert [registry.next_version(model="a") for _ in range(3)] == [1, 2, 3]
    assert registry.next_version(model="b") == 1
    # Reserved but never registered, 1..3 of "a" stay used.
    assert registry.next_version(model="a") == 4


def test_a_number_registered_directly_is_not_handed_out_again(registry: Any) -> None:
    registry.register_version(version=mv("a", 5))
    assert registry.next_version(model="a") == 6


def test_register_get_list(registry: Any) -> None:
    versions = publish(registry, "digits", 3)
    publish(registry, "alpha", 1)

    got = registry.get_version(model="digits", version=2)
    assert got == versions[1]
    assert got.manifest["signature"]["inputs"][0]["shape"] == [-1, 4]
    assert got.manifest["parity"]["max_abs_diff"] == 1.5e-7
    assert got.status == "active"
    assert registry.list_versions(model="digits") == versions
    assert registry.list_models() == ["alpha", "digits"]
    assert registry.find_by_sha256(model="digits", sha256=versions[2].sha256) == versions[2]
    assert registry.find_by_sha256(model="digits", sha256="f" * 64) is None
    # The same file under another model is another model's business.
    assert registry.find_by_sha256(model="alpha", sha256=versions[2].sha256) is None


def test_unknown_models_and_versions(registry: Any) -> None:
    with pytest.raises(ModelNotFound):
        registry.get_version(model="nope", version=1)
    with pytest.raises(ModelNotFound):
        registry.list_versions(model="nope")
    publish(registry, "digits", 1)
    with pytest.raises(VersionNotFound):
        registry.get_version(model="digits", version=9)
    assert registry.list_models() == ["digits"]


# Past 64 bits (issue 10: SQLite overflowed into a 500), zero and negatives name no version.
@pytest.mark.parametrize("number", [0, -1, 2**63, 37758839676792876302336, 10**40])
def test_a_version_number_of_any_size_is_just_not_found(registry: Any, number: int) -> None:
    publish(registry, "digits", 1)
    registry.set_alias(model="digits", alias="default", version=1, actor="a")
    with pytest.raises(VersionNotFound):
        registry.get_version(model="digits", version=number)
    with pytest.raises(VersionNotFound):
        registry.retire_version(model="digits", version=number, actor="a")
    with pytest.raises(VersionNotFound):
        registry.set_alias(model="digits", alias="default", version=number, actor="a")
    with pytest.raises(VersionNotFound):
        registry.set_alias(
            model="digits", alias="default", version=1, actor="a", canary_version=number
        )
    with pytest.raises(ModelNotFound):
        registry.get_version(model="nope", version=number)
    assert registry.get_alias(model="digits", alias="default").version == 1


def test_versions_are_immutable(registry: Any) -> None:
    (original,) = publish(registry, "digits", 1)

    with pytest.raises(VersionExists):
        registry.register_version(
            version=mv("digits", 1, sha="e" * 64, artifact_uri="s3://elsewhere")
        )
    with pytest.raises(DuplicateArtifact) as caught:
        registry.register_version(version=mv("digits", 2, sha=original.sha256))

    assert caught.value.existing == original
    assert registry.get_version(model="digits", version=1) == original
    assert [v.version for v in registry.list_versions(model="digits")] == [1]


def test_retire_is_refused_while_an_alias_or_canary_points_at_it(registry: Any) -> None:
    publish(registry, "digits", 3)
    registry.set_alias(
        model="digits", alias="default", version=1, actor="a", canary_version=2, canary_weight=10
    )

    with pytest.raises(VersionInUse):
        registry.retire_version(model="digits", version=1, actor="a")
    with pytest.raises(VersionInUse):
        registry.retire_version(model="digits", version=2, actor="a")

    retired = registry.retire_version(model="digits", version=3, actor="a")
    assert retired.status == "retired"
    assert registry.get_version(model="digits", version=3).status == "retired"
    # Retiring again is harmless.
    assert registry.retire_version(model="digits", version=3, actor="a").status == "retired"

    registry.set_alias(model="digits", alias="default", version=1, actor="a")
    assert registry.retire_version(model="digits", version=2, actor="a").status == "retired"
    with pytest.raises(VersionNotFound):
        registry.retire_version(model="digits", version=99, actor="a")


# Aliases --------------------------------------------------------------------------------------
def test_set_and_read_aliases(registry: Any) -> None:
    publish(registry, "digits", 2)

    alias = registry.set_alias(model="digits", alias="default", version=1, actor="bob")
    assert (alias.version, alias.canary_version, alias.canary_weight) == (1, None, 0)
    assert alias.updated_by == "bob"
    assert alias.updated_at

    canary = registry.set_alias(
        model="digits", alias="prod", version=1, actor="bob", canary_version=2, canary_weight=25
    )
    assert registry.get_alias(model="digits", alias="prod") == canary
    assert (canary.canary_version, canary.canary_weight) == (2, 25)
    assert [a.alias for a in registry.list_aliases(model="digits")] == ["default", "prod"]
    assert registry.list_aliases(model="other") == []

    with pytest.raises(AliasNotFound):
        registry.get_alias(model="digits", alias="staging")


@pytest.mark.parametrize(
    ("alias", "version", "canary", "weight"),
    [
        ("default", 1, 2, 101),
        ("default", 1, 2, -1),
        ("default", 1, 1, 10),  # the canary must differ from the main version
        ("default", 1, None, 10),  # a weight needs a canary
        ("Bad Alias", 1, None, 0),
    ],
)
def test_invalid_alias_targets(
    registry: Any, alias: str, version: int, canary: int | None, weight: int
) -> None:
    publish(registry, "digits", 2)
    with pytest.raises(InvalidAliasTarget):
        registry.set_alias(
            model="digits",
            alias=alias,
            version=version,
            actor="a",
            canary_version=canary,
            canary_weight=weight,
        )
    assert registry.list_aliases(model="digits") == []


def test_aliases_only_point_at_versions_that_can_serve(registry: Any) -> None:
    publish(registry, "digits", 2)
    registry.retire_version(model="digits", version=2, actor="a")

    with pytest.raises(VersionNotFound):
        registry.set_alias(model="digits", alias="default", version=7, actor="a")
    with pytest.raises(VersionRetired):
        registry.set_alias(model="digits", alias="default", version=2, actor="a")
    with pytest.raises(VersionRetired):
        registry.set_alias(
            model="digits", alias="default", version=1, actor="a", canary_version=2, canary_weight=5
        )
    with pytest.raises(NotFound):
        registry.set_alias(model="nope", alias="default", version=1, actor="a")
    assert registry.list_aliases(model="digits") == []


def test_history_records_every_move(registry: Any) -> None:
    publish(registry, "digits", 3)
    registry.set_alias(model="digits", alias="default", version=1, actor="ann")
    registry.set_alias(
        model="digits", alias="default", version=2, actor="ben", canary_version=3, canary_weight=5
    )
    registry.set_alias(model="digits", alias="prod", version=3, actor="cy")

    events = registry.alias_history(model="digits", alias="default")
    assert [(e.seq, e.action, e.actor) for e in events] == [(1, "set", "ann"), (2, "set", "ben")]
    first, second = events
    assert (first.from_version, first.to_version) == (None, 1)
    assert (second.from_version, second.from_canary_version, second.from_canary_weight) == (
        1,
        None,
        0,
    )
    assert (second.to_version, second.to_canary_version, second.to_canary_weight) == (2, 3, 5)
    assert all(e.at for e in events)

    everything = registry.alias_history(model="digits")
    assert sorted((e.alias, e.seq) for e in everything) == [
        ("default", 1),
        ("default", 2),
        ("prod", 1),
    ]
    assert registry.alias_history(model="other") == []


def test_rollback_returns_to_the_previous_target_and_twice_toggles(registry: Any) -> None:
    publish(registry, "digits", 3)
    registry.set_alias(
        model="digits", alias="default", version=1, actor="a", canary_version=3, canary_weight=20
    )
    registry.set_alias(model="digits", alias="default", version=2, actor="a")

    back = registry.rollback_alias(model="digits", alias="default", actor="oncall")
    assert (back.version, back.canary_version, back.canary_weight) == (1, 3, 20)
    assert back.updated_by == "oncall"
    last = registry.alias_history(model="digits", alias="default")[-1]
    assert (last.action, last.actor, last.from_version, last.to_version) == (
        "rollback",
        "oncall",
        2,
        1,
    )

    # A rollback is a move too: rolling back again returns to where we were.
    again = registry.rollback_alias(model="digits", alias="default", actor="oncall")
    assert (again.version, again.canary_version) == (2, None)
    assert len(registry.alias_history(model="digits", alias="default")) == 4


def test_rollback_needs_an_earlier_target(registry: Any) -> None:
    publish(registry, "digits", 2)
    with pytest.raises(AliasNotFound):
        registry.rollback_alias(model="digits", alias="default", actor="a")
    registry.set_alias(model="digits", alias="default", version=1, actor="a")
    with pytest.raises(NothingToRollBack):
        registry.rollback_alias(model="digits", alias="default", actor="a")


def test_rollback_will_not_revive_a_retired_version(registry: Any) -> None:
    publish(registry, "digits", 2)
    registry.set_alias(model="digits", alias="default", version=1, actor="a")
    registry.set_alias(model="digits", alias="default", version=2, actor="a")
    registry.retire_version(model="digits", version=1, actor="a")

    with pytest.raises(VersionRetired):
        registry.rollback_alias(model="digits", alias="default", actor="a")
    assert registry.get_alias(model="digits", alias="default").version == 2


# Shadow traffic and capture ------------------------------------------------------------------
def test_shadow_and_capture_settings_are_recorded_like_a_move(registry: Any) -> None:
    publish(registry, "digits", 2)
    registry.set_alias(model="digits", alias="default", version=1, actor="ann")

    set_ = registry.set_alias_traffic(
        model="digits",
        alias="default",
        actor="ben",
        shadow_version=2,
        shadow_percent=50,
        capture_percent=10,
    )
    assert (set_.version, set_.shadow_version, set_.shadow_percent, set_.capture_percent) == (
        1,
        2,
        50,
        10,
    )
    assert registry.get_alias(model="digits", alias="default") == set_
    last = registry.alias_history(model="digits", alias="default")[-1]
    assert (last.action, last.actor, last.from_version, last.to_version) == ("traffic", "ben", 1, 1)
    assert (last.from_shadow_version, last.to_shadow_version) == (None, 2)
    assert (last.to_shadow_percent, last.to_capture_percent) == (50, 10)

    # A move keeps the settings; a rollback skips traffic events and returns to the last target.
    registry.set_alias(model="digits", alias="default", version=2, actor="ann")
    moved = registry.get_alias(model="digits", alias="default")
    assert (moved.version, moved.shadow_version, moved.capture_percent) == (2, 2, 10)
    back = registry.rollback_alias(model="digits", alias="default", actor="oncall")
    assert (back.version, back.shadow_version, back.shadow_percent) == (1, 2, 50)

    off = registry.set_alias_traffic(
        model="digits",
        alias="default",
        actor="ben",
        shadow_version=None,
        shadow_percent=0,
        capture_percent=0,
    )
    assert (off.shadow_version, off.shadow_percent, off.capture_percent) == (None, 0, 0)
    assert registry.get_alias(model="digits", alias="default") == off
    assert [e.action for e in registry.alias_history(model="digits", alias="default")] == [
        "set",
        "traffic",
        "set",
        "rollback",
        "traffic",
    ]


def test_shadow_settings_are_checked_before_anything_is_written(registry: Any) -> None:
    publish(registry, "digits", 2)
    with pytest.raises(AliasNotFound):
        registry.set_alias_traffic(
            model="digits",
            alias="default",
            actor="a",
            shadow_version=2,
            shadow_percent=10,
            capture_percent=0,
        )
    registry.set_alias(model="digits", alias="default", version=1, actor="a")
    registry.retire_version(model="digits", version=2, actor="a")
    bad = [
        ((7, 10, 0), VersionNotFound),
        ((2, 10, 0), VersionRetired),
        ((None, 10, 0), InvalidAliasTarget),
        ((1, 101, 0), InvalidAliasTarget),
        ((None, 0, -1), InvalidAliasTarget),
    ]
    for (shadow, shadow_percent, capture_percent), error in bad:
        with pytest.raises(error):
            registry.set_alias_traffic(
                model="digits",
                alias="default",
                actor="a",
                shadow_version=shadow,
                shadow_percent=shadow_percent,
                capture_percent=capture_percent,
            )
    alias = registry.get_alias(model="digits", alias="default")
    assert (alias.shadow_version, alias.shadow_percent, alias.capture_percent) == (None, 0, 0)
    assert len(registry.alias_history(model="digits", alias="default")) == 1


# Keys -----------------------------------------------------------------------------------------
def api_key(key_id: str, secret_hash: str, **overrides: Any) -> ApiKey:
    fields: dict[str, Any] = {
        "key_id": key_id,
        "name": f"{key_id} name",
        "secret_hash": secret_hash,
        "models": ("digits", "iris"),
        "admin": False,
        "created_at": "2025-01-01T00:00:00.000Z",
    }
    fields.update(overrides)
    return ApiKey(**fields)


def test_keys_create_get_find_list(registry: Any) -> None:
    one = registry.create_key(key=api_key("key_1", "a" * 64))
    two = registry.create_key(
        key=api_key(
            "key_2",
            "b" * 64,
            models=("*",),
            admin=True,
            tenant="acme",
            created_at="2025-01-02T00:00:00.000Z",
        )
    )

    assert registry.get_key(key_id="key_1") == one
    assert registry.find_key_by_hash(secret_hash="b" * 64) == two
    assert registry.find_key_by_hash(secret_hash="c" * 64) is None
    assert [k.key_id for k in registry.list_keys()] == ["key_1", "key_2"]
    assert two.models == ("*",)
    assert two.admin
    assert two.tenant == "acme"
    with pytest.raises(KeyNotFound):
        registry.get_key(key_id="key_nope")


def test_keys_revoke_rotate_update_touch(registry: Any) -> None:
    registry.create_key(key=api_key("key_1", "a" * 64))

    rotated = registry.rotate_key(
        key_id="key_1", expected_hash="a" * 64, secret_hash="d" * 64, apigw_key_id="gw-1"
    )
    assert rotated.secret_hash == "d" * 64
    assert rotated.rotated_at
    assert rotated.apigw_key_id == "gw-1"
    assert registry.find_key_by_hash(secret_hash="a" * 64) is None
    assert registry.find_key_by_hash(secret_hash="d" * 64) == rotated
    # Conditional on the hash the caller read: a stale rotation changes nothing.
    with pytest.raises(Conflict) as stale:
        registry.rotate_key(
            key_id="key_1", expected_hash="a" * 64, secret_hash="e" * 64, apigw_key_id=None
        )
    assert stale.value.code == "key_changed"
    assert registry.get_key(key_id="key_1") == rotated

    updated = registry.set_apigw_key_id(key_id="key_1", apigw_key_id="gw-2", expected="gw-1")
    assert registry.get_key(key_id="key_1").apigw_key_id == "gw-2" == updated.apigw_key_id
    with pytest.raises(Conflict):
        registry.set_apigw_key_id(key_id="key_1", apigw_key_id=None, expected="gw-1")
    assert registry.get_key(key_id="key_1").apigw_key_id == "gw-2"

    registry.touch_key(key_id="key_1", at="2025-02-01T00:00:00.000Z")
    assert registry.get_key(key_id="key_1").last_used_at == "2025-02-01T00:00:00.000Z"
    registry.touch_key(key_id="key_nope", at="2025-02-01T00:00:00.000Z")  # best effort

    revoked = registry.revoke_key(key_id="key_1")
    assert revoked.revoked_at
    assert not revoked.active
    # Still found by hash, so the router can say "revoked" rather than "unknown".
    found = registry.find_key_by_hash(secret_hash="d" * 64)
    assert found is not None
    assert not found.active
    assert registry.revoke_key(key_id="key_1").revoked_at == revoked.revoked_at

    for call in (
        lambda: registry.revoke_key(key_id="key_nope"),
        lambda: registry.rotate_key(
            key_id="key_nope", expected_hash="a" * 64, secret_hash="e" * 64, apigw_key_id=None
        ),
        lambda: registry.set_apigw_key_id(key_id="key_nope", apigw_key_id=None, expected=None),
    ):
        with pytest.raises(KeyNotFound):
            call()


def test_a_revoked_key_cannot_be_rotated_back_to_life(registry: Any) -> None:
    """The registry half of "a revoke racing a rotate is not undone": the rotation's write
    is conditioned on the key not being revoked, whatever the caller read before."""
    registry.create_key(key=api_key("key_1", "a" * 64))
    registry.revoke_key(key_id="key_1")
    with pytest.raises(Conflict) as refused:
        registry.rotate_key(
            key_id="key_1", expected_hash="a" * 64, secret_hash="d" * 64, apigw_key_id=None
        )
    assert refused.value.code == "key_revoked"
    assert registry.find_key_by_hash(secret_hash="d" * 64) is None
    assert not registry.get_key(key_id="key_1").active


def test_pending_alias_moves_replace_list_and_delete_conditionally(registry: Any) -> None:
    from functions.core.registry.base import PendingMove

    first = PendingMove(
        model="digits",
        alias="default",
        version=2,
        canary_version=None,
        canary_weight=0,
        actor="a",
        requested_at="2025-01-01T00:00:00.000Z",
    )
    other = replace(first, alias="prod", version=3, canary_version=4, canary_weight=10)
    registry.put_pending_move(move=first)
    registry.put_pending_move(move=other)
    assert registry.list_pending_moves(model="digits") == [first, other]
    assert registry.list_pending_moves(model="iris") == []
    # A newer request for the alias replaces the older; deleting the older is then a no-op.
    newer = replace(first, version=3, requested_at="2025-01-02T00:00:00.000Z")
    registry.put_pending_move(move=newer)
    assert not registry.delete_pending_move(
        model="digits", alias="default", requested_at=first.requested_at
    )
    assert registry.list_pending_moves(model="digits") == [other, newer]
    assert registry.delete_pending_move(
        model="digits", alias="default", requested_at=newer.requested_at
    )
    assert registry.list_pending_moves(model="digits") == [other]


# Jobs -----------------------------------------------------------------------------------------
def job(
    job_id: str,
    *,
    model: str = "digits",
    created_at: str = "2025-01-01T00:00:00.000Z",
    **overrides: Any,
) -> Job:
    fields: dict[str, Any] = {
        "job_id": job_id,
        "model": model,
        "target": "default",
        "version": None,
        "input_uri": f"s3://bucket/inputs/{model}/default/{job_id}.jsonl",
        "status": "running",
        "created_at": created_at,
        "updated_at": created_at,
    }
    fields.update(overrides)
    return Job(**fields)


def test_jobs_are_created_once(registry: Any) -> None:
    first = job("j1", extra={"input_version_id": "abc", "sizes": [1, 2]})
    created, was_new = registry.create_job(job=first)
    assert was_new
    assert created == first

    existing, was_new = registry.create_job(job=job("j1", target="prod"))
    assert not was_new
    assert existing == first
    assert registry.get_job(job_id="j1").extra == {"input_version_id": "abc", "sizes": [1, 2]}


def test_jobs_update_get_list(registry: Any) -> None:
    registry.create_job(job=job("j1", created_at="2025-01-01T00:00:01.000Z"))
    registry.create_job(job=job("j2", created_at="2025-01-01T00:00:02.000Z"))
    registry.create_job(job=job("j3", model="iris", created_at="2025-01-01T00:00:03.000Z"))

    done = replace(
        registry.get_job(job_id="j1"),
        status="partial",
        version=3,
        records=10,
        ok=9,
        errors=1,
        output_uri="s3://bucket/outputs/j1.jsonl",
        errors_uri="s3://bucket/outputs/j1.errors",
        updated_at="2025-01-01T00:01:00.000Z",
        reason="1 record failed",
    )
    assert registry.update_job(job=done) == done
    assert registry.get_job(job_id="j1") == done

    assert [j.job_id for j in registry.list_jobs()] == ["j3", "j2", "j1"]
    assert [j.job_id for j in registry.list_jobs(model="digits")] == ["j2", "j1"]
    assert [j.job_id for j in registry.list_jobs(limit=2)] == ["j3", "j2"]
    assert registry.list_jobs(model="none") == []

    with pytest.raises(JobNotFound):
        registry.get_job(job_id="nope")
    with pytest.raises(JobNotFound):
        registry.update_job(job=job("nope"))


def test_a_conditional_job_update_lands_only_on_the_state_it_read(registry: Any) -> None:
    registry.create_job(job=job("j1", status="failed", extra={"retryable": True}))
    read = registry.get_job(job_id="j1")
    # Two deliveries read the same failed job and both try to take it over.
    mine = replace(read, status="running", updated_at="2025-01-01T00:00:05.000Z", extra={"a": 1})
    theirs = replace(read, status="running", updated_at="2025-01-01T00:00:05.001Z", extra={"b": 2})

    assert registry.update_job(job=mine, expected_updated_at=read.updated_at) == mine
    with pytest.raises(JobChanged) as refused:
        registry.update_job(job=theirs, expected_updated_at=read.updated_at)

    assert isinstance(refused.value, Conflict)
    assert refused.value.code == "job_changed"
    assert registry.get_job(job_id="j1") == mine  # the loser wrote nothing
    # The winner goes on writing against the stamp it wrote last.
    progress = replace(mine, records=7, updated_at="2025-01-01T00:00:06.000Z")
    assert registry.update_job(job=progress, expected_updated_at=mine.updated_at) == progress
    assert registry.get_job(job_id="j1").records == 7
    # Without an expectation an update stays unconditional, as before.
    forced = replace(progress, status="failed", updated_at=read.updated_at)
    assert registry.update_job(job=forced) == forced
    assert registry.get_job(job_id="j1") == forced
    with pytest.raises(JobNotFound):
        registry.update_job(job=job("nope"), expected_updated_at="2025-01-01T00:00:00.000Z")


# Approval decisions -----------------------------------------------------------------------
def test_decisions_are_recorded_per_version_oldest_first(registry: Any) -> None:
    publish(registry, "digits", 2)
    at = ["2026-01-01T00:00:01.000000Z", "2026-01-01T00:00:02.000000Z"]
    registry.record_decision(
        decision=Decision(
            model="digits", version=2, decision="rejected", actor="ann", reason="slow", at=at[0]
        )
    )
    registry.record_decision(
        decision=Decision(
            model="digits", version=2, decision="approved", actor="bob", reason="", at=at[1]
        )
    )
    # Same instant, another version: both land (decisions never overwrite each other).
    registry.record_decision(
        decision=Decision(
            model="digits", version=1, decision="approved", actor="bob", reason="ok", at=at[1]
        )
    )
    mine = registry.list_decisions(model="digits", version=2)
    assert [(d.decision, d.actor, d.reason, d.at) for d in mine] == [
        ("rejected", "ann", "slow", at[0]),
        ("approved", "bob", "", at[1]),
    ]
    assert len(registry.list_decisions(model="digits")) == 3
    assert registry.list_decisions(model="other") == []


def test_a_decision_needs_a_version(registry: Any) -> None:
    publish(registry, "digits", 1)
    with pytest.raises(VersionNotFound):
        registry.record_decision(
            decision=Decision(
                model="digits", version=9, decision="approved", actor="a", reason="", at="t"
            )
        )
    with pytest.raises(ModelNotFound):
        registry.record_decision(
            decision=Decision(
                model="nope", version=1, decision="approved", actor="a", reason="", at="t"
            )
        )
    assert registry.list_decisions(model="digits") == []
