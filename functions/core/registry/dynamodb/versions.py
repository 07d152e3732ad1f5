"""Versions in the DynamoDB registry.

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
- retire_version: one conditional ``UpdateItem``: exists and ``refs = 0``; ``refs`` counts the
  aliases and canaries pointing at the version, kept exact by the move transactions
  (``aliases``), so a retire racing an alias move cannot leave an alias on a retired version.
"""

from __future__ import annotations

from functions.core.clock import utc_now
from functions.core.exceptions import Conflict
from functions.core.registry.base import ModelVersion
from functions.core.registry.dynamodb.items import (
    alias_from,
    item_key,
    model_pk,
    num_value,
    read_str,
    sha_sk,
    str_value,
    version_from,
    version_item,
    version_sk,
)
from functions.core.registry.dynamodb.table import Table, failed
from functions.core.registry.exceptions import (
    DuplicateArtifact,
    ModelNotFound,
    VersionExists,
    VersionInUse,
    VersionNotFound,
)


class VersionsPart(Table):
    """Versions: numbered, immutable, retired only when unused."""

    def next_version(self, *, model: str) -> int:
        resp = self._ddb.update_item(
            TableName=self._table,
            Key=item_key(model_pk(model), "COUNTER"),
            UpdateExpression="ADD #last :one",
            ExpressionAttributeNames={"#last": "last"},
            ExpressionAttributeValues={":one": num_value(1)},
            ReturnValues="UPDATED_NEW",
        )
        return int(resp["Attributes"]["last"]["N"])

    def register_version(self, *, version: ModelVersion) -> ModelVersion:
        v = version
        pk = model_pk(v.model)
        reasons = self._transact(
            [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": version_item(v),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            **item_key(pk, sha_sk(v.sha256)),
                            "version": num_value(v.version),
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": item_key(pk, "MODEL"),
                        "UpdateExpression": "SET model = :m, gsi1pk = :list, gsi1sk = :m",
                        "ExpressionAttributeValues": {
                            ":m": str_value(v.model),
                            ":list": str_value("MODELS"),
                        },
                    }
                },
            ]
        )
        if reasons is not None:
            if failed(reasons, 0):
                raise VersionExists(f"{v.model} version {v.version} is already registered")
            if failed(reasons, 1):
                lock = reasons[1].get("Item") or self._get(pk, sha_sk(v.sha256)) or {}
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
                Key=item_key(model_pk(model), "COUNTER"),
                UpdateExpression="SET #last = :v",
                ConditionExpression="attribute_not_exists(#last) OR #last < :v",
                ExpressionAttributeNames={"#last": "last"},
                ExpressionAttributeValues={":v": num_value(at_least)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def get_version(self, *, model: str, version: int) -> ModelVersion:
        self._check_number(model=model, version=version)
        item = self._get(model_pk(model), version_sk(version))
        if item is None:
            self._require_model(model)
            raise VersionNotFound(f"model {model!r} has no version {version}")
        return version_from(item)

    def find_by_sha256(self, *, model: str, sha256: str) -> ModelVersion | None:
        lock = self._get(model_pk(model), sha_sk(sha256))
        if lock is None:
            return None
        item = self._get(model_pk(model), version_sk(int(lock["version"]["N"])))
        return None if item is None else version_from(item)

    def list_models(self) -> list[str]:
        return sorted(read_str(i, "model") for i in self._query_gsi1("MODELS"))

    def list_versions(self, *, model: str) -> list[ModelVersion]:
        versions = [version_from(i) for i in self._query_prefix(model_pk(model), "VERSION#")]
        if not versions:
            raise ModelNotFound(f"unknown model {model!r}")
        return versions

    def retire_version(self, *, model: str, version: int, actor: str) -> ModelVersion:
        self._check_number(model=model, version=version)
        from botocore.exceptions import ClientError

        try:
            resp = self._ddb.update_item(
                TableName=self._table,
                Key=item_key(model_pk(model), version_sk(version)),
                # if_not_exists: retiring twice keeps the first retirement's time and actor.
                UpdateExpression="SET #status = :retired, "
                "retired_at = if_not_exists(retired_at, :at), "
                "retired_by = if_not_exists(retired_by, :actor)",
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(refs) OR refs <= :zero)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":retired": str_value("retired"),
                    ":at": str_value(utc_now()),
                    ":actor": str_value(actor),
                    ":zero": num_value(0),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            if (
                not exc.response.get("Item")
                and self._get(model_pk(model), version_sk(version)) is None
            ):
                self._require_model(model)
                raise VersionNotFound(f"model {model!r} has no version {version}") from exc
            users = [
                a.alias
                for a in map(alias_from, self._query_prefix(model_pk(model), "ALIAS#"))
                if version in (a.version, a.canary_version)
            ]
            raise VersionInUse(
                f"{model} version {version} is in use by alias(es) {', '.join(users)}; "
                "move them first"
            ) from exc
        return version_from(resp["Attributes"])
