"""The registry's table as the registry uses it: :func:`create_table` builds it for tests (and
``moto``) from the one table shape the stack uses too (``functions.core.registry.table_shape``),
and :class:`Table` holds the calls every part of the registry makes.

Every ``Query`` follows ``LastEvaluatedKey``; ``BatchGetItem`` re-sends ``UnprocessedKeys``;
a transaction cancelled only by a conflicting one is sent again (with jittered backoff).
GSI reads are eventually consistent (listing only); every read that decides a write is a
consistent read on the base table.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

from functions.core.aws_clients import LazyClient
from functions.core.exceptions import Conflict
from functions.core.naming import is_version_number
from functions.core.registry import table_shape as shape
from functions.core.registry.dynamodb.items import (
    Item,
    item_key,
    model_pk,
    read_str,
    str_value,
    version_sk,
)
from functions.core.registry.exceptions import ModelNotFound, VersionNotFound, VersionRetired

# A transaction cancelled only because another one held an item is safe to send again.
_CONFLICT_RETRIES = 8


def create_table(*, table_name: str, region: str, client: Any = None) -> None:
    """Create the registry table in the stack's shape (``table_shape``): tests, ``moto``."""
    ddb = client or _new_client(region=region)
    ddb.create_table(
        TableName=table_name,
        BillingMode=shape.BILLING_MODE,
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in shape.KEY_ATTRIBUTES
        ],
        KeySchema=[
            {"AttributeName": shape.PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": shape.SORT_KEY, "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": shape.GSI1,
                "KeySchema": [
                    {"AttributeName": shape.GSI1_PARTITION_KEY, "KeyType": "HASH"},
                    {"AttributeName": shape.GSI1_SORT_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": shape.GSI1_PROJECTION},
            }
        ],
    )
    ddb.get_waiter("table_exists").wait(TableName=table_name)
    ddb.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": shape.TTL_ATTRIBUTE},
    )


def _new_client(*, region: str | None) -> Any:
    return _lazy_client(region=region).get()


def _lazy_client(*, region: str | None, client: Any = None) -> LazyClient:
    # Short timeouts: registry reads sit on the request path, under API Gateway's 29 s.
    return LazyClient("dynamodb", region=region, connect_timeout=2, read_timeout=5, client=client)


class Table:
    """One registry table and the calls every part of the registry makes on it."""

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

        prime(self._ddb, "GetItem", {"TableName": self._table, "Key": item_key("prime", "prime")})

    @property
    def _ddb(self) -> Any:
        return self._client.get()

    def _get(self, pk: str, sk: str) -> Item | None:
        resp = self._ddb.get_item(TableName=self._table, Key=item_key(pk, sk), ConsistentRead=True)
        item: Item | None = resp.get("Item")
        return item

    def _query(self, **kwargs: Any) -> Iterator[Item]:
        paginator = self._ddb.get_paginator("query")
        for page in paginator.paginate(TableName=self._table, **kwargs):
            yield from page.get("Items", [])

    def _query_prefix(self, pk: str, prefix: str, *, forward: bool = True) -> Iterator[Item]:
        return self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": str_value(pk), ":prefix": str_value(prefix)},
            ConsistentRead=True,
            ScanIndexForward=forward,
        )

    def _query_gsi1(
        self, gsi1pk: str, *, forward: bool = True, limit: int | None = None
    ) -> Iterator[Item]:
        kwargs: dict[str, Any] = {
            "IndexName": shape.GSI1,
            "KeyConditionExpression": "gsi1pk = :p",
            "ExpressionAttributeValues": {":p": str_value(gsi1pk)},
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
                    backoff(attempt)
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
                        backoff(attempt + 1)
                        continue
                    raise Conflict(
                        "the registry is busy with a conflicting change; try again",
                        code="registry_busy",
                        retry_after=1,
                    ) from exc
                return reasons or [{"Code": "ConditionalCheckFailed"}] * len(items)
        raise AssertionError("unreachable")

    def _check_number(self, *, model: str, version: int) -> None:
        """A number no version can have (past 64 bits, say) is simply not found."""
        if not is_version_number(version):
            self._require_model(model)
            raise VersionNotFound(f"model {model!r} has no version {version}")

    def _require_model(self, model: str) -> None:
        resp = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": str_value(model_pk(model)),
                ":prefix": str_value("VERSION#"),
            },
            Limit=1,
            ConsistentRead=True,
        )
        if not resp.get("Items"):
            raise ModelNotFound(f"unknown model {model!r}")

    def _explain_unservable(self, *, model: str, version: int, reason: dict[str, Any]) -> None:
        item = reason.get("Item") or self._get(model_pk(model), version_sk(version))
        if not item:
            self._require_model(model)
            raise VersionNotFound(f"model {model!r} has no version {version}")
        if read_str(item, "status") != "active":
            raise VersionRetired(f"{model} version {version} is retired and cannot serve")


def failed(reasons: list[dict[str, Any]], index: int) -> bool:
    return index < len(reasons) and reasons[index].get("Code") == "ConditionalCheckFailed"


def backoff(attempt: int) -> None:
    # Full jitter, capped: the other writer holds the item for milliseconds.
    time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
