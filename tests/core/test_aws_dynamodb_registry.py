"""The DynamoDB registry's own guarantees: its table, its item layout, conditional writes under
real thread concurrency, pagination. (Behaviour shared with SQLite is in tests/contract.)"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import boto3
import pytest

from functions.core.exceptions import Conflict
from functions.core.registry.base import ApiKey, Job, ModelVersion
from functions.core.registry.exceptions import (
    DuplicateArtifact,
    JobChanged,
    NothingToRollBack,
    VersionExists,
    VersionInUse,
    VersionNotFound,
    VersionRetired,
)
from tests.aws_testkit import REGION, TABLE


def version(
    model: str, number: int, *, sha: str | None = None, manifest: Any = None
) -> ModelVersion:
    return ModelVersion(
        model=model,
        version=number,
        sha256=sha or f"{number:064x}",
        artifact_uri=f"s3://bucket/artifacts/{model}/{number}/model.tar.gz",
        manifest=manifest if manifest is not None else {"name": model, "version": number},
        created_at=f"2025-01-01T00:00:{number % 60:02d}.000Z",
        created_by="tester",
        endpoint_name=f"modelway-test-{model}",
        variant_name=f"v{number}",
    )


def raw_items(pk: str) -> list[dict[str, Any]]:
    ddb = boto3.client("dynamodb", region_name=REGION)
    resp = ddb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
    )
    return list(resp["Items"])


def race(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(i)`` on ``n`` threads released together; returns results or exceptions."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return fn(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_the_table_is_the_one_the_stack_creates(aws_registry: Any) -> None:
    table = boto3.client("dynamodb", region_name=REGION).describe_table(TableName=TABLE)["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {
        "pk": "HASH",
        "sk": "RANGE",
    }
    (gsi,) = table["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "gsi1"
    assert [k["AttributeName"] for k in gsi["KeySchema"]] == ["gsi1pk", "gsi1sk"]
    assert gsi["Projection"]["ProjectionType"] == "ALL"
    ttl = boto3.client("dynamodb", region_name=REGION).describe_time_to_live(TableName=TABLE)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"


def test_no_client_is_built_until_first_use(mocked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    from functions.core.registry.dynamodb import DynamoDBRegistry, create_table

    create_table(table_name=TABLE, region=REGION)
    built: list[str] = []
    real: Any = boto3.session.Session.client  # overloaded per service: call it untyped

    def spy(self: Any, service: str, *args: Any, **kwargs: Any) -> Any:
        built.append(service)
        return real(self, service, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", spy)
    reg = DynamoDBRegistry(table_name=TABLE, region=REGION)
    assert built == []
    reg.list_models()
    reg.list_models()
    assert built == ["dynamodb"]


def test_items_follow_the_documented_single_table_layout(aws_registry: Any) -> None:
    aws_registry.next_version(model="digits")
    aws_registry.register_version(version=version("digits", 1))
    aws_registry.set_alias(model="digits", alias="default", version=1, actor="a")
    sks = sorted(item["sk"]["S"] for item in raw_items("MODEL#digits"))
    assert sks == [
        "ALIAS#default",
        "COUNTER",
        "EVENT#0000000001",
        "MODEL",
        f"SHA256#{1:064x}",
        "VERSION#0000000001",
    ]
    version_item = next(i for i in raw_items("MODEL#digits") if i["sk"]["S"].startswith("VERSION#"))
    assert version_item["refs"] == {"N": "1"}  # one alias points at it


def test_racing_next_version_hands_out_distinct_numbers(aws_registry: Any) -> None:
    numbers = race(16, lambda _: aws_registry.next_version(model="digits"))
    assert sorted(numbers) == list(range(1, 17))


def test_racing_publishers_of_one_artifact_make_exactly_one_version(aws_registry: Any) -> None:
    sha = "ab" * 32

    def publish(_: int) -> Any:
        number = aws_registry.next_version(model="digits")
        return aws_registry.register_version(version=version("digits", number, sha=sha))

    results = race(8, publish)
    won = [r for r in results if isinstance(r, ModelVersion)]
    lost = [r for r in results if isinstance(r, DuplicateArtifact)]
    assert len(won) == 1
    assert len(lost) == 7
    assert all(exc.existing == won[0] for exc in lost)
    assert aws_registry.list_versions(model="digits") == won


def test_racing_registrations_of_one_number_have_one_winner(aws_registry: Any) -> None:
    results = race(
        6, lambda i: aws_registry.register_version(version=version("digits", 1, sha=f"{i:064x}"))
    )
    assert sum(isinstance(r, ModelVersion) for r in results) == 1
    assert sum(isinstance(r, VersionExists) for r in results) == 5


def test_a_number_registered_directly_is_never_handed_out(aws_registry: Any) -> None:
    aws_registry.register_version(version=version("digits", 5))
    assert aws_registry.next_version(model="digits") == 6


def test_racing_alias_moves_are_all_recorded_in_order(aws_registry: Any) -> None:
    for n in (1, 2, 3, 4):
        aws_registry.register_version(version=version("digits", n))
    results = race(
        8,
        lambda i: aws_registry.set_alias(
            model="digits", alias="default" if i % 2 else "prod", version=1 + i % 4, actor=f"a{i}"
        ),
    )
    assert not [r for r in results if isinstance(r, Exception)]
    history = aws_registry.alias_history(model="digits")
    assert len(history) == 8
    for name in ("default", "prod"):
        events = [e for e in history if e.alias == name]
        assert [e.seq for e in events] == [1, 2, 3, 4]
        # Each move starts where the one before it ended: no lost update.
        for before, after in itertools.pairwise(events):
            assert after.from_version == before.to_version
        assert aws_registry.get_alias(model="digits", alias=name).version == events[-1].to_version
    # Reference counts stayed exact: only the versions aliases point at are in use.
    in_use = {a.version for a in aws_registry.list_aliases(model="digits")}
    for n in (1, 2, 3, 4):
        if n in in_use:
            with pytest.raises(VersionInUse):
                aws_registry.retire_version(model="digits", version=n, actor="a")
        else:
            assert (
                aws_registry.retire_version(model="digits", version=n, actor="a").status
                == "retired"
            )


def test_retire_racing_an_alias_move_never_leaves_an_alias_on_a_retired_version(
    aws_registry: Any,
) -> None:
    for attempt in range(5):
        model = f"m{attempt}"
        aws_registry.register_version(version=version(model, 1))
        aws_registry.register_version(version=version(model, 2))
        aws_registry.set_alias(model=model, alias="default", version=1, actor="a")

        def act(i: int, model: str = model) -> Any:
            if i == 0:
                return aws_registry.retire_version(model=model, version=2, actor="a")
            return aws_registry.set_alias(model=model, alias="default", version=2, actor="a")

        retired, moved = race(2, act)
        alias = aws_registry.get_alias(model=model, alias="default")
        status = aws_registry.get_version(model=model, version=2).status
        # Exactly one of the two wins, whichever order they landed in.
        assert isinstance(retired, VersionInUse | ModelVersion)
        assert isinstance(moved, VersionRetired | type(alias))
        assert not (alias.version == 2 and status == "retired")


def test_canary_and_main_both_count_as_in_use_and_move_away_frees_them(aws_registry: Any) -> None:
    for n in (1, 2, 3):
        aws_registry.register_version(version=version("digits", n))
    aws_registry.set_alias(
        model="digits", alias="default", version=1, actor="a", canary_version=2, canary_weight=10
    )
    for n in (1, 2):
        with pytest.raises(VersionInUse, match="default"):
            aws_registry.retire_version(model="digits", version=n, actor="a")
    aws_registry.set_alias(model="digits", alias="default", version=3, actor="a")
    assert aws_registry.retire_version(model="digits", version=2, actor="a").status == "retired"
    # The retired version can no longer be a rollback target.
    aws_registry.set_alias(model="digits", alias="default", version=1, actor="a")
    aws_registry.set_alias(model="digits", alias="default", version=3, actor="a")
    with pytest.raises(VersionRetired):
        aws_registry.set_alias(model="digits", alias="default", version=2, actor="a")


def test_retiring_twice_keeps_the_first_time(aws_registry: Any) -> None:
    aws_registry.register_version(version=version("digits", 1))
    aws_registry.retire_version(model="digits", version=1, actor="first")
    aws_registry.retire_version(model="digits", version=1, actor="second")
    item = next(i for i in raw_items("MODEL#digits") if i["sk"]["S"] == "VERSION#0000000001")
    assert item["retired_by"] == {"S": "first"}


def test_rollback_needs_an_earlier_target(aws_registry: Any) -> None:
    aws_registry.register_version(version=version("digits", 1))
    aws_registry.set_alias(model="digits", alias="default", version=1, actor="a")
    with pytest.raises(NothingToRollBack):
        aws_registry.rollback_alias(model="digits", alias="default", actor="a")
    with pytest.raises(VersionNotFound):
        aws_registry.set_alias(model="digits", alias="default", version=9, actor="a")


def test_listings_page_past_one_megabyte(aws_registry: Any) -> None:
    # DynamoDB returns at most 1 MB per Query page: 30 versions of ~50 KB need several pages.
    big = {"blob": "x" * 50_000}
    for n in range(1, 31):
        aws_registry.register_version(version=version("digits", n, manifest=big))
    assert [v.version for v in aws_registry.list_versions(model="digits")] == list(range(1, 31))


def test_rotation_swaps_the_hash_pointer_atomically(aws_registry: Any) -> None:
    key = ApiKey(
        key_id="key_1",
        name="ci",
        secret_hash="old",
        models=("digits",),
        admin=False,
        created_at="2025-01-01T00:00:00.000Z",
    )
    aws_registry.create_key(key=key)
    aws_registry.rotate_key(
        key_id="key_1", expected_hash="old", secret_hash="new", apigw_key_id=None
    )
    assert aws_registry.find_key_by_hash(secret_hash="old") is None
    assert aws_registry.find_key_by_hash(secret_hash="new").key_id == "key_1"
    assert raw_items("KEYHASH#old") == []
    assert raw_items("KEYHASH#new")[0]["key_id"] == {"S": "key_1"}
    # Another key cannot take a secret hash that is in use.
    other = ApiKey(
        key_id="key_2",
        name="other",
        secret_hash="new",
        models=("*",),
        admin=True,
        created_at="2025-01-01T00:00:01.000Z",
    )
    with pytest.raises(Conflict):
        aws_registry.create_key(key=other)
    assert aws_registry.get_key(key_id="key_1").secret_hash == "new"


def test_racing_job_creations_record_one_job(aws_registry: Any) -> None:
    job = Job(
        job_id="job-1",
        model="digits",
        target="default",
        version=None,
        input_uri="s3://b/inputs/digits/default/a.jsonl",
        status="running",
        created_at="2025-01-01T00:00:00.000Z",
        updated_at="2025-01-01T00:00:00.000Z",
    )
    results = race(6, lambda i: aws_registry.create_job(job=job))
    assert sum(created for _, created in results) == 1
    assert all(j == job for j, _ in results)
    assert aws_registry.list_jobs() == [job]
    assert aws_registry.list_jobs(model="digits") == [job]
    assert aws_registry.list_jobs(model="other") == []


def test_racing_conditional_job_updates_have_one_winner(aws_registry: Any) -> None:
    stamp = "2025-01-01T00:00:00.000Z"
    aws_registry.create_job(
        job=Job(
            job_id="job-1",
            model="digits",
            target="default",
            version=None,
            input_uri="s3://b/inputs/digits/default/a.jsonl",
            status="failed",
            created_at=stamp,
            updated_at=stamp,
        )
    )
    read = aws_registry.get_job(job_id="job-1")

    def take_over(i: int) -> Any:
        claim = replace(read, status="running", updated_at=f"2025-01-01T00:00:01.{i:03d}Z")
        return aws_registry.update_job(job=claim, expected_updated_at=read.updated_at)

    results = race(6, take_over)
    won = [r for r in results if isinstance(r, Job)]
    assert len(won) == 1
    assert sum(isinstance(r, JobChanged) for r in results) == 5
    assert aws_registry.get_job(job_id="job-1") == won[0]
