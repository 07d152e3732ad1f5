"""Aliases in the DynamoDB registry.

- ``GetItem`` / ``Query begins_with(sk, ALIAS#)``. Every move (set, rollback) is one
  transaction: Update the model item's ``moves`` counter conditioned on the value read
  (optimistic; a racing move of any alias of the model cancels one of the two, which re-reads
  and retries), Put the alias (which keeps its previous target, so rollback is one read), Put
  the event (``attribute_not_exists``), and per target version an Update ``ADD refs`` with the
  condition that it exists and is active (old targets get ``ADD refs -1``).
- set_alias_traffic: the same transaction's guard and event, the targets left as they are.
- alias_history: ``Query begins_with(sk, EVENT#)`` (model-wide order), filtered by alias.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from functions.core.clock import utc_now
from functions.core.exceptions import Conflict
from functions.core.registry.base import Alias, AliasEvent
from functions.core.registry.dynamodb.items import (
    Item,
    alias_event,
    alias_from,
    alias_item,
    alias_sk,
    event_from,
    event_item,
    item_key,
    model_pk,
    num_value,
    read_int,
    read_opt_int,
    str_value,
    version_sk,
)
from functions.core.registry.dynamodb.table import Table, failed
from functions.core.registry.exceptions import AliasNotFound, NothingToRollBack
from functions.core.registry.rules import check_alias_target, check_alias_traffic, moved_alias

_MOVE_RETRIES = 10


class AliasesPart(Table):
    """Aliases: moved, rolled back and given shadow traffic, every change recorded."""

    def get_alias(self, *, model: str, alias: str) -> Alias:
        item = self._get(model_pk(model), alias_sk(alias))
        if item is None:
            raise AliasNotFound(f"model {model!r} has no alias {alias!r}")
        return alias_from(item)

    def _count_move(self, pk: str, moves: int) -> Item:
        """The transaction item that bumps the model's ``moves`` counter from the value read:
        the optimistic-concurrency guard every alias change of the model shares."""
        guard = "moves = :seen" if moves else "attribute_not_exists(moves)"
        values: dict[str, Any] = {":next": num_value(moves + 1)}
        if moves:
            values[":seen"] = num_value(moves)
        return {
            "Update": {
                "TableName": self._table,
                "Key": item_key(pk, "MODEL"),
                "UpdateExpression": "SET moves = :next",
                "ConditionExpression": guard,
                "ExpressionAttributeValues": values,
            }
        }

    def list_aliases(self, *, model: str) -> list[Alias]:
        return [alias_from(i) for i in self._query_prefix(model_pk(model), "ALIAS#")]

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
                read_int(current, "prev_version"),
                read_opt_int(current, "prev_canary_version"),
                read_int(current, "prev_canary_weight"),
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
        pk = model_pk(model)
        for _attempt in range(_MOVE_RETRIES):
            model_item = self._get(pk, "MODEL") or {}
            moves = read_int(model_item, "moves") if "moves" in model_item else 0
            current = self._get(pk, alias_sk(alias))
            before = alias_from(current) if current is not None else None
            after = moved_alias(
                before=before, model=model, alias=alias, target=to(current), actor=actor
            )
            seq = (read_int(current, "seq") if current is not None else 0) + 1
            event = alias_event(action=action, before=before, after=after, seq=seq)
            items: list[Item] = [
                self._count_move(pk, moves),
                {"Put": {"TableName": self._table, "Item": alias_item(after, before, seq)}},
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": event_item(event, moves + 1),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
            new_targets = [t for t in (after.version, after.canary_version) if t is not None]
            old_targets = (
                [t for t in (before.version, before.canary_version) if t is not None]
                if before
                else []
            )
            checked: list[int] = []  # target versions, in the order of their transaction items
            for v in sorted(set(new_targets) | set(old_targets)):
                delta = (v in new_targets) - (v in old_targets)
                key = item_key(pk, version_sk(v))
                if v in new_targets:
                    active: dict[str, Any] = {
                        "TableName": self._table,
                        "Key": key,
                        "ConditionExpression": "attribute_exists(pk) AND #status = :active",
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": {":active": str_value("active")},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                    if delta:
                        active["UpdateExpression"] = "ADD refs :d"
                        active["ExpressionAttributeValues"][":d"] = num_value(delta)
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
                                "ExpressionAttributeValues": {":d": num_value(-1)},
                            }
                        }
                    )
                    checked.append(-1)
            reasons = self._transact(items)
            if reasons is None:
                return after
            for index, v in enumerate(checked, start=3):
                if v >= 0 and failed(reasons, index):
                    self._explain_unservable(model=model, version=v, reason=reasons[index])
            if failed(reasons, 0) or failed(reasons, 2):
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
        pk = model_pk(model)
        for _attempt in range(_MOVE_RETRIES):
            model_item = self._get(pk, "MODEL") or {}
            moves = read_int(model_item, "moves") if "moves" in model_item else 0
            current = self._get(pk, alias_sk(alias))
            if current is None:
                self._require_model(model)
                raise AliasNotFound(f"model {model!r} has no alias {alias!r}")
            before = alias_from(current)
            after = replace(
                before,
                shadow_version=shadow_version,
                shadow_percent=shadow_percent,
                capture_percent=capture_percent,
                updated_at=utc_now(),
                updated_by=actor,
            )
            seq = read_int(current, "seq") + 1
            item = alias_item(after, None, seq)
            for name in ("prev_version", "prev_canary_weight", "prev_canary_version"):
                if name in current:
                    item[name] = current[name]
            event = alias_event(action="traffic", before=before, after=after, seq=seq)
            items: list[Item] = [
                self._count_move(pk, moves),
                {"Put": {"TableName": self._table, "Item": item}},
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": event_item(event, moves + 1),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
            if shadow_version is not None:
                items.append(
                    {
                        "ConditionCheck": {
                            "TableName": self._table,
                            "Key": item_key(pk, version_sk(shadow_version)),
                            "ConditionExpression": "attribute_exists(pk) AND #status = :active",
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ExpressionAttributeValues": {":active": str_value("active")},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    }
                )
            reasons = self._transact(items)
            if reasons is None:
                return after
            if shadow_version is not None and failed(reasons, 3):
                self._explain_unservable(model=model, version=shadow_version, reason=reasons[3])
            if failed(reasons, 0) or failed(reasons, 2):
                continue  # another move of this model got in first: read again and retry
            raise Conflict(f"could not set the traffic of alias {alias!r} of {model}: {reasons}")
        raise Conflict(
            f"alias {alias!r} of {model} is being moved concurrently; try again",
            code="registry_busy",
            retry_after=1,
        )

    def alias_history(self, *, model: str, alias: str | None = None) -> list[AliasEvent]:
        events = [event_from(i) for i in self._query_prefix(model_pk(model), "EVENT#")]
        return [e for e in events if alias is None or e.alias == alias]
