"""S3 notifications in, object references out; the ``inputs/`` key layout; job identity.

S3 sends ``{"Records": [...]}`` with one record per created object (usually one, but the
format allows several), keys URL-encoded the way HTML forms are (``+`` for a space), and a
``versionId`` only when the bucket is versioned. Delivery is at least once: the same record
may arrive twice, which is why a job's id is derived from the object version it scores.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from functions.core.clock import utc_now
from functions.core.exceptions import InvalidRequest
from functions.core.naming import is_alias_name, is_model_name, is_version_number

INPUTS_PREFIX = "inputs/"
OUTPUTS_PREFIX = "outputs/"
# The marker the batch function puts on the events it sends itself to continue a job.
CONTINUATION_SOURCE = "modelway.batch"
# S3's limit on a key; an input key must leave room for its result key (a longer prefix, the
# job id and a suffix), or the job could read its input and never write its result.
S3_MAX_KEY_BYTES = 1024
MAX_INPUT_KEY_BYTES = S3_MAX_KEY_BYTES - 128


class InvalidInputKey(InvalidRequest):
    """The key does not follow ``inputs/{model}/{alias-or-version}/{name}``."""

    code = "invalid_input_key"

    def __init__(self, message: str, *, model: str | None = None) -> None:
        super().__init__(message)
        self.model = model


@dataclass(frozen=True)
class ObjectRef:
    """One created object, as the notification describes it."""

    bucket: str
    key: str  # decoded
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    sequencer: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "etag": self.etag,
            "size": self.size,
            "sequencer": self.sequencer,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectRef:
        return cls(
            bucket=str(data["bucket"]),
            key=str(data["key"]),
            version_id=data.get("version_id"),
            etag=data.get("etag"),
            size=data.get("size"),
            sequencer=data.get("sequencer"),
        )


@dataclass(frozen=True)
class InputTarget:
    """What ``inputs/{model}/{target}/{name}`` asks for."""

    model: str
    target: str  # the segment as written: "default", "3", "v3"
    version: int | None  # set when the segment names a version
    alias: str | None  # set when it names an alias
    name: str  # the rest of the key; may hold "/" (sub-folders are kept in the output path)


def parse_notification(event: dict[str, Any]) -> list[ObjectRef]:
    """The created objects an S3 notification names, in order.

    Anything else is skipped: ``s3:TestEvent`` (sent when a notification is configured, no
    ``Records``), non-create events, and "folder" markers (keys ending in ``/``).
    """
    refs = []
    for record in event.get("Records") or []:
        if record.get("eventSource") != "aws:s3":
            continue
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record.get("s3") or {}
        obj = s3.get("object") or {}
        key = unquote_plus(str(obj.get("key", "")))
        if not key or key.endswith("/"):
            continue
        version_id = obj.get("versionId")
        refs.append(
            ObjectRef(
                bucket=str((s3.get("bucket") or {}).get("name", "")),
                key=key,
                # "null" is the version id of objects written while versioning was off or
                # suspended: it names no single upload, so it cannot key a job.
                version_id=version_id if version_id not in (None, "", "null") else None,
                etag=(str(obj["eTag"]).strip('"') or None) if obj.get("eTag") else None,
                size=int(obj["size"]) if obj.get("size") is not None else None,
                sequencer=obj.get("sequencer") or None,
            )
        )
    return refs


def parse_input_key(key: str) -> InputTarget:
    """``inputs/{model}/{alias-or-version}/{name}``: a segment of digits (``3``) or ``v`` and
    digits (``v3``) names a version, anything else an alias."""
    if not key.startswith(INPUTS_PREFIX):
        raise InvalidInputKey(f"key {key!r} is not under {INPUTS_PREFIX}")
    parts = key[len(INPUTS_PREFIX) :].split("/", 2)
    model = parts[0]
    if not is_model_name(model):
        raise InvalidInputKey(f"key {key!r} does not name a model after {INPUTS_PREFIX}")
    if len(parts) < 3 or not parts[1] or not parts[2]:
        raise InvalidInputKey(
            f"key {key!r} must be inputs/{{model}}/{{alias-or-version}}/{{name}}", model=model
        )
    target, name = parts[1], parts[2]
    if any(segment in ("", ".", "..") for segment in name.split("/")) or "\\" in name:
        # S3 stores such a key, but no result can be written beside it on every backend (the
        # directory store has no empty or relative path segments): it can never be scored.
        raise InvalidInputKey(
            f"key {key!r} has an empty, '.' or '..' path segment; rename the file", model=model
        )
    if len(key.encode()) > MAX_INPUT_KEY_BYTES:
        raise InvalidInputKey(
            f"key {key!r} is longer than {MAX_INPUT_KEY_BYTES} bytes: its result key would be "
            f"over S3's {S3_MAX_KEY_BYTES}; use a shorter name",
            model=model,
        )
    digits = target[1:] if target[:1] == "v" else target
    if digits.isascii() and digits.isdigit():
        # Past 20 digits it is no version (and past 4300, int() would refuse the string).
        version = int(digits) if len(digits) <= 20 else 0
        if not is_version_number(version):
            raise InvalidInputKey(f"version {target!r} in key {key!r} is not valid", model=model)
        return InputTarget(model=model, target=target, version=version, alias=None, name=name)
    if not is_alias_name(target):
        raise InvalidInputKey(f"{target!r} in key {key!r} is no alias or version", model=model)
    return InputTarget(model=model, target=target, version=None, alias=target, name=name)


def job_id_for(ref: ObjectRef) -> str:
    """The same object version always gets the same job id; another upload gets another.

    A versioned bucket gives every upload its own ``versionId``. An unversioned one does not,
    so the ETag (the content) and the ``sequencer`` (which orders PUTs of a key, and which a
    redelivered event repeats) stand in for it.
    """
    identity = ref.version_id or f"{ref.etag or ''}#{ref.sequencer or ''}"
    digest = hashlib.sha256(f"{ref.bucket}\n{ref.key}\n{identity}".encode()).hexdigest()
    return "job_" + digest[:24]


def s3_put_event(
    *,
    bucket: str,
    key: str,
    size: int,
    etag: str,
    sequencer: str,
    version_id: str | None = None,
    region: str = "us-east-1",
    event_time: str | None = None,
) -> dict[str, Any]:
    """An ``ObjectCreated:Put`` notification as S3 sends it (one record).

    Used to drive the same handler locally (``modelway batch submit``, the inputs watcher);
    ``events/s3-put.json`` has the same shape.
    """
    obj: dict[str, Any] = {
        "key": quote_plus(key, safe="/"),
        "size": size,
        "eTag": etag,
        "sequencer": sequencer,
    }
    if version_id is not None:
        obj["versionId"] = version_id
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": event_time or utc_now(),
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:LOCAL"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {
                    "x-amz-request-id": sequencer[:16],
                    "x-amz-id-2": "local",
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "modelway-batch-inputs",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "LOCAL"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": obj,
                },
            }
        ]
    }


def continuation_event(*, ref: ObjectRef, job_id: str, slice_index: int) -> dict[str, Any]:
    """The event the function sends itself to go on with a job in a fresh invocation."""
    return {
        "source": CONTINUATION_SOURCE,
        "detail-type": "continue-job",
        "job_id": job_id,
        "slice": slice_index,
        "object": ref.to_dict(),
    }


def is_continuation(event: dict[str, Any]) -> bool:
    return event.get("source") == CONTINUATION_SOURCE and "job_id" in event


def remaining_records_event(event: dict[str, Any], *, refs: list[ObjectRef]) -> dict[str, Any]:
    """A notification holding only the records for ``refs`` (the ones not reached in time)."""
    keys = {(r.bucket, r.key) for r in refs}
    records = [
        rec
        for rec in event.get("Records") or []
        if (
            str(((rec.get("s3") or {}).get("bucket") or {}).get("name", "")),
            unquote_plus(str(((rec.get("s3") or {}).get("object") or {}).get("key", ""))),
        )
        in keys
    ]
    return {"Records": records}
