"""The registry's SQLite file, its connections, and the write transaction every part uses.

Several processes use the same file at once, so every connection runs in WAL mode (readers
never block the one writer) with a busy timeout, and every read-modify-write runs inside
``BEGIN IMMEDIATE``: the write lock is taken before the first read, so two writers cannot both
read the same state and then both act on it. Connections are per thread (sqlite3 objects are
not shareable across threads) and per process (a forked child must not reuse its parent's).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from functions.core.registry.exceptions import ModelNotFound
from functions.core.registry.sqlite.tables import ADDED_COLUMNS, SCHEMA

# Long enough to ride out another process's publish; a registry write is milliseconds.
BUSY_TIMEOUT_MS = 30_000


class Database:
    """The file, this thread's connection to it, and the calls every part of the registry
    makes (reads, a write under the write lock)."""

    def __init__(self, *, path: Path) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._use_wal(self._conn())
        # executescript() would commit on its own; one statement at a time stays inside the lock.
        with self._write() as tx:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    tx.execute(statement)
            for table, column in ADDED_COLUMNS:
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

    def _require_model(self, model: str, conn: sqlite3.Connection | None = None) -> None:
        conn = conn or self._conn()
        if conn.execute("SELECT 1 FROM versions WHERE model = ? LIMIT 1", (model,)).fetchone():
            return
        raise ModelNotFound(f"unknown model {model!r}")
