"""Approvals in the SQLite registry: decisions on versions (append-only) and alias moves that
wait for one (one pending move per alias)."""

from __future__ import annotations

from functions.core.registry.base import Decision, PendingMove
from functions.core.registry.exceptions import VersionNotFound
from functions.core.registry.sqlite.connection import Database
from functions.core.registry.sqlite.tables import DECISION_COLUMNS


class ApprovalsPart(Database):
    """Approval decisions and the alias moves pending one."""

    def record_decision(self, *, decision: Decision) -> Decision:
        with self._write() as tx:
            row = tx.execute(
                "SELECT 1 FROM versions WHERE model = ? AND version = ?",
                (decision.model, decision.version),
            ).fetchone()
            if row is None:
                self._require_model(decision.model, tx)
                raise VersionNotFound(f"model {decision.model!r} has no version {decision.version}")
            tx.execute(
                f"INSERT INTO decisions ({DECISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    decision.model,
                    decision.version,
                    decision.decision,
                    decision.actor,
                    decision.reason,
                    decision.at,
                ),
            )
        return decision

    def list_decisions(self, *, model: str, version: int | None = None) -> list[Decision]:
        if version is None:
            rows = self._all(
                f"SELECT {DECISION_COLUMNS} FROM decisions WHERE model = ? ORDER BY id", (model,)
            )
        else:
            rows = self._all(
                f"SELECT {DECISION_COLUMNS} FROM decisions WHERE model = ? AND version = ? "
                "ORDER BY id",
                (model, version),
            )
        return [Decision(**dict(r)) for r in rows]

    def put_pending_move(self, *, move: PendingMove) -> PendingMove:
        with self._write() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO pending_moves (model, alias, version, canary_version, "
                "canary_weight, actor, requested_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    move.model,
                    move.alias,
                    move.version,
                    move.canary_version,
                    move.canary_weight,
                    move.actor,
                    move.requested_at,
                ),
            )
        return move

    def list_pending_moves(self, *, model: str) -> list[PendingMove]:
        rows = self._all(
            "SELECT model, alias, version, canary_version, canary_weight, actor, requested_at "
            "FROM pending_moves WHERE model = ? ORDER BY requested_at, alias",
            (model,),
        )
        return [PendingMove(**dict(row)) for row in rows]

    def delete_pending_move(self, *, model: str, alias: str, requested_at: str) -> bool:
        with self._write() as tx:
            cursor = tx.execute(
                "DELETE FROM pending_moves WHERE model = ? AND alias = ? AND requested_at = ?",
                (model, alias, requested_at),
            )
        return cursor.rowcount > 0
