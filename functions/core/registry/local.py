"""The registry on one SQLite file: the local backend, shared by the router, the CLI and tests.

Several processes use the same file at once, so every connection runs in WAL mode (readers
never block the one writer) with a busy timeout, and every read-modify-write runs inside
``BEGIN IMMEDIATE``: the write lock is taken before the first read, so two writers cannot both
read the same state and then both act on it. Connections are per thread (sqlite3 objects are
not shareable across threads) and per process (a forked child must not reuse its parent's).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

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
from functions.core.registry.rules import check_alias_target, check_alias_traffic, moved_alias

# Long enough to ride out another process's publish; a registry write is milliseconds.
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    model TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    artifact_uri TEXT NOT NULL,
    manifest TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    endpoint_name TEXT NOT NULL,
    variant_name TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (model, version),
    UNIQUE (model, sha256)
);
CREATE TABLE IF NOT EXISTS aliases (
    model TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    canary_version INTEGER,
    canary_weight INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    shadow_version INTEGER,
    shadow_percent INTEGER NOT NULL DEFAULT 0,
    capture_percent INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (model, alias)
);
CREATE TABLE IF NOT EXISTS pending_moves (
    model TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    canary_version INTEGER,
    canary_weight INTEGER NOT NULL,
    actor TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    PRIMARY KEY (model, alias)
);
CREATE TABLE IF NOT EXISTS alias_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    alias TEXT NOT NULL,
    seq INTEGER NOT NULL,
    action TEXT NOT NULL,
    from_version INTEGER,
    from_canary_version INTEGER,
    from_canary_weight INTEGER NOT NULL,
    to_version INTEGER NOT NULL,
    to_canary_version INTEGER,
    to_canary_weight INTEGER NOT NULL,
    actor TEXT NOT NULL,
    at TEXT NOT NULL,
    from_shadow_version INTEGER,
    from_shadow_percent INTEGER NOT NULL DEFAULT 0,
    from_capture_percent INTEGER NOT NULL DEFAULT 0,
    to_shadow_version INTEGER,
    to_shadow_percent INTEGER NOT NULL DEFAULT 0,
    to_capture_percent INTEGER NOT NULL DEFAULT 0,
    UNIQUE (model, alias, seq)
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    decision TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    models TEXT NOT NULL,
    admin INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    tenant TEXT NOT NULL,
    revoked_at TEXT,
    rotated_at TEXT,
    last_used_at TEXT,
    apigw_key_id TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    target TEXT NOT NULL,
    version INTEGER,
    input_uri TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    records INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    output_uri TEXT,
    errors_uri TEXT,
    reason TEXT,
    extra TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_model ON jobs (model, created_at);
"""

_VERSION_COLUMNS = (
    "model, version, sha256, artifact_uri, manifest, created_at, created_by, "
    "endpoint_name, variant_name, status"
)
_ALIAS_COLUMNS = (
    "model, alias, version, canary_version, canary_weight, updated_at, updated_by, "
    "shadow_version, shadow_percent, capture_percent"
)
# Columns added after the first release: a registry file made before them gets them on open.
_ADDED_COLUMNS = (
    ("aliases", "shadow_version INTEGER"),
    ("aliases", "shadow_percent INTEGER NOT NULL DEFAULT 0"),
    ("aliases", "capture_percent INTEGER NOT NULL DEFAULT 0"),
    ("alias_events", "from_shadow_version INTEGER"),
    ("alias_events", "from_shadow_percent INTEGER NOT NULL DEFAULT 0"),
    ("alias_events", "from_capture_percent INTEGER NOT NULL DEFAULT 0"),
    ("alias_events", "to_shadow_version INTEGER"),
    ("alias_events", "to_shadow_percent INTEGER NOT NULL DEFAULT 0"),
    ("alias_events", "to_capture_percent INTEGER NOT NULL DEFAULT 0"),
)
_DECISION_COLUMNS = "model, version, decision, actor, reason, at"
_EVENT_COLUMNS = (
    "model, alias, seq, action, from_version, from_canary_version, from_canary_weight, "
    "to_version, to_canary_version, to_canary_weight, actor, at, "
    "from_shadow_version, from_shadow_percent, from_capture_percent, "
    "to_shadow_version, to_shadow_percent, to_capture_percent"
)
_KEY_COLUMNS = (
    "key_id, name, secret_hash, models, admin, created_at, tenant, revoked_at, rotated_at, "
    "last_used_at, apigw_key_id"
)
_JOB_COLUMNS = (
    "job_id, model, target, version, input_uri, status, created_at, updated_at, records, ok, "
    "errors, output_uri, errors_uri, reason, extra"
)


class SqliteRegistry:
    def __init__(self, *, path: Path) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._use_wal(self._conn())
        # executescript() would commit on its own; one statement at a time stays inside the lock.
        with self._write() as tx:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    tx.execute(statement)
            for table, column in _ADDED_COLUMNS:
                present = {row[1] for row in tx.execute(f"PRAGMA table_info({table})")}
                if column.split()[0] not in present:
                    tx.execute(f"ALTER TABLE {table} ADD COLUMN {column}")

    @staticmethod
    def _use_wal(conn: sqlite3.Connection) -> None:
        # Persistent on the file, so only the first opener switches it. Switching needs the
        # file to itself and, unlike every other statement, does not wait on the busy
        # timeout: connections opening a new file at once would get "database is locked".
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        pause = 0.005
        while True:
            try:
                # Answers the mode in force, which stays the old one if the switch lost a race.
                if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                    return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError("switching to WAL: database is locked")
            time.sleep(pause)
            pause = min(pause * 2, 0.2)

    @property
    def path(self) -> Path:
        return self._path

    # Connections ----------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            # isolation_level=None: no implicit transactions; writes open their own below.
            conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            # WAL + NORMAL stays consistent after a crash; only the last commit may be lost
            # on power failure, which a laptop registry can live with.
            conn.execute("PRAGMA synchronous=NORMAL")
            local.conn = conn
            local.pid = os.getpid()
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # Also after a failed COMMIT: never leave this thread's connection mid-transaction.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._conn().execute(sql, params).fetchone()
        return row

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self._conn().execute(sql, params).fetchall()

    # Versions -------------------------------------------------------------------------
    def next_version(self, *, model: str) -> int:
        with self._write() as tx:
            row = tx.execute(
                "INSERT INTO counters (model, last) VALUES (?, 1) "
                "ON CONFLICT (model) DO UPDATE SET last = last + 1 RETURNING last",
                (model,),
            ).fetchone()
        return int(row[0])

    def register_version(self, *, version: ModelVersion) -> ModelVersion:
        v = version
        with self._write() as tx:
            if tx.execute(
                "SELECT 1 FROM versions WHERE model = ? AND version = ?", (v.model, v.version)
            ).fetchone():
                raise VersionExists(f"{v.model} version {v.version} is already registered")
            dup = tx.execute(
                f"SELECT {_VERSION_COLUMNS} FROM versions WHERE model = ? AND sha256 = ?",
                (v.model, v.sha256),
            ).fetchone()
            if dup is not None:
                existing = _version(dup)
                raise DuplicateArtifact(
                    f"this model file is already registered as {v.model} version "
                    f"{existing.version}",
                    existing=existing,
                )
            tx.execute(
                f"INSERT INTO versions ({_VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    v.model,
                    v.version,
                    v.sha256,
                    v.artifact_uri,
                    json.dumps(v.manifest),
                    v.created_at,
                    v.created_by,
                    v.endpoint_name,
                    v.variant_name,
                    v.status,
                ),
            )
            # A number registered without next_version must still never be handed out again.
            tx.execute(
                "INSERT INTO counters (model, last) VALUES (?, ?) "
                "ON CONFLICT (model) DO UPDATE SET last = max(last, excluded.last)",
                (v.model, v.version),
            )
        return v

    def get_version(self, *, model: str, version: int) -> ModelVersion:
        self._check_number(model=model, version=version)
        row = self._one(
            f"SELECT {_VERSION_COLUMNS} FROM versions WHERE model = ? AND version = ?",
            (model, version),
        )
        if row is None:
            self._require_model(model)
            raise VersionNotFound(f"model {model!r} has no version {version}")
        return _version(row)

    def find_by_sha256(self, *, model: str, sha256: str) -> ModelVersion | None:
        row = self._one(
            f"SELECT {_VERSION_COLUMNS} FROM versions WHERE model = ? AND sha256 = ?",
            (model, sha256),
        )
        return None if row is None else _version(row)

    def list_models(self) -> list[str]:
        return [r[0] for r in self._all("SELECT DISTINCT model FROM versions ORDER BY model")]

    def list_versions(self, *, model: str) -> list[ModelVersion]:
        rows = self._all(
            f"SELECT {_VERSION_COLUMNS} FROM versions WHERE model = ? ORDER BY version", (model,)
        )
        if not rows:
            raise ModelNotFound(f"unknown model {model!r}")
        return [_version(r) for r in rows]

    def retire_version(self, *, model: str, version: int, actor: str) -> ModelVersion:
        self._check_number(model=model, version=version)
        with self._write() as tx:
            row = tx.execute(
                f"SELECT {_VERSION_COLUMNS} FROM versions WHERE model = ? AND version = ?",
                (model, version),
            ).fetchone()
            if row is None:
                self._require_model(model, tx)
                raise VersionNotFound(f"model {model!r} has no version {version}")
            users = [
                r[0]
                for r in tx.execute(
                    "SELECT alias FROM aliases WHERE model = ? "
                    "AND (version = ? OR canary_version = ?) ORDER BY alias",
                    (model, version, version),
                )
            ]
            if users:
                raise VersionInUse(
                    f"{model} version {version} is in use by alias(es) {', '.join(users)}; "
                    "move them first"
                )
            tx.execute(
                "UPDATE versions SET status = 'retired' WHERE model = ? AND version = ?",
                (model, version),
            )
        return replace(_version(row), status="retired")

    def _check_number(self, *, model: str, version: int) -> None:
        """A number no version can have (past 64 bits, say) is simply not found."""
        if not is_version_number(version):
            self._require_model(model)
            raise VersionNotFound(f"model {model!r} has no version {version}")

    def _require_model(self, model: str, conn: sqlite3.Connection | None = None) -> None:
        conn = conn or self._conn()
        if conn.execute("SELECT 1 FROM versions WHERE model = ? LIMIT 1", (model,)).fetchone():
            return
        raise ModelNotFound(f"unknown model {model!r}")

    # Aliases --------------------------------------------------------------------------
    def get_alias(self, *, model: str, alias: str) -> Alias:
        row = self._one(
            f"SELECT {_ALIAS_COLUMNS} FROM aliases WHERE model = ? AND alias = ?", (model, alias)
        )
        if row is None:
            raise AliasNotFound(f"model {model!r} has no alias {alias!r}")
        return _alias(row)

    def list_aliases(self, *, model: str) -> list[Alias]:
        rows = self._all(
            f"SELECT {_ALIAS_COLUMNS} FROM aliases WHERE model = ? ORDER BY alias", (model,)
        )
        return [_alias(r) for r in rows]

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
            f"SELECT {_ALIAS_COLUMNS} FROM aliases WHERE model = ? AND alias = ?", (model, alias)
        ).fetchone()
        before = _alias(current) if current is not None else None
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
                f"SELECT {_ALIAS_COLUMNS} FROM aliases WHERE model = ? AND alias = ?",
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
            before = _alias(current)
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
            f"INSERT OR REPLACE INTO aliases ({_ALIAS_COLUMNS}) "
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
            f"INSERT INTO alias_events ({_EVENT_COLUMNS}) "
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
                f"SELECT {_EVENT_COLUMNS} FROM alias_events WHERE model = ? ORDER BY id", (model,)
            )
        else:
            rows = self._all(
                f"SELECT {_EVENT_COLUMNS} FROM alias_events WHERE model = ? AND alias = ? "
                "ORDER BY seq",
                (model, alias),
            )
        return [AliasEvent(**dict(r)) for r in rows]

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
                f"INSERT INTO decisions ({_DECISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
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
                f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE model = ? ORDER BY id", (model,)
            )
        else:
            rows = self._all(
                f"SELECT {_DECISION_COLUMNS} FROM decisions WHERE model = ? AND version = ? "
                "ORDER BY id",
                (model, version),
            )
        return [Decision(**dict(r)) for r in rows]

    # Keys -----------------------------------------------------------------------------
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

    def create_key(self, *, key: ApiKey) -> ApiKey:
        with self._write() as tx:
            try:
                tx.execute(
                    f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES ({_marks(11)})",
                    _key_row(key),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"key {key.key_id} already exists", code="key_exists") from exc
        return key

    def get_key(self, *, key_id: str) -> ApiKey:
        row = self._one(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,))
        if row is None:
            raise KeyNotFound(f"unknown key {key_id!r}")
        return _key(row)

    def find_key_by_hash(self, *, secret_hash: str) -> ApiKey | None:
        row = self._one(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE secret_hash = ?", (secret_hash,)
        )
        return None if row is None else _key(row)

    def list_keys(self) -> list[ApiKey]:
        rows = self._all(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id")
        return [_key(r) for r in rows]

    def revoke_key(self, *, key_id: str) -> ApiKey:
        with self._write() as tx:
            # coalesce: revoking twice keeps the first revocation time.
            tx.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE key_id = ?",
                (utc_now(), key_id),
            )
            row = tx.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
            if row is None:
                raise KeyNotFound(f"unknown key {key_id!r}")
        return _key(row)

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
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
            if row is None:
                raise KeyNotFound(f"unknown key {key_id!r}")
            if cursor.rowcount == 0:
                key = _key(row)
                if not key.active:
                    raise Conflict(
                        f"key {key_id} is revoked; create a new key instead", code="key_revoked"
                    )
                raise Conflict(
                    f"key {key_id} changed while it was being updated; try again",
                    code="key_changed",
                )
        return _key(row)

    def set_apigw_key_id(
        self, *, key_id: str, apigw_key_id: str | None, expected: str | None
    ) -> ApiKey:
        with self._write() as tx:
            cursor = tx.execute(
                "UPDATE api_keys SET apigw_key_id = ? WHERE key_id = ? AND apigw_key_id IS ?",
                (apigw_key_id, key_id, expected),
            )
            row = tx.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
            if row is None:
                raise KeyNotFound(f"unknown key {key_id!r}")
            if cursor.rowcount == 0:
                raise Conflict(
                    f"key {key_id} changed while it was being updated; try again",
                    code="key_changed",
                )
        return _key(row)

    def touch_key(self, *, key_id: str, at: str) -> None:
        # Best effort: a busy registry must not fail the request that used the key.
        try:
            with self._write() as tx:
                tx.execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (at, key_id))
        except sqlite3.OperationalError:
            pass

    # Jobs -----------------------------------------------------------------------------
    def create_job(self, *, job: Job) -> tuple[Job, bool]:
        with self._write() as tx:
            cursor = tx.execute(
                f"INSERT OR IGNORE INTO jobs ({_JOB_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _job_row(job),
            )
            if cursor.rowcount == 1:
                return job, True
            row = tx.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job.job_id,)
            ).fetchone()
        return _job(row), False

    def update_job(self, *, job: Job, expected_updated_at: str | None = None) -> Job:
        with self._write() as tx:
            if expected_updated_at is not None:
                # Read and write under the one write lock: no writer can come in between.
                row = tx.execute(
                    "SELECT updated_at FROM jobs WHERE job_id = ?", (job.job_id,)
                ).fetchone()
                if row is None:
                    raise JobNotFound(f"unknown job {job.job_id!r}")
                if row["updated_at"] != expected_updated_at:
                    raise JobChanged(
                        f"job {job.job_id!r} changed at {row['updated_at']}, "
                        f"after the read of {expected_updated_at}"
                    )
            values = _job_row(job)
            cursor = tx.execute(
                "UPDATE jobs SET model = ?, target = ?, version = ?, input_uri = ?, status = ?, "
                "created_at = ?, updated_at = ?, records = ?, ok = ?, errors = ?, output_uri = ?, "
                "errors_uri = ?, reason = ?, extra = ? WHERE job_id = ?",
                (*values[1:], job.job_id),
            )
            if cursor.rowcount == 0:
                raise JobNotFound(f"unknown job {job.job_id!r}")
        return job

    def get_job(self, *, job_id: str) -> Job:
        row = self._one(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,))
        if row is None:
            raise JobNotFound(f"unknown job {job_id!r}")
        return _job(row)

    def list_jobs(self, *, model: str | None = None, limit: int = 100) -> list[Job]:
        if model is None:
            rows = self._all(
                f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY created_at DESC, job_id DESC LIMIT ?",
                (limit,),
            )
        else:
            rows = self._all(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE model = ? "
                "ORDER BY created_at DESC, job_id DESC LIMIT ?",
                (model, limit),
            )
        return [_job(r) for r in rows]


# Row <-> dataclass ---------------------------------------------------------------------------
def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _version(row: sqlite3.Row) -> ModelVersion:
    data = dict(row)
    data["manifest"] = json.loads(data["manifest"])
    return ModelVersion(**data)


def _alias(row: sqlite3.Row) -> Alias:
    return Alias(**dict(row))


def _key_row(key: ApiKey) -> tuple[Any, ...]:
    return (
        key.key_id,
        key.name,
        key.secret_hash,
        json.dumps(list(key.models)),
        int(key.admin),
        key.created_at,
        key.tenant,
        key.revoked_at,
        key.rotated_at,
        key.last_used_at,
        key.apigw_key_id,
    )


def _key(row: sqlite3.Row) -> ApiKey:
    data = dict(row)
    data["models"] = tuple(json.loads(data["models"]))
    data["admin"] = bool(data["admin"])
    return ApiKey(**data)


def _job_row(job: Job) -> tuple[Any, ...]:
    return (
        job.job_id,
        job.model,
        job.target,
        job.version,
        job.input_uri,
        job.status,
        job.created_at,
        job.updated_at,
        job.records,
        job.ok,
        job.errors,
        job.output_uri,
        job.errors_uri,
        job.reason,
        json.dumps(job.extra),
    )


def _job(row: sqlite3.Row) -> Job:
    data = dict(row)
    data["extra"] = json.loads(data["extra"])
    return Job(**data)
