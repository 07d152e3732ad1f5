"""API keys in the DynamoDB registry.

- create = transaction Put key + Put hash pointer (both ``attribute_not_exists``);
  find_key_by_hash = ``GetItem`` pointer then key; rotate = transaction Update key (only the
  fields that change, conditioned on the hash read and on not being revoked, so a racing
  revoke is never undone) + Delete old pointer + Put new pointer, so the old secret stops
  matching in the same instant the new one starts; revoke/touch = ``UpdateItem``;
  set_apigw_key_id = ``UpdateItem`` conditioned on the id read; list = ``Query gsi1
  (gsi1pk = KEYS)``.
"""

from __future__ import annotations

import contextlib

from functions.core.clock import utc_now
from functions.core.exceptions import Conflict
from functions.core.registry.base import ApiKey
from functions.core.registry.dynamodb.items import (
    Item,
    hash_pk,
    hash_pointer,
    item_key,
    key_from,
    key_item,
    key_pk,
    key_update,
    read_str,
    str_value,
)
from functions.core.registry.dynamodb.table import Table, failed
from functions.core.registry.exceptions import KeyNotFound


def _key_state_conflict(key: ApiKey) -> Conflict:
    """Why a conditional key write failed, read back: revoked, or changed meanwhile."""
    if not key.active:
        return Conflict(
            f"key {key.key_id} is revoked; create a new key instead", code="key_revoked"
        )
    return Conflict(
        f"key {key.key_id} changed while it was being updated; try again", code="key_changed"
    )


class KeysPart(Table):
    """API keys, stored as hashes, found by the hash of the secret a caller sends."""

    def create_key(self, *, key: ApiKey) -> ApiKey:
        reasons = self._transact(
            [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": key_item(key),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": hash_pointer(key.secret_hash, key.key_id),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
        if reasons is not None:
            raise Conflict(f"key {key.key_id} already exists", code="key_exists")
        return key

    def get_key(self, *, key_id: str) -> ApiKey:
        item = self._get(key_pk(key_id), "KEY")
        if item is None:
            raise KeyNotFound(f"unknown key {key_id!r}")
        return key_from(item)

    def find_key_by_hash(self, *, secret_hash: str) -> ApiKey | None:
        pointer = self._get(hash_pk(secret_hash), "KEYHASH")
        if pointer is None:
            return None
        item = self._get(key_pk(read_str(pointer, "key_id")), "KEY")
        if item is None:
            return None
        key = key_from(item)
        # The pointer and the key change in one transaction; this only guards a torn read.
        return key if key.secret_hash == secret_hash else None

    def list_keys(self) -> list[ApiKey]:
        return [key_from(i) for i in self._query_gsi1("KEYS")]

    def revoke_key(self, *, key_id: str) -> ApiKey:
        from botocore.exceptions import ClientError

        try:
            resp = self._ddb.update_item(
                TableName=self._table,
                Key=item_key(key_pk(key_id), "KEY"),
                # if_not_exists: revoking twice keeps the first revocation time.
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": str_value(utc_now())},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise KeyNotFound(f"unknown key {key_id!r}") from exc
            raise
        return key_from(resp["Attributes"])

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
                "Key": item_key(key_pk(key_id), "KEY"),
                "ConditionExpression": "secret_hash = :seen AND attribute_not_exists(revoked_at)",
                **key_update(
                    {"secret_hash": secret_hash, "rotated_at": now, "apigw_key_id": apigw_key_id}
                ),
            }
        }
        update["Update"]["ExpressionAttributeValues"][":seen"] = str_value(expected_hash)
        reasons = self._transact(
            [
                update,
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": item_key(hash_pk(expected_hash), "KEYHASH"),
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": hash_pointer(secret_hash, key_id),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
        if reasons is not None:
            if failed(reasons, 0):
                raise _key_state_conflict(self.get_key(key_id=key_id))
            raise Conflict("that secret is already in use by another key", code="key_exists")
        return self.get_key(key_id=key_id)

    def set_apigw_key_id(
        self, *, key_id: str, apigw_key_id: str | None, expected: str | None
    ) -> ApiKey:
        from botocore.exceptions import ClientError

        update = key_update({"apigw_key_id": apigw_key_id})
        condition = "attribute_exists(pk) AND "
        if expected is None:
            condition += "attribute_not_exists(apigw_key_id)"
        else:
            condition += "apigw_key_id = :expected"
            update["ExpressionAttributeValues"][":expected"] = str_value(expected)
        if not update["ExpressionAttributeValues"]:
            del update["ExpressionAttributeValues"]
        try:
            resp = self._ddb.update_item(
                TableName=self._table,
                Key=item_key(key_pk(key_id), "KEY"),
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
        return key_from(resp["Attributes"])

    def touch_key(self, *, key_id: str, at: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        # Best effort: a busy table must not fail the request that used the key.
        with contextlib.suppress(ClientError, BotoCoreError):
            self._ddb.update_item(
                TableName=self._table,
                Key=item_key(key_pk(key_id), "KEY"),
                UpdateExpression="SET last_used_at = :at",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":at": str_value(at)},
            )
