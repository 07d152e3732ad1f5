"""Aliases in the SQLite registry: every move (set, rollback, traffic) rewrites the alias row
and appends its event in the same write transaction, so history never misses a move."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from functions.core.clock import utc_now
from functions.core.registry.base import Alias, AliasEvent
from functions.core.registry.exceptions import (
    AliasNotFound,
    NothingToRollBack,
    VersionNotFound,
    VersionRetired,
)
from functions.core.registry.rules import check_alias_target, check_alias_traffic, moved_alias
from functions.core.registry.sqlite.connection import Database
from functions.core.registry.sqlite.tables import ALIAS_COLUMNS, EVENT_COLUMNS, alias_from


class AliasesPart(Database):
    """Aliases and their history: moved inside one write transaction with their event."""

    def get_alias(self, *, model: str, alias: str) -> Alias:
        row = self._one(
            f"SELECT {ALIAS_COLUMNS} FROM aliases WHERE model = ? AND alias = ?", (model, alias)
        )
        if row is None:
            raise AliasNotFound(f"model {model!r} has no alias {alias!r}")
        return alias_from(row)

    def list_aliases(self, *, model: str) -> list[Alias]:
        rows = self._all(
            f"SELECT {ALIAS_COLUMNS} FROM aliases WHERE model = ? ORDER BY alias", (model,)
        )
        return [alias_from(r) for r in rows]

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
        with self._write() as tx:
            return self._move(
                tx,
                model=model,
                alias=alias,
                action="set",
                to=(version, canary_version, canary_weight),
                actor=actor,
            )

    def rollback_alias(self, *, model: str, alias: str, actor: str) -> Alias:
        """Move the alias to the ``from_*`` target of its last event. A rollback is itself
        recorded as a move, so rolling back twice toggles between the last two targets."""
        with self._write() as tx:
            last = tx.execute(
                "SELECT from_version, from_canary_version, from_canary_weight FROM alias_events "
                "WHERE model = ? AND alias = ? AND action != 'traffic' ORDER BY seq DESC LIMIT 1",
                (model, alias),
            ).fetchone()
            if last is None:
                raise AliasNotFound(f"model {model!r} has no alias {alias!r}")
            if last[0] is None:
                raise NothingToRollBack(
                    f"alias {alias!r} of {model} has had only one target; nothing to roll back to"
                )
            return self._move(
                tx,
                model=model,
                alias=alias,
                action="rollback",
                to=(int(last[0]), last[1], int(last[2])),
                actor=actor,
            )

    def _move(
        self,
        tx: sqlite3.Connection,
        *,
        model: str,
        alias: str,
        action: str,
        to: tuple[int, int | None, int],
        actor: str,
    ) -> Alias:
        version, canary_version, canary_weight = to
        for target in (version, canary_version):
            if target is None:
                continue
            row = tx.execute(
                "SELECT status FROM versions WHERE model = ? AND version = ?", (model, target)
            ).fetchone()
            if row is None:
                self._require_model(model, tx)
                raise VersionNotFound(f"model {model!r} has no version {target}")
            if row[0] != "active":
                raise VersionRetired(f"{model} version {target} is retired and cannot serve")
        current = tx.execute(
            f"SELECT {ALIAS_COLUMNS} FROM aliases WHERE model = ? AND alias = ?", (model, alias)
        ).fetchone()
        before = alias_from(current) if current is not None else None
        after = moved_alias(
            before=before,
            model=model,
            alias=alias,
            target=(version, canary_version, canary_weight),
            actor=actor,
        )
        self._write_alias(tx, action=action, before=before, after=after)
        return after

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
        check_alias_traffic(
            alias=alias,
            shadow_version=shadow_version,
            shadow_percent=shadow_percent,
            capture_percent=capture_percent,
        )
        with self._write() as tx:
            current = tx.execute(
                f"SELECT {ALIAS_COLUMNS} FROM aliases WHERE model = ? AND alias = ?",
                (model, alias),
            ).fetchone()
            if current is None:
                self._require_model(model, tx)
                raise AliasNotFound(f"model {model!r} has no alias {alias!r}")
            if shadow_version is not None:
                row = tx.execute(
                    "SELECT status FROM versions WHERE model = ? AND version = ?",
                    (model, shadow_version),
                ).fetchone()
                if row is None:
                    raise VersionNotFound(f"model {model!r} has no version {shadow_version}")
                if row[0] != "active":
                    raise VersionRetired(
                        f"{model} version {shadow_version} is retired and cannot serve"
                    )
            before = alias_from(current)
            after = replace(
                before,
                shadow_version=shadow_version,
                shadow_percent=shadow_percent,
                capture_percent=capture_percent,
                updated_at=utc_now(),
                updated_by=actor,
            )
            self._write_alias(tx, action="traffic", before=before, after=after)
            return after

    def _write_alias(
        self, tx: sqlite3.Connection, *, action: str, before: Alias | None, after: Alias
    ) -> None:
        """Store ``after`` and append the event from ``before`` to it."""
        tx.execute(
            f"INSERT OR REPLACE INTO aliases ({ALIAS_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                after.model,
                after.alias,
                after.version,
                after.canary_version,
                after.canary_weight,
                after.updated_at,
                after.updated_by,
                after.shadow_version,
                after.shadow_percent,
                after.capture_percent,
            ),
        )
        seq = tx.execute(
            "SELECT coalesce(max(seq), 0) + 1 FROM alias_events WHERE model = ? AND alias = ?",
            (after.model, after.alias),
        ).fetchone()[0]
        tx.execute(
            f"INSERT INTO alias_events ({EVENT_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                after.model,
                after.alias,
                seq,
                action,
                before.version if before else None,
                before.canary_version if before else None,
                before.canary_weight if before else 0,
                after.version,
                after.canary_version,
                after.canary_weight,
                after.updated_by,
                after.updated_at,
                before.shadow_version if before else None,
                before.shadow_percent if before else 0,
                before.capture_percent if before else 0,
                after.shadow_version,
                after.shadow_percent,
                after.capture_percent,
            ),
        )

    def alias_history(self, *, model: str, alias: str | None = None) -> list[AliasEvent]:
        if alias is None:
            rows = self._all(
                f"SELECT {EVENT_COLUMNS} FROM alias_events WHERE model = ? ORDER BY id", (model,)
            )
        else:
            rows = self._all(
                f"SELECT {EVENT_COLUMNS} FROM alias_events WHERE model = ? AND alias = ? "
                "ORDER BY seq",
                (model, alias),
            )
        return [AliasEvent(**dict(r)) for r in rows]
