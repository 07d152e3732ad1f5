"""API keys in the SQLite registry: stored by id with their secret's hash (unique), rotated
and re-pointed at an API Gateway key by compare-and-set on the value the caller read."""

from __future__ import annotations

import sqlite3

from functions.core.clock import utc_now
from functions.core.exceptions import Conflict
from functions.core.registry.base import ApiKey
from functions.core.registry.exceptions import KeyNotFound
from functions.core.registry.sqlite.connection import Database
from functions.core.registry.sqlite.tables import KEY_COLUMNS, key_from, key_values, marks


class KeysPart(Database):
    """API keys: created once, found by id or by secret hash, revoked, rotated."""

    def create_key(self, *, key: ApiKey) -> ApiKey:
        with self._write() as tx:
            try:
                tx.execute(
                    f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ({marks(11)})",
                    key_values(key),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"key {key.key_id} already exists", code="key_exists") from exc
        return key

    def get_key(self, *, key_id: str) -> ApiKey:
        row = self._one(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,))
        if row is None:
            raise KeyNotFound(f"unknown key {key_id!r}")
        return key_from(row)

    def find_key_by_hash(self, *, secret_hash: str) -> ApiKey | None:
        row = self._one(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_hash = ?", (secret_hash,))
        return None if row is None else key_from(row)

    def list_keys(self) -> list[ApiKey]:
        rows = self._all(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id")
        return [key_from(r) for r in rows]

    def revoke_key(self, *, key_id: str) -> ApiKey:
        with self._write() as tx:
            # coalesce: revoking twice keeps the first revocation time.
            tx.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE key_id = ?",
                (utc_now(), key_id),
            )
            row = tx.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
            if row is None:
                raise KeyNotFound(f"unknown key {key_id!r}")
        return key_from(row)

    def rotate_key(
        self, *, key_id: str, expected_hash: str, secret_hash: str, apigw_key_id: str | None
    ) -> ApiKey:
        with self._write() as tx:
            cursor = tx.execute(
                "UPDATE api_keys SET secret_hash = ?, rotated_at = ?, apigw_key_id = ? "
                "WHERE key_id = ? AND secret_hash = ? AND revoked_at IS NULL",
                (secret_hash, utc_now(), apigw_key_id, key_id, expected_hash),
            )
            row = tx.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
            if row is None:
                raise KeyNotFound(f"unknown key {key_id!r}")
            if cursor.rowcount == 0:
                key = key_from(row)
                if not key.active:
                    raise Conflict(
                        f"key {key_id} is revoked; create a new key instead", code="key_revoked"
                    )
                raise Conflict(
                    f"key {key_id} changed while it was being updated; try again",
                    code="key_changed",
                )
        return key_from(row)

    def set_apigw_key_id(
        self, *, key_id: str, apigw_key_id: str | None, expected: str | None
    ) -> ApiKey:
        with self._write() as tx:
            cursor = tx.execute(
                "UPDATE api_keys SET apigw_key_id = ? WHERE key_id = ? AND apigw_key_id IS ?",
                (apigw_key_id, key_id, expected),
            )
            row = tx.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
            if row is None:
                raise KeyNotFound(f"unknown key {key_id!r}")
            if cursor.rowcount == 0:
                raise Conflict(
                    f"key {key_id} changed while it was being updated; try again",
                    code="key_changed",
                )
        return key_from(row)

    def touch_key(self, *, key_id: str, at: str) -> None:
        # Best effort: a busy registry must not fail the request that used the key.
        try:
            with self._write() as tx:
                tx.execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (at, key_id))
        except sqlite3.OperationalError:
            pass
