"""Versions in the SQLite registry: numbered per model (a counter row), unique per artifact
(``UNIQUE (model, sha256)``), retired only when no alias or canary points at them."""

from __future__ import annotations

import json
from dataclasses import replace

from functions.core.naming import is_version_number
from functions.core.registry.base import ModelVersion
from functions.core.registry.exceptions import (
    DuplicateArtifact,
    ModelNotFound,
    VersionExists,
    VersionInUse,
    VersionNotFound,
)
from functions.core.registry.sqlite.connection import Database
from functions.core.registry.sqlite.tables import VERSION_COLUMNS, version_from


class VersionsPart(Database):
    """Model versions: numbered, registered once, retired when unused."""

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
                f"SELECT {VERSION_COLUMNS} FROM versions WHERE model = ? AND sha256 = ?",
                (v.model, v.sha256),
            ).fetchone()
            if dup is not None:
                existing = version_from(dup)
                raise DuplicateArtifact(
                    f"this model file is already registered as {v.model} version "
                    f"{existing.version}",
                    existing=existing,
                )
            tx.execute(
                f"INSERT INTO versions ({VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE model = ? AND version = ?",
            (model, version),
        )
        if row is None:
            self._require_model(model)
            raise VersionNotFound(f"model {model!r} has no version {version}")
        return version_from(row)

    def find_by_sha256(self, *, model: str, sha256: str) -> ModelVersion | None:
        row = self._one(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE model = ? AND sha256 = ?",
            (model, sha256),
        )
        return None if row is None else version_from(row)

    def list_models(self) -> list[str]:
        return [r[0] for r in self._all("SELECT DISTINCT model FROM versions ORDER BY model")]

    def list_versions(self, *, model: str) -> list[ModelVersion]:
        rows = self._all(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE model = ? ORDER BY version", (model,)
        )
        if not rows:
            raise ModelNotFound(f"unknown model {model!r}")
        return [version_from(r) for r in rows]

    def retire_version(self, *, model: str, version: int, actor: str) -> ModelVersion:
        self._check_number(model=model, version=version)
        with self._write() as tx:
            row = tx.execute(
                f"SELECT {VERSION_COLUMNS} FROM versions WHERE model = ? AND version = ?",
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
        return replace(version_from(row), status="retired")

    def _check_number(self, *, model: str, version: int) -> None:
        """A number no version can have (past 64 bits, say) is simply not found."""
        if not is_version_number(version):
            self._require_model(model)
            raise VersionNotFound(f"model {model!r} has no version {version}")
