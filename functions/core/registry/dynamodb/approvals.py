"""Approval decisions and pending alias moves in the DynamoDB registry.

- record_decision: ``PutItem`` (``attribute_not_exists``) under ``DECISION#{at}#{rand}``, once the
  version is known to exist; list_decisions: ``Query begins_with(sk, DECISION#)``.
- Pending moves: one item per alias (``PENDING#{alias}``), replaced by a newer request;
  deleted only while it is still the request read (``requested_at = :at``).
"""

from __future__ import annotations

import uuid

from functions.core.registry.base import Decision, PendingMove
from functions.core.registry.dynamodb.items import (
    Item,
    item_key,
    model_pk,
    num_value,
    put_optional,
    read_int,
    read_opt_int,
    read_str,
    str_value,
)
from functions.core.registry.dynamodb.versions import VersionsPart


class ApprovalsPart(VersionsPart):
    """Approval decisions on versions, and alias moves waiting for one."""

    def record_decision(self, *, decision: Decision) -> Decision:
        self.get_version(model=decision.model, version=decision.version)
        # Sorted by time, then a random tail so two decisions in the same microsecond both land.
        sk = f"DECISION#{decision.at}#{uuid.uuid4().hex[:8]}"
        self._ddb.put_item(
            TableName=self._table,
            Item={
                **item_key(model_pk(decision.model), sk),
                "type": str_value("decision"),
                "model": str_value(decision.model),
                "version": num_value(decision.version),
                "decision": str_value(decision.decision),
                "actor": str_value(decision.actor),
                "reason": str_value(decision.reason),
                "at": str_value(decision.at),
            },
            ConditionExpression="attribute_not_exists(sk)",
        )
        return decision

    def list_decisions(self, *, model: str, version: int | None = None) -> list[Decision]:
        decisions = [
            Decision(
                model=read_str(i, "model"),
                version=read_int(i, "version"),
                decision=read_str(i, "decision"),
                actor=read_str(i, "actor"),
                reason=read_str(i, "reason"),
                at=read_str(i, "at"),
            )
            for i in self._query_prefix(model_pk(model), "DECISION#")
        ]
        return [d for d in decisions if version is None or d.version == version]

    def put_pending_move(self, *, move: PendingMove) -> PendingMove:
        item: Item = {
            **item_key(model_pk(move.model), f"PENDING#{move.alias}"),
            "type": str_value("pending_move"),
            "model": str_value(move.model),
            "alias": str_value(move.alias),
            "version": num_value(move.version),
            "canary_weight": num_value(move.canary_weight),
            "actor": str_value(move.actor),
            "requested_at": str_value(move.requested_at),
        }
        put_optional(item, "canary_version", move.canary_version)
        self._ddb.put_item(TableName=self._table, Item=item)
        return move

    def list_pending_moves(self, *, model: str) -> list[PendingMove]:
        moves = [
            PendingMove(
                model=read_str(i, "model"),
                alias=read_str(i, "alias"),
                version=read_int(i, "version"),
                canary_version=read_opt_int(i, "canary_version"),
                canary_weight=read_int(i, "canary_weight"),
                actor=read_str(i, "actor"),
                requested_at=read_str(i, "requested_at"),
            )
            for i in self._query_prefix(model_pk(model), "PENDING#")
        ]
        return sorted(moves, key=lambda m: (m.requested_at, m.alias))

    def delete_pending_move(self, *, model: str, alias: str, requested_at: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._ddb.delete_item(
                TableName=self._table,
                Key=item_key(model_pk(model), f"PENDING#{alias}"),
                ConditionExpression="requested_at = :at",
                ExpressionAttributeValues={":at": str_value(requested_at)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
