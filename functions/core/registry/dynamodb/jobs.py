"""Batch jobs in the DynamoDB registry.

- create = transaction Put job (``attribute_not_exists``) + Put feed entry; a cancelled
  job put returns the existing job.
- update = ``PutItem`` (``attribute_exists``); given the ``updated_at`` the caller read, also
  ``updated_at = :expected`` (compare-and-set: of two deliveries taking over one job, exactly
  one wins; the loser's failed condition returns the item, ``ALL_OLD``, telling ``JobChanged``
  from ``JobNotFound``).
- list_jobs(model) = ``Query gsi1 (gsi1pk = JOBS#{model})`` newest first; list_jobs() =
  ``Query pk = JOBS`` newest first, then ``BatchGetItem``.
"""

from __future__ import annotations

from typing import Any

from functions.core.exceptions import Conflict
from functions.core.registry.base import Job
from functions.core.registry.dynamodb.items import (
    Item,
    item_key,
    job_from,
    job_item,
    job_pk,
    read_str,
    str_value,
)
from functions.core.registry.dynamodb.table import Table
from functions.core.registry.exceptions import JobChanged, JobNotFound


class JobsPart(Table):
    """Batch jobs: created once, updated by compare-and-set, listed newest first."""

    def create_job(self, *, job: Job) -> tuple[Job, bool]:
        reasons = self._transact(
            [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": job_item(job),
                        "ConditionExpression": "attribute_not_exists(pk)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            **item_key("JOBS", f"{job.created_at}#{job.job_id}"),
                            "job_id": str_value(job.job_id),
                        },
                    }
                },
            ]
        )
        if reasons is None:
            return job, True
        existing = reasons[0].get("Item") or self._get(job_pk(job.job_id), "JOB")
        if not existing:
            raise Conflict(f"could not record job {job.job_id}: {reasons}")
        return job_from(existing), False

    def update_job(self, *, job: Job, expected_updated_at: str | None = None) -> Job:
        from botocore.exceptions import ClientError

        condition = "attribute_exists(pk)"
        values: dict[str, Any] = {}
        if expected_updated_at is not None:
            condition += " AND updated_at = :expected"
            values[":expected"] = str_value(expected_updated_at)
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=job_item(job),
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            # Which condition failed: the item (if any) comes back with the error.
            returned: Any = exc.response.get("Item")
            old: Item | None = returned or self._get(job_pk(job.job_id), "JOB")
            if not old:
                raise JobNotFound(f"unknown job {job.job_id!r}") from exc
            raise JobChanged(
                f"job {job.job_id!r} changed at {read_str(old, 'updated_at')}, "
                f"after the read of {expected_updated_at}"
            ) from exc
        return job

    def get_job(self, *, job_id: str) -> Job:
        item = self._get(job_pk(job_id), "JOB")
        if item is None:
            raise JobNotFound(f"unknown job {job_id!r}")
        return job_from(item)

    def list_jobs(self, *, model: str | None = None, limit: int = 100) -> list[Job]:
        if limit <= 0:
            return []
        if model is not None:
            jobs = [
                job_from(i) for i in self._query_gsi1(f"JOBS#{model}", forward=False, limit=limit)
            ]
        else:
            feed = self._query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": str_value("JOBS")},
                ScanIndexForward=False,
                PaginationConfig={"MaxItems": limit},
            )
            ids = [read_str(i, "job_id") for i in feed]
            jobs = [job_from(i) for i in self._batch_get([item_key(job_pk(j), "JOB") for j in ids])]
        jobs.sort(key=lambda j: (j.created_at, j.job_id), reverse=True)
        return jobs[:limit]
