"""The registry's tables in its SQLite file, and their codec (rows <-> dataclasses).

``SCHEMA`` creates the tables a new file needs; ``ADDED_COLUMNS`` brings a file made by an
older release up to date when it is opened. Manifests, a key's models and a job's ``extra``
are stored as JSON text.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from functions.core.registry.base import Alias, ApiKey, Job, ModelVersion

SCHEMA = """
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

VERSION_COLUMNS = (
    "model, version, sha256, artifact_uri, manifest, created_at, created_by, "
    "endpoint_name, variant_name, status"
)
ALIAS_COLUMNS = (
    "model, alias, version, canary_version, canary_weight, updated_at, updated_by, "
    "shadow_version, shadow_percent, capture_percent"
)
# Columns added after the first release: a registry file made before them gets them on open.
ADDED_COLUMNS = (
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
DECISION_COLUMNS = "model, version, decision, actor, reason, at"
EVENT_COLUMNS = (
    "model, alias, seq, action, from_version, from_canary_version, from_canary_weight, "
    "to_version, to_canary_version, to_canary_weight, actor, at, "
    "from_shadow_version, from_shadow_percent, from_capture_percent, "
    "to_shadow_version, to_shadow_percent, to_capture_percent"
)
KEY_COLUMNS = (
    "key_id, name, secret_hash, models, admin, created_at, tenant, revoked_at, rotated_at, "
    "last_used_at, apigw_key_id"
)
JOB_COLUMNS = (
    "job_id, model, target, version, input_uri, status, created_at, updated_at, records, ok, "
    "errors, output_uri, errors_uri, reason, extra"
)


def marks(n: int) -> str:
    return ", ".join("?" * n)


def version_from(row: sqlite3.Row) -> ModelVersion:
    data = dict(row)
    data["manifest"] = json.loads(data["manifest"])
    return ModelVersion(**data)


def alias_from(row: sqlite3.Row) -> Alias:
    return Alias(**dict(row))


def key_values(key: ApiKey) -> tuple[Any, ...]:
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


def key_from(row: sqlite3.Row) -> ApiKey:
    data = dict(row)
    data["models"] = tuple(json.loads(data["models"]))
    data["admin"] = bool(data["admin"])
    return ApiKey(**data)


def job_values(job: Job) -> tuple[Any, ...]:
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


def job_from(row: sqlite3.Row) -> Job:
    data = dict(row)
    data["extra"] = json.loads(data["extra"])
    return Job(**data)
