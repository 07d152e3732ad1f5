"""Batch jobs in the SQLite registry: created once (``INSERT OR IGNORE``), updated by
compare-and-set on ``updated_at`` under the write lock, listed newest first."""

from __future__ import annotations

from functions.core.registry.base import Job
from functions.core.registry.exceptions import JobChanged, JobNotFound
from functions.core.registry.sqlite.connection import Database
from functions.core.registry.sqlite.tables import JOB_COLUMNS, job_from, job_values


class JobsPart(Database):
    """Batch jobs: created once, updated by compare-and-set, listed newest first."""

    def create_job(self, *, job: Job) -> tuple[Job, bool]:
        with self._write() as tx:
            cursor = tx.execute(
                f"INSERT OR IGNORE INTO jobs ({JOB_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                job_values(job),
            )
            if cursor.rowcount == 1:
                return job, True
            row = tx.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job.job_id,)
            ).fetchone()
        return job_from(row), False

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
            values = job_values(job)
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
        row = self._one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,))
        if row is None:
            raise JobNotFound(f"unknown job {job_id!r}")
        return job_from(row)

    def list_jobs(self, *, model: str | None = None, limit: int = 100) -> list[Job]:
        if model is None:
            rows = self._all(
                f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at DESC, job_id DESC LIMIT ?",
                (limit,),
            )
        else:
            rows = self._all(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE model = ? "
                "ORDER BY created_at DESC, job_id DESC LIMIT ?",
                (model, limit),
            )
        return [job_from(r) for r in rows]
