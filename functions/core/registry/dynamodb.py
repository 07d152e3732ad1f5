"""The registry on one DynamoDB table (single-table design): the AWS backend.

Table (created by the stack, ``infra``; by :func:`create_table` in tests): partition key
``pk`` (S), sort key ``sk`` (S), one global secondary index ``gsi1`` on ``gsi1pk``/``gsi1sk``
(S, projection ALL), TTL attribute ``expires_at`` (unused by the registry's own items, which
are all durable; reserved for anything that should expire on its own).

Items
-----
  item                    pk               sk                     gsi1pk / gsi1sk
  version counter         MODEL#{model}    COUNTER                -
  model (listing, moves)  MODEL#{model}    MODEL                  MODELS / {model}
  version                 MODEL#{model}    VERSION#{v:010d}       -
  sha256 lock             MODEL#{model}    SHA256#{sha256}        -
  alias                   MODEL#{model}    ALIAS#{alias}          -
  alias event             MODEL#{model}    EVENT#{n:010d}         -
  pending alias move      MODEL#{model}    PENDING#{alias}        -
  approval decision       MODEL#{model}    DECISION#{at}#{rand}   -
  key by id               KEY#{key_id}     KEY                    KEYS / {created}#{id}
  key-hash pointer        KEYHASH#{hash}   KEYHASH                -
  job                     JOB#{job_id}     JOB                    JOBS#{model} / {created}#{id}
  job feed entry          JOBS             {created_at}#{job_id}  -

``{hash}`` is the sha256 of a key's secret (``auth.hash_secret``); version items also carry
``refs``, the number of aliases and canaries pointing at them. Numbers in sort keys are
zero-padded so that text order is numeric order. Manifests and job
``extra`` are stored as JSON strings: DynamoDB numbers come back as ``Decimal`` and would not
round-trip a float-bearing manifest faithfully.

Access patterns
---------------
- next_version: ``UpdateItem`` ``ADD last :1`` on the counter, ``ReturnValues=UPDATED_NEW``;
  atomic, so racing publishers get distinct numbers. The counter lives in its own item so that
  it never contends with the transactions on the model item.
- register_version: ``TransactWriteItems`` = Put version (``attribute_not_exists``) + Put sha256
  lock (``attribute_not_exists``) + Update model item (listing). Exactly one of two racing
  writers wins; the loser's ``CancellationReasons`` say which condition failed:
  ``VersionExists`` or ``DuplicateArtifact`` (carrying the version the lock names). Afterwards
  the counter is raised to the version if it lags (a number registered without next_version
  is never handed out again).
- get_version: ``GetItem`` (consistent). list_versions: ``Query pk, begins_with(sk, VERSION#)``.
  find_by_sha256: ``GetItem`` on the lock, then on the version.
- list_models: ``Query gsi1 (gsi1pk = MODELS)``; a model is listed once a version is registered.
- Aliases: ``GetItem`` / ``Query begins_with(sk, ALIAS#)``. Every move (set, rollback) is one
  transaction: Update the model item's ``moves`` counter conditioned on the value read
  (optimistic; a racing move of any alias of the model cancels one of the two, which re-reads
  and retries), Put the alias (which keeps its previous target, so rollback is one read), Put
  the event (``attribute_not_exists``), and per target version an Update ``ADD refs`` with the
  condition that it exists and is active (old targets get ``ADD refs -1``).
- retire_version: one conditional ``UpdateItem``: exists and ``refs = 0``; ``refs`` counts the
  aliases and canaries pointing at the version, kept exact by the move transactions, so a
  retire racing an alias move cannot leave an alias on a retired version.
- alias_history: ``Query begins_with(sk, EVENT#)`` (model-wide order), filtered by alias.
- Keys: create = transaction Put key + Put hash pointer (both ``attribute_not_exists``);
  find_key_by_hash = ``GetItem`` pointer then key; rotate = transaction Update key (only the
  fields that change, conditioned on the hash read and on not being revoked, so a racing
  revoke is never undone) + Delete old pointer + Put new pointer, so the old secret stops
  matching in the same instant the new one starts; revoke/touch = ``UpdateItem``;
  set_apigw_key_id = ``UpdateItem`` conditioned on the id read; list = ``Query gsi1
  (gsi1pk = KEYS)``.
- Jobs: create = transaction Put job (``attribute_not_exists``) + Put feed entry; a cancelled
  job put returns the existing job. update = ``PutItem`` (``attribute_exists``); given the
  ``updated_at`` the caller read, also ``updated_at = :expected`` (compare-and-set: of two
  deliveries taking over one job, exactly one wins; the loser's failed condition returns the
  item, ``ALL_OLD``, telling ``JobChanged`` from ``JobNotFound``).
  list_jobs(model) = ``Query gsi1 (gsi1pk = JOBS#{model})`` newest first; list_jobs() =
  ``Query pk = JOBS`` newest first, then ``BatchGetItem``.

Every ``Query`` follows ``LastEvaluatedKey``; ``BatchGetItem`` re-sends ``UnprocessedKeys``.
GSI reads are eventually consistent (listing only); every read that decides a write is a
consistent read on the base table.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from functions.core.aws_clients import LazyClient
from functions.core.clock import utc_now
from functions.core.errors import Conflict
from functions.core.naming import is_version_number
from functions.core.registry.base import (
    Alias,
    AliasEvent,
    ApiKey,
    Decision,
    Job,
    ModelVersion,
    PendingMove,
)
from functions.core.registry.exceptions import (
    AliasNotFound,
    DuplicateArtifact,
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
from functions.core.registry.rules import check_alias_target, check_alias_traffic

GSI1 = "gsi1"
TTL_ATTRIBUTE = "expires_at"

# A transaction cancelled only because another one held an item is safe to send again.
_CONFLICT_RETRIES = 8
_MOVE_RETRIES = 10

Item = dict[str, Any]


def create_table(*, table_name: str, region: str, client: Any = None) -> None:
    """Create the registry table exactly as the stack does (for tests and ``moto``)."""
    ddb = client or _new_client(region=region)
    ddb.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("pk", "sk", "gsi1pk", "gsi1sk")
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": GSI1,
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    ddb.get_waiter("table_exists").wait(TableName=table_name)
    ddb.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )


def _new_client(*, region: str | None) -> Any:
    return _lazy_client(region=region).get()


def _lazy_client(*, region: str | None, client: Any = None) -> LazyClient:
    # Short timeouts: registry reads sit on the request path, under API Gateway's 29 s.
    return LazyClient("dynamodb", region=region, connect_timeout=2, read_timeout=5, client=client)


class DynamoDBRegistry:
    def __init__(self, *, table_name: str, region: str | None = None, client: Any = None) -> None:
        self._table = table_name
        self._client = _lazy_client(region=region, client=client)

    @property
    def table_name(self) -> str:
        return self._table

    def prepare(self) -> None:
        """Build the client and prime ``GetItem`` (the read behind every key and alias lookup)
        without a connection: see ``functions.core.aws_clients.prime``."""
        from functions.core.aws_clients import prime

        prime(self._ddb, "GetItem", {"TableName": self._table, "Key": _key("prime", "prime")})

    @property
    def _ddb(self) -> Any:
        return self._client.get()

    # Low-level helpers ----------------------------------------------------------------
    def _get(self, pk: str, sk: str) -> Item | None:
        resp = self._ddb.get_item(TableName=self._table, Key=_key(pk, sk), ConsistentRead=True)
        item: Item | None = resp.get("Item")
        return item

    def _query(self, **kwargs: Any) -> Iterator[Item]:
        paginator = self._ddb.get_paginator("query")
        for page in paginator.paginate(TableName=self._table, **kwargs):
            yield from page.get("Items", [])

    def _query_prefix(self, pk: str, prefix: str, *, forward: bool = True) -> Iterator[Item]:
        return self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": _s(pk), ":prefix": _s(prefix)},
            ConsistentRead=True,
            ScanIndexForward=forward,
        )

    def _query_gsi1(
        self, gsi1pk: str, *, forward: bool = True, limit: int | None = None
    ) -> Iterator[Item]:
        kwargs: dict[str, Any] = {
            "IndexName": GSI1,
            "KeyConditionExpression": "gsi1pk = :p",
            "ExpressionAttributeValues": {":p": _s(gsi1pk)},
            "ScanIndexForward": forward,
        }
        if limit is not None:
            kwargs["PaginationConfig"] = {"MaxItems": limit}
        return self._query(**kwargs)

    def _batch_get(self, keys: list[Item]) -> list[Item]:
        """Fetch items by key (order not kept), re-sending whatever DynamoDB leaves unprocessed."""
        found: list[Item] = []
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self._table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            attempt = 0
            while request:
                resp = self._ddb.batch_get_item(RequestItems=request)
                found.extend(resp.get("Responses", {}).get(self._table, []))
                request = resp.get("UnprocessedKeys") or {}
                if request:
                    attempt += 1
                    _backoff(attempt)
        return found

    def _transact(self, items: list[Item]) -> list[dict[str, Any]] | None:
        """Run a transaction; None when it committed, else the cancellation reasons (one per
        item, ``Code`` "None" for those that were fine). Retries transaction conflicts."""
        from botocore.exceptions import ClientError

        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                self._ddb.transact_write_items(TransactItems=items)
                return None
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code == "TransactionConflictException":
                    reasons: list[dict[str, Any]] = []
                elif code == "TransactionCanceledException":
                    reasons = [dict(r) for r in exc.response.get("CancellationReasons") or []]
                else:
                    raise
                codes = {r.get("Code") for r in reasons}
                conflict = not reasons or "TransactionConflict" in codes
                if conflict and "ConditionalCheckFailed" not in codes:
                    if attempt < _CONFLICT_RETRIES:
                        _backoff(attempt + 1)
                        continue
                    raise Conflict(
                        "the registry is busy with a conflicting change; try again",
                        code="registry_busy",
                        retry_after=1,
                    ) from exc
                return reasons or [{"Code": "ConditionalCheckFailed"}] * len(items)
        raise AssertionError("unreachable")

    # Versions -------------------------------------------------------------------------
    def next_version(self, *, model: str) -> int:
        resp = self._ddb.update_item(
            TableName=self._table,
            Key=_key(_model_pk(model), "COUNTER"),
            UpdateExpression="ADD #last :one",
            ExpressionAttributeNames={"#last": "last"},
            ExpressionAttributeValues={":one": _n(1)},
            ReturnValues="UPDATED_NEW",
        )
        return int(resp["Attributes"]["last"]["N"])

    def register_version(self, *, version: ModelVersion) -> ModelVersion:
        v = version
        pk = _model_pk(v.model)
        reasons = self._transact(
            [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _version_item(v),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            **_key(pk, _sha_sk(v.sha256)),
                            "version": _n(v.version),
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _key(pk, "MODEL"),
                        "UpdateExpression": "SET model = :m, gsi1pk = :list, gsi1sk = :m",
                        "ExpressionAttributeValues": {":m": _s(v.model), ":list": _s("MODELS")},
                    }
                },
            ]
        )
        if reasons is not None:
            if _failed(reasons, 0):
                raise VersionExists(f"{v.model} version {v.version} is already registered")
            if _failed(reasons, 1):
                lock = reasons[1].get("Item") or self._get(pk, _sha_sk(v.sha256)) or {}
                existing = self.get_version(model=v.model, version=int(lock["version"]["N"]))
                raise DuplicateArtifact(
                    f"this model file is already registered as {v.model} version "
                    f"{existing.version}",
                    existing=existing,
                )
            raise Conflict(f"could not register {v.model} version {v.version}: {reasons}")
        self._raise_counter(model=v.model, at_least=v.version)
        return v

    def _raise_counter(self, *, model: str, at_least: int) -> None:
        from botocore.exceptions import ClientError

        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=_key(_model_pk(model), "COUNTER"),
                UpdateExpression="SET #last = :v",
                ConditionExpression="attribute_not_exists(#last) OR #last < :v",
                ExpressionAttributeNames={"#last": "last"},
                ExpressionAttributeValues={":v": _n(at_least)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def get_version(self, *, model: str, version: int) -> ModelVersion:
        self._check_number(model=model, version=version)
        item = self._get(_model_pk(model), _version_sk(version))
        if item is None:
            self._require_model(model)
            raise VersionNotFound(f"model {model!r} has no version {version}")
        return _version(item)

    def find_by_sha256(self, *, model: str, sha256: str) -> ModelVersion | None:
        lock = self._get(_model_pk(model), _sha_sk(sha256))
        if lock is None:
            return None
        item = self._get(_model_pk(model), _version_sk(int(lock["version"]["N"])))
        return None if item is None else _version(item)

    def list_models(self) -> list[str]:
        return sorted(_str(i, "model") for i in self._query_gsi1("MODELS"))

    def list_versions(self, *, model: str) -> list[ModelVersion]:
        versions = [_version(i) for i in self._query_prefix(_model_pk(model), "VERSION#")]
        if not versions:
            raise ModelNotFound(f"unknown model {model!r}")
        return versions

    def _check_number(self, *, model: str, version: int) -> None:
        """A number no version can have (past 64 bits, say) is simply not found."""
        if not is_version_number(version):
            self._require_model(model)
            raise VersionNotFound(f"model {model!r} has no version {version}")

    def _require_model(self, model: str) -> None:
        resp = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": _s(_model_pk(model)), ":prefix": _s("VERSION#")},
            Limit=1,
            ConsistentRead=True,
        )
        if not resp.get("Items"):
            raise ModelNotFound(f"unknown model {model!r}")

    def retire_version(self, *, model: str, version: int, actor: str) -> ModelVersion:
        self._check_number(model=model, version=version)
        from botocore.exceptions import ClientError

        try:
            resp = self._ddb.update_item(
                TableName=self._table,
                Key=_key(_model_pk(model), _version_sk(version)),
                # if_not_exists: retiring twice keeps the first retirement's time and actor.
                UpdateExpression="SET #status = :retired, "
                "retired_at = if_not_exists(retired_at, :at), "
                "retired_by = if_not_exists(retired_by, :actor)",
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(refs) OR refs <= :zero)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":retired": _s("retired"),
                    ":at": _s(utc_now()),
                    ":actor": _s(actor),
                    ":zero": _n(0),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            if (
                not exc.response.get("Item")
                and self._get(_model_pk(model), _version_sk(version)) is None
            ):
                self._require_model(model)
                raise VersionNotFound(f"model {model!r} has no version {version}") from exc
            users = [
                a.alias
                for a in self.list_aliases(model=model)
                if version in (a.version, a.canary_version)
            ]
            raise VersionInUse(
                f"{model} version {version} is in use by alias(es) {', '.join(users)}; "
                "move them first"
            ) from exc
        return _version(resp["Attributes"])

    # Aliases --------------------------------------------------------------------------
    def get_alias(self, *, model: str, alias: str) -> Alias:
        item = self._get(_model_pk(model), _alias_sk(alias))
        if item is None:
            raise AliasNotFound(f"model {model!r} has no alias {alias!r}")
        return _alias(item)

    def list_aliases(self, *, model: str) -> list[Alias]:
        return [_alias(i) for i in self._query_prefix(_model_pk(model), "ALIAS#")]

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
        check_alias_target(
            alias=alias, version=version, canary_version=canary_version, canary_weight=canary_weight
        )
        target = (version, canary_version, canary_weight)
        return self._move(model=model, alias=alias, action="set", actor=actor, to=lambda _: target)

    def rollback_alias(self, *, model: str, alias: str, actor: str) -> Alias:
        def previous(current: Item | None) -> tuple[int, int | None, int]:
            if current is None:
                raise AliasNotFound(f"model {model!r} has no alias {alias!r}")
            if "prev_version" not in current:
                raise NothingToRollBack(
                    f"alias {alias!r} of {model} has had only one target; nothing to roll back to"
                )
            return (
                _int(current, "prev_version"),
                _opt_int(current, "prev_canary_version"),
                _int(current, "prev_canary_weight"),
            )

        return self._move(model=model, alias=alias, action="rollback", actor=actor, to=previous)

    def _move(
        self,
        *,
        model: str,
        alias: str,
        action: str,
        actor: str,
        to: Callable[[Item | None], tuple[int, int | None, int]],
    ) -> Alias:
        """Move an alias in one transaction, re-reading and retrying when another move of the
        same model got in first (optimistic concurrency on the model item's ``moves``)."""
        pk = _model_pk(model)
        for _attempt in range(_MOVE_RETRIES):
            model_item = self._get(pk, "MODEL") or {}
            moves = _int(model_item, "moves") if "moves" in model_item else 0
            current = self._get(pk, _alias_sk(alias))
            version, canary_version, canary_weight = to(current)
            before = _alias(current) if current is not None else None
            now = utc_now()
            after = Alias(
                model=model,
                alias=alias,
                version=version,
                canary_version=canary_version,
                canary_weight=canary_weight,
                updated_at=now,
                updated_by=actor,
                # A move keeps the alias's shadow and capture settings.
                shadow_version=before.shadow_version if before else None,
                shadow_percent=before.shadow_percent if before else 0,
                capture_percent=before.capture_percent if before else 0,
            )
            seq = (_int(current, "seq") if current is not None else 0) + 1
            event = _alias_event(action=action, before=before, after=after, seq=seq)
            guard = "moves = :seen" if moves else "attribute_not_exists(moves)"
            values: dict[str, Any] = {":next": _n(moves + 1)}
            if moves:
                values[":seen"] = _n(moves)
            items: list[Item] = [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _key(pk, "MODEL"),
                        "UpdateExpression": "SET moves = :next",
                        "ConditionExpression": guard,
                        "ExpressionAttributeValues": values,
                    }
                },
                {"Put": {"TableName": self._table, "Item": _alias_item(after, before, seq)}},
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _event_item(event, moves + 1),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
            new_targets = [t for t in (version, canary_version) if t is not None]
            old_targets = (
                [t for t in (before.version, before.canary_version) if t is not None]
                if before
                else []
            )
            checked: list[int] = []  # target versions, in the order of their transaction items
            for v in sorted(set(new_targets) | set(old_targets)):
                delta = (v in new_targets) - (v in old_targets)
                key = _key(pk, _version_sk(v))
                if v in new_targets:
                    active: dict[str, Any] = {
                        "TableName": self._table,
                        "Key": key,
                        "ConditionExpression": "attribute_exists(pk) AND #status = :active",
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": {":active": _s("active")},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                    if delta:
                        active["UpdateExpression"] = "ADD refs :d"
                        active["ExpressionAttributeValues"][":d"] = _n(delta)
                        items.append({"Update": active})
                    else:
                        items.append({"ConditionCheck": active})
                    checked.append(v)
                else:
                    items.append(
                        {
                            "Update": {
                                "TableName": self._table,
                                "Key": key,
                                "UpdateExpression": "ADD refs :d",
                                "ConditionExpression": "attribute_exists(pk)",
                                "ExpressionAttributeValues": {":d": _n(-1)},
                            }
                        }
                    )
                    checked.append(-1)
            reasons = self._transact(items)
            if reasons is None:
                return after
            for index, v in enumerate(checked, start=3):
                if v >= 0 and _failed(reasons, index):
                    self._explain_unservable(model=model, version=v, reason=reasons[index])
            if _failed(reasons, 0) or _failed(reasons, 2):
                continue  # another move of this model won the race: read again and retry
            raise Conflict(f"could not move alias {alias!r} of {model}: {reasons}")
        raise Conflict(
            f"alias {alias!r} of {model} is being moved concurrently; try again",
            code="registry_busy",
            retry_after=1,
        )

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
        """One transaction like a move's (same guard on the model's ``moves``, so it orders
        with them), with the shadow version checked active; the alias's targets and its
        rollback point (``prev_*``) stay as they are."""
        check_alias_traffic(
            alias=alias,
            shadow_version=shadow_version,
            shadow_percent=shadow_percent,
            capture_percent=capture_percent,
        )
        pk = _model_pk(model)
        for _attempt in range(_MOVE_RETRIES):
            model_item = self._get(pk, "MODEL") or {}
            moves = _int(model_item, "moves") if "moves" in model_item else 0
            current = self._get(pk, _alias_sk(alias))
            if current is None:
                self._require_model(model)
                raise AliasNotFound(f"model {model!r} has no alias {alias!r}")
            before = _alias(current)
            after = replace(
                before,
                shadow_version=shadow_version,
                shadow_percent=shadow_percent,
                capture_percent=capture_percent,
                updated_at=utc_now(),
                updated_by=actor,
            )
            seq = _int(current, "seq") + 1
            item = _alias_item(after, None, seq)
            for name in ("prev_version", "prev_canary_weight", "prev_canary_version"):
                if name in current:
                    item[name] = current[name]
            guard = "moves = :seen" if moves else "attribute_not_exists(moves)"
            values: dict[str, Any] = {":next": _n(moves + 1)}
            if moves:
                values[":seen"] = _n(moves)
            event = _alias_event(action="traffic", before=before, after=after, seq=seq)
            items: list[Item] = [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _key(pk, "MODEL"),
                        "UpdateExpression": "SET moves = :next",
                        "ConditionExpression": guard,
                        "ExpressionAttributeValues": values,
                    }
                },
                {"Put": {"TableName": self._table, "Item": item}},
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _event_item(event, moves + 1),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
            if shadow_version is not None:
                items.append(
                    {
                        "ConditionCheck": {
                            "TableName": self._table,
                            "Key": _key(pk, _version_sk(shadow_version)),
                            "ConditionExpression": "attribute_exists(pk) AND #status = :active",
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ExpressionAttributeValues": {":active": _s("active")},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    }
                )
            reasons = self._transact(items)
            if reasons is None:
                return after
            if shadow_version is not None and _failed(reasons, 3):
                self._explain_unservable(model=model, version=shadow_version, reason=reasons[3])
            if _failed(reasons, 0) or _failed(reasons, 2):
                continue  # another move of this model got in first: read again and retry
            raise Conflict(f"could not set the traffic of alias {alias!r} of {model}: {reasons}")
        raise Conflict(
            f"alias {alias!r} of {model} is being moved concurrently; try again",
            code="registry_busy",
            retry_after=1,
        )

    def _explain_unservable(self, *, model: str, version: int, reason: dict[str, Any]) -> None:
        item = reason.get("Item") or self._get(_model_pk(model), _version_sk(version))
        if not item:
            self._require_model(model)
            raise VersionNotFound(f"model {model!r} has no version {version}")
        if _str(item, "status") != "active":
            raise VersionRetired(f"{model} version {version} is retired and cannot serve")

    def alias_history(self, *, model: str, alias: str | None = None) -> list[AliasEvent]:
        events = [_event(i) for i in self._query_prefix(_model_pk(model), "EVENT#")]
        return [e for e in events if alias is None or e.alias == alias]

    def record_decision(self, *, decision: Decision) -> Decision:
        self.get_version(model=decision.model, version=decision.version)
        # Sorted by time, then a random tail so two decisions in the same microsecond both land.
        sk = f"DECISION#{decision.at}#{uuid.uuid4().hex[:8]}"
        self._ddb.put_item(
            TableName=self._table,
            Item={
                **_key(_model_pk(decision.model), sk),
                "type": _s("decision"),
                "model": _s(decision.model),
                "version": _n(decision.version),
                "decision": _s(decision.decision),
                "actor": _s(decision.actor),
                "reason": _s(decision.reason),
                "at": _s(decision.at),
            },
            ConditionExpression="attribute_not_exists(sk)",
        )
        return decision

    def list_decisions(self, *, model: str, version: int | None = None) -> list[Decision]:
        decisions = [
            Decision(
                model=_str(i, "model"),
                version=_int(i, "version"),
                decision=_str(i, "decision"),
                actor=_str(i, "actor"),
                reason=_str(i, "reason"),
                at=_str(i, "at"),
            )
            for i in self._query_prefix(_model_pk(model), "DECISION#")
        ]
        return [d for d in decisions if version is None or d.version == version]

    def put_pending_move(self, *, move: PendingMove) -> PendingMove:
        item: Item = {
            **_key(_model_pk(move.model), f"PENDING#{move.alias}"),
            "type": _s("pending_move"),
            "model": _s(move.model),
            "alias": _s(move.alias),
            "version": _n(move.version),
            "canary_weight": _n(move.canary_weight),
            "actor": _s(move.actor),
            "requested_at": _s(move.requested_at),
        }
        _put_opt(item, "canary_version", move.canary_version)
        self._ddb.put_item(TableName=self._table, Item=item)
        return move

    def list_pending_moves(self, *, model: str) -> list[PendingMove]:
        moves = [
            PendingMove(
                model=_str(i, "model"),
                alias=_str(i, "alias"),
                version=_int(i, "version"),
                canary_version=_opt_int(i, "canary_version"),
                canary_weight=_int(i, "canary_weight"),
                actor=_str(i, "actor"),
                requested_at=_str(i, "requested_at"),
            )
            for i in self._query_prefix(_model_pk(model), "PENDING#")
        ]
        return sorted(moves, key=lambda m: (m.requested_at, m.alias))

    def delete_pending_move(self, *, model: str, alias: str, requested_at: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._ddb.delete_item(
                TableName=self._table,
                Key=_key(_model_pk(model), f"PENDING#{alias}"),
                ConditionExpression="requested_at = :at",
                ExpressionAttributeValues={":at": _s(requested_at)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # Keys -----------------------------------------------------------------------------
    def create_key(self, *, key: ApiKey) -> ApiKey:
        reasons = self._transact(
            [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _key_item(key),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _hash_pointer(key.secret_hash, key.key_id),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
        if reasons is not None:
            raise Conflict(f"key {key.key_id} already exists", code="key_exists")
        return key

    def get_key(self, *, key_id: str) -> ApiKey:
        item = self._get(_key_pk(key_id), "KEY")
        if item is None:
            raise KeyNotFound(f"unknown key {key_id!r}")
        return _api_key(item)

    def find_key_by_hash(self, *, secret_hash: str) -> ApiKey | None:
        pointer = self._get(_hash_pk(secret_hash), "KEYHASH")
        if pointer is None:
            return None
        item = self._get(_key_pk(_str(pointer, "key_id")), "KEY")
        if item is None:
            return None
        key = _api_key(item)
        # The pointer and the key change in one transaction; this only guards a torn read.
        return key if key.secret_hash == secret_hash else None

    def list_keys(self) -> list[ApiKey]:
        return [_api_key(i) for i in self._query_gsi1("KEYS")]

    def revoke_key(self, *, key_id: str) -> ApiKey:
        from botocore.exceptions import ClientError

        try:
            resp = self._ddb.update_item(
                TableName=self._table,
                Key=_key(_key_pk(key_id), "KEY"),
                # if_not_exists: revoking twice keeps the first revocation time.
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": _s(utc_now())},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise KeyNotFound(f"unknown key {key_id!r}") from exc
            raise
        return _api_key(resp["Attributes"])

    def rotate_key(
        self, *, key_id: str, expected_hash: str, secret_hash: str, apigw_key_id: str | None
    ) -> ApiKey:
        # An update of the fields that change, conditioned on the state the caller decided
        # on (this hash, not revoked): a revoke landing between the caller's read and this
        # write fails it instead of being overwritten.
        now = utc_now()
        update: Item = {
            "Update": {
                "TableName": self._table,
                "Key": _key(_key_pk(key_id), "KEY"),
                "ConditionExpression": "secret_hash = :seen AND attribute_not_exists(revoked_at)",
                **_key_update(
                    {"secret_hash": secret_hash, "rotated_at": now, "apigw_key_id": apigw_key_id}
                ),
            }
        }
        update["Update"]["ExpressionAttributeValues"][":seen"] = _s(expected_hash)
        reasons = self._transact(
            [
                update,
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": _key(_hash_pk(expected_hash), "KEYHASH"),
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _hash_pointer(secret_hash, key_id),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
        if reasons is not None:
            if _failed(reasons, 0):
                raise _key_state_conflict(self.get_key(key_id=key_id))
            raise Conflict("that secret is already in use by another key", code="key_exists")
        return self.get_key(key_id=key_id)

    def set_apigw_key_id(
        self, *, key_id: str, apigw_key_id: str | None, expected: str | None
    ) -> ApiKey:
        from botocore.exceptions import ClientError

        update = _key_update({"apigw_key_id": apigw_key_id})
        condition = "attribute_exists(pk) AND "
        if expected is None:
            condition += "attribute_not_exists(apigw_key_id)"
        else:
            condition += "apigw_key_id = :expected"
            update["ExpressionAttributeValues"][":expected"] = _s(expected)
        if not update["ExpressionAttributeValues"]:
            del update["ExpressionAttributeValues"]
        try:
            resp = self._ddb.update_item(
                TableName=self._table,
                Key=_key(_key_pk(key_id), "KEY"),
                ConditionExpression=condition,
                ReturnValues="ALL_NEW",
                **update,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                self.get_key(key_id=key_id)  # KeyNotFound when it is gone
                raise Conflict(
                    f"key {key_id} changed while it was being updated; try again",
                    code="key_changed",
                ) from exc
            raise
        return _api_key(resp["Attributes"])

    def touch_key(self, *, key_id: str, at: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        # Best effort: a busy table must not fail the request that used the key.
        with contextlib.suppress(ClientError, BotoCoreError):
            self._ddb.update_item(
                TableName=self._table,
                Key=_key(_key_pk(key_id), "KEY"),
                UpdateExpression="SET last_used_at = :at",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":at": _s(at)},
            )

    # Jobs -----------------------------------------------------------------------------
    def create_job(self, *, job: Job) -> tuple[Job, bool]:
        reasons = self._transact(
            [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": _job_item(job),
                        "ConditionExpression": "attribute_not_exists(pk)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            **_key("JOBS", f"{job.created_at}#{job.job_id}"),
                            "job_id": _s(job.job_id),
                        },
                    }
                },
            ]
        )
        if reasons is None:
            return job, True
        existing = reasons[0].get("Item") or self._get(_job_pk(job.job_id), "JOB")
        if not existing:
            raise Conflict(f"could not record job {job.job_id}: {reasons}")
        return _job(existing), False

    def update_job(self, *, job: Job, expected_updated_at: str | None = None) -> Job:
        from botocore.exceptions import ClientError

        condition = "attribute_exists(pk)"
        values: dict[str, Any] = {}
        if expected_updated_at is not None:
            condition += " AND updated_at = :expected"
            values[":expected"] = _s(expected_updated_at)
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=_job_item(job),
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            # Which condition failed: the item (if any) comes back with the error.
            returned: Any = exc.response.get("Item")
            old: Item | None = returned or self._get(_job_pk(job.job_id), "JOB")
            if not old:
                raise JobNotFound(f"unknown job {job.job_id!r}") from exc
            raise JobChanged(
                f"job {job.job_id!r} changed at {_str(old, 'updated_at')}, "
                f"after the read of {expected_updated_at}"
            ) from exc
        return job

    def get_job(self, *, job_id: str) -> Job:
        item = self._get(_job_pk(job_id), "JOB")
        if item is None:
            raise JobNotFound(f"unknown job {job_id!r}")
        return _job(item)

    def list_jobs(self, *, model: str | None = None, limit: int = 100) -> list[Job]:
        if limit <= 0:
            return []
        if model is not None:
            jobs = [_job(i) for i in self._query_gsi1(f"JOBS#{model}", forward=False, limit=limit)]
        else:
            feed = self._query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": _s("JOBS")},
                ScanIndexForward=False,
                PaginationConfig={"MaxItems": limit},
            )
            ids = [_str(i, "job_id") for i in feed]
            jobs = [_job(i) for i in self._batch_get([_key(_job_pk(j), "JOB") for j in ids])]
        jobs.sort(key=lambda j: (j.created_at, j.job_id), reverse=True)
        return jobs[:limit]


# Keys ------------------------------------------------------------------------------------
def _model_pk(model: str) -> str:
    return f"MODEL#{model}"


def _version_sk(version: int) -> str:
    return f"VERSION#{version:010d}"


def _sha_sk(sha256: str) -> str:
    return f"SHA256#{sha256}"


def _alias_sk(alias: str) -> str:
    return f"ALIAS#{alias}"


def _key_pk(key_id: str) -> str:
    return f"KEY#{key_id}"


def _hash_pk(secret_hash: str) -> str:
    return f"KEYHASH#{secret_hash}"


def _job_pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def _key_update(fields: dict[str, str | None]) -> dict[str, Any]:
    """``UpdateExpression`` + values that SET the given fields, REMOVE-ing those set to None."""
    sets = [f"{name} = :{name}" for name, value in fields.items() if value is not None]
    removes = [name for name, value in fields.items() if value is None]
    expression = " ".join(
        part
        for part in (
            f"SET {', '.join(sets)}" if sets else "",
            f"REMOVE {', '.join(removes)}" if removes else "",
        )
        if part
    )
    return {
        "UpdateExpression": expression,
        "ExpressionAttributeValues": {
            f":{name}": _s(value) for name, value in fields.items() if value is not None
        },
    }


def _key_state_conflict(key: ApiKey) -> Conflict:
    """Why a conditional key write failed, read back: revoked, or changed meanwhile."""
    if not key.active:
        return Conflict(
            f"key {key.key_id} is revoked; create a new key instead", code="key_revoked"
        )
    return Conflict(
        f"key {key.key_id} changed while it was being updated; try again", code="key_changed"
    )


def _key(pk: str, sk: str) -> Item:
    return {"pk": _s(pk), "sk": _s(sk)}


# Attribute values: the registry writes only strings, integers, booleans and string lists,
# so a tiny codec keeps Decimal out of the dataclasses.
def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


def _put_opt(item: Item, name: str, value: str | int | None) -> None:
    if value is None:
        return
    item[name] = _n(value) if isinstance(value, int) else _s(value)


def _str(item: Item, name: str) -> str:
    return str(item[name]["S"])


def _opt_str(item: Item, name: str) -> str | None:
    return str(item[name]["S"]) if name in item else None


def _int(item: Item, name: str) -> int:
    return int(item[name]["N"])


def _opt_int(item: Item, name: str) -> int | None:
    return int(item[name]["N"]) if name in item else None


def _failed(reasons: list[dict[str, Any]], index: int) -> bool:
    return index < len(reasons) and reasons[index].get("Code") == "ConditionalCheckFailed"


def _backoff(attempt: int) -> None:
    # Full jitter, capped: the other writer holds the item for milliseconds.
    time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))


# Items <-> dataclasses -------------------------------------------------------------------
def _version_item(v: ModelVersion) -> Item:
    return {
        **_key(_model_pk(v.model), _version_sk(v.version)),
        "type": _s("version"),
        "model": _s(v.model),
        "version": _n(v.version),
        "sha256": _s(v.sha256),
        "artifact_uri": _s(v.artifact_uri),
        "manifest": _s(json.dumps(v.manifest, sort_keys=True)),
        "created_at": _s(v.created_at),
        "created_by": _s(v.created_by),
        "endpoint_name": _s(v.endpoint_name),
        "variant_name": _s(v.variant_name),
        "status": _s(v.status),
        "refs": _n(0),
    }


def _version(item: Item) -> ModelVersion:
    return ModelVersion(
        model=_str(item, "model"),
        version=_int(item, "version"),
        sha256=_str(item, "sha256"),
        artifact_uri=_str(item, "artifact_uri"),
        manifest=json.loads(_str(item, "manifest")),
        created_at=_str(item, "created_at"),
        created_by=_str(item, "created_by"),
        endpoint_name=_str(item, "endpoint_name"),
        variant_name=_str(item, "variant_name"),
        status=_str(item, "status"),
    )


def _alias_item(a: Alias, before: Alias | None, seq: int) -> Item:
    item: Item = {
        **_key(_model_pk(a.model), _alias_sk(a.alias)),
        "type": _s("alias"),
        "model": _s(a.model),
        "alias": _s(a.alias),
        "version": _n(a.version),
        "canary_weight": _n(a.canary_weight),
        "updated_at": _s(a.updated_at),
        "updated_by": _s(a.updated_by),
        "seq": _n(seq),
    }
    _put_opt(item, "canary_version", a.canary_version)
    _put_opt(item, "shadow_version", a.shadow_version)
    if a.shadow_percent or a.capture_percent:
        item["shadow_percent"] = _n(a.shadow_percent)
        item["capture_percent"] = _n(a.capture_percent)
    if before is not None:
        item["prev_version"] = _n(before.version)
        item["prev_canary_weight"] = _n(before.canary_weight)
        _put_opt(item, "prev_canary_version", before.canary_version)
    return item


def _alias(item: Item) -> Alias:
    return Alias(
        model=_str(item, "model"),
        alias=_str(item, "alias"),
        version=_int(item, "version"),
        canary_version=_opt_int(item, "canary_version"),
        canary_weight=_int(item, "canary_weight"),
        updated_at=_str(item, "updated_at"),
        updated_by=_str(item, "updated_by"),
        shadow_version=_opt_int(item, "shadow_version"),
        shadow_percent=_opt_int(item, "shadow_percent") or 0,
        capture_percent=_opt_int(item, "capture_percent") or 0,
    )


def _alias_event(*, action: str, before: Alias | None, after: Alias, seq: int) -> AliasEvent:
    return AliasEvent(
        model=after.model,
        alias=after.alias,
        seq=seq,
        action=action,
        from_version=before.version if before else None,
        from_canary_version=before.canary_version if before else None,
        from_canary_weight=before.canary_weight if before else 0,
        to_version=after.version,
        to_canary_version=after.canary_version,
        to_canary_weight=after.canary_weight,
        actor=after.updated_by,
        at=after.updated_at,
        from_shadow_version=before.shadow_version if before else None,
        from_shadow_percent=before.shadow_percent if before else 0,
        from_capture_percent=before.capture_percent if before else 0,
        to_shadow_version=after.shadow_version,
        to_shadow_percent=after.shadow_percent,
        to_capture_percent=after.capture_percent,
    )


def _event_item(e: AliasEvent, position: int) -> Item:
    item: Item = {
        **_key(_model_pk(e.model), f"EVENT#{position:010d}"),
        "type": _s("alias_event"),
        "model": _s(e.model),
        "alias": _s(e.alias),
        "seq": _n(e.seq),
        "action": _s(e.action),
        "from_canary_weight": _n(e.from_canary_weight),
        "to_version": _n(e.to_version),
        "to_canary_weight": _n(e.to_canary_weight),
        "actor": _s(e.actor),
        "at": _s(e.at),
    }
    _put_opt(item, "from_version", e.from_version)
    _put_opt(item, "from_canary_version", e.from_canary_version)
    _put_opt(item, "to_canary_version", e.to_canary_version)
    _put_opt(item, "from_shadow_version", e.from_shadow_version)
    _put_opt(item, "to_shadow_version", e.to_shadow_version)
    for name in (
        "from_shadow_percent",
        "from_capture_percent",
        "to_shadow_percent",
        "to_capture_percent",
    ):
        if getattr(e, name):
            item[name] = _n(getattr(e, name))
    return item


def _event(item: Item) -> AliasEvent:
    return AliasEvent(
        model=_str(item, "model"),
        alias=_str(item, "alias"),
        seq=_int(item, "seq"),
        action=_str(item, "action"),
        from_version=_opt_int(item, "from_version"),
        from_canary_version=_opt_int(item, "from_canary_version"),
        from_canary_weight=_int(item, "from_canary_weight"),
        to_version=_int(item, "to_version"),
        to_canary_version=_opt_int(item, "to_canary_version"),
        to_canary_weight=_int(item, "to_canary_weight"),
        actor=_str(item, "actor"),
        at=_str(item, "at"),
        from_shadow_version=_opt_int(item, "from_shadow_version"),
        from_shadow_percent=_opt_int(item, "from_shadow_percent") or 0,
        from_capture_percent=_opt_int(item, "from_capture_percent") or 0,
        to_shadow_version=_opt_int(item, "to_shadow_version"),
        to_shadow_percent=_opt_int(item, "to_shadow_percent") or 0,
        to_capture_percent=_opt_int(item, "to_capture_percent") or 0,
    )


def _key_item(k: ApiKey) -> Item:
    item: Item = {
        **_key(_key_pk(k.key_id), "KEY"),
        "type": _s("key"),
        "gsi1pk": _s("KEYS"),
        "gsi1sk": _s(f"{k.created_at}#{k.key_id}"),
        "key_id": _s(k.key_id),
        "name": _s(k.name),
        "secret_hash": _s(k.secret_hash),
        # A JSON string, not a list: an empty tuple (a key for no model) stays representable.
        "models": _s(json.dumps(list(k.models))),
        "admin": {"BOOL": bool(k.admin)},
        "created_at": _s(k.created_at),
        "tenant": _s(k.tenant),
    }
    _put_opt(item, "revoked_at", k.revoked_at)
    _put_opt(item, "rotated_at", k.rotated_at)
    _put_opt(item, "last_used_at", k.last_used_at)
    _put_opt(item, "apigw_key_id", k.apigw_key_id)
    return item


def _hash_pointer(secret_hash: str, key_id: str) -> Item:
    return {
        **_key(_hash_pk(secret_hash), "KEYHASH"),
        "type": _s("key_hash"),
        "key_id": _s(key_id),
    }


def _api_key(item: Item) -> ApiKey:
    return ApiKey(
        key_id=_str(item, "key_id"),
        name=_str(item, "name"),
        secret_hash=_str(item, "secret_hash"),
        models=tuple(json.loads(_str(item, "models"))),
        admin=bool(item["admin"]["BOOL"]),
        created_at=_str(item, "created_at"),
        tenant=_str(item, "tenant"),
        revoked_at=_opt_str(item, "revoked_at"),
        rotated_at=_opt_str(item, "rotated_at"),
        last_used_at=_opt_str(item, "last_used_at"),
        apigw_key_id=_opt_str(item, "apigw_key_id"),
    )


def _job_item(j: Job) -> Item:
    item: Item = {
        **_key(_job_pk(j.job_id), "JOB"),
        "type": _s("job"),
        "gsi1pk": _s(f"JOBS#{j.model}"),
        "gsi1sk": _s(f"{j.created_at}#{j.job_id}"),
        "job_id": _s(j.job_id),
        "model": _s(j.model),
        "target": _s(j.target),
        "input_uri": _s(j.input_uri),
        "status": _s(j.status),
        "created_at": _s(j.created_at),
        "updated_at": _s(j.updated_at),
        "records": _n(j.records),
        "ok": _n(j.ok),
        "errors": _n(j.errors),
        "extra": _s(json.dumps(j.extra, sort_keys=True)),
    }
    _put_opt(item, "version", j.version)
    _put_opt(item, "output_uri", j.output_uri)
    _put_opt(item, "errors_uri", j.errors_uri)
    _put_opt(item, "reason", j.reason)
    return item


def _job(item: Item) -> Job:
    return Job(
        job_id=_str(item, "job_id"),
        model=_str(item, "model"),
        target=_str(item, "target"),
        version=_opt_int(item, "version"),
        input_uri=_str(item, "input_uri"),
        status=_str(item, "status"),
        created_at=_str(item, "created_at"),
        updated_at=_str(item, "updated_at"),
        records=_int(item, "records"),
        ok=_int(item, "ok"),
        errors=_int(item, "errors"),
        output_uri=_opt_str(item, "output_uri"),
        errors_uri=_opt_str(item, "errors_uri"),
        reason=_opt_str(item, "reason"),
        extra=json.loads(_str(item, "extra")),
    )
