"""What only the SQLite registry has to prove: one file shared safely by threads and
processes. (Behaviour common to both backends is in tests/contract.)"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from functions.core.registry.base import ModelVersion
from functions.core.registry.sqlite import SqliteRegistry

ROOT = Path(__file__).resolve().parents[2]


def version(model: str, n: int) -> ModelVersion:
    return ModelVersion(
        model=model,
        version=n,
        sha256=f"{n:064x}",
        artifact_uri=f"file:///a/{model}/{n}/model.tar.gz",
        manifest={"name": model, "version": n},
        created_at="2025-01-01T00:00:00.000Z",
        created_by="t",
        endpoint_name=f"modelway-local-{model}",
        variant_name=f"v{n}",
    )


def test_the_file_is_in_wal_mode_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "registry.db"
    SqliteRegistry(path=path).register_version(version=version("m", 1))

    assert SqliteRegistry(path=path).get_version(model="m", version=1).manifest["version"] == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_many_openers_of_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    # Workers starting together on a fresh home race to create the file and switch it to WAL;
    # the switch does not wait on the busy timeout, so before it was retried about one round
    # in thirty ended in "database is locked".
    for round_ in range(60):
        path = tmp_path / f"r{round_}.db"
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def open_it(
            path: Path = path,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            barrier.wait()
            try:
                SqliteRegistry(path=path).next_version(model="m")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert not errors, f"round {round_}: {errors}"
        assert SqliteRegistry(path=path).next_version(model="m") == 9


def test_threads_sharing_one_registry_reserve_distinct_numbers(tmp_path: Path) -> None:
    registry = SqliteRegistry(path=tmp_path / "r.db")
    barrier = threading.Barrier(8)
    numbers: list[int] = []
    lock = threading.Lock()

    def reserve() -> None:
        barrier.wait()
        mine = [registry.next_version(model="m") for _ in range(25)]
        with lock:
            numbers.extend(mine)

    threads = [threading.Thread(target=reserve) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(numbers) == list(range(1, 201))


_RESERVER = """
import json, sys, time
from pathlib import Path
from functions.core.registry.sqlite import SqliteRegistry
registry = SqliteRegistry(path=Path(sys.argv[1]))
go = Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
print(json.dumps([registry.next_version(model="m") for _ in range(40)]), flush=True)
"""


def test_processes_sharing_the_file_reserve_distinct_numbers(tmp_path: Path) -> None:
    db, go = tmp_path / "r.db", tmp_path / "go"
    SqliteRegistry(path=db)  # schema in place before the race
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RESERVER, str(db), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    numbers: list[int] = []
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        go.touch()
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            numbers.extend(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()

    assert sorted(numbers) == list(range(1, 161))


def test_a_registry_object_used_after_fork_opens_its_own_connection(tmp_path: Path) -> None:
    """A child process must not reuse its parent's sqlite connection."""
    import multiprocessing

    registry = SqliteRegistry(path=tmp_path / "r.db")
    registry.next_version(model="m")  # the parent's connection now exists

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_reserve_into, args=(registry, queue))
    child.start()
    child.join(timeout=60)

    assert child.exitcode == 0
    assert queue.get(timeout=5) == 2
    assert registry.next_version(model="m") == 3


def _reserve_into(registry: SqliteRegistry, queue: object) -> None:
    queue.put(registry.next_version(model="m"))  # type: ignore[attr-defined]


def test_a_registry_file_from_before_shadow_settings_gains_them_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE aliases (model TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER "
            "NOT NULL, canary_version INTEGER, canary_weight INTEGER NOT NULL, updated_at TEXT "
            "NOT NULL, updated_by TEXT NOT NULL, PRIMARY KEY (model, alias))"
        )
        conn.execute(
            "INSERT INTO aliases VALUES ('digits', 'default', 1, NULL, 0, '2026-01-01', 'ann')"
        )
    registry = SqliteRegistry(path=path)
    alias = registry.get_alias(model="digits", alias="default")
    assert (alias.version, alias.shadow_version, alias.shadow_percent, alias.capture_percent) == (
        1,
        None,
        0,
        0,
    )
    registry.close()
