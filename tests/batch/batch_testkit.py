"""Test kit for batch scoring: a toy signature, a fake runtime client whose outputs are
computed from its inputs (so order and record numbers can be checked), fake Lambda contexts,
and a ``Stack`` that uploads inputs (local directory or S3 under moto) and runs events."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from functions.batch.deps import BatchDeps
from functions.batch.dispatch import handle_event
from functions.batch.events import s3_put_event
from functions.core.artifacts.exceptions import ObjectNotFound
from functions.core.clock import utc_now
from functions.core.exceptions import InvalidInput
from functions.core.registry.base import Job, ModelVersion
from functions.core.runtime.base import RuntimeResponse
from functions.core.settings import Settings
from tests.runtime_testkit import Call, FakeRuntime

MODEL = "toy"
PREFIX = "modelway-test"
# x: four numbers per sample; sum: their sum; first: x[0] (an INT64 output).
SIGNATURE = {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [
        {"name": "sum", "datatype": "FP32", "shape": [-1]},
        {"name": "first", "datatype": "INT64", "shape": [-1]},
    ],
}


def row(n: int) -> list[float]:
    """A distinct valid sample per record number: its sum identifies it."""
    return [float(n), 1.0, 2.0, 3.0]


def row_sum(n: int) -> float:
    return float(n) + 6.0


def jsonl(rows: list[Any]) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def rows_of(call: Call) -> list[list[float]]:
    """The ``x`` rows (four numbers each) a call sent."""
    (tensor,) = call.document["inputs"]
    data = tensor["data"]
    return [data[i * 4 : (i + 1) * 4] for i in range(tensor["shape"][0])]


def records_sent(runtime: FakeRuntime) -> int:
    return sum(len(rows_of(c)) for c in runtime.calls)


def toy_model(
    *, refuse: Callable[[list[float]], bool] = lambda r: False
) -> Callable[[Call], RuntimeResponse]:
    """The toy model's answer (``FakeRuntime(answer=toy_model())``): each row's sum and first
    number, from the endpoint and variant called; refuses (422) any batch holding a row
    ``refuse`` picks."""

    def answer(call: Call) -> RuntimeResponse:
        rows = rows_of(call)
        if any(refuse(r) for r in rows):
            raise InvalidInput("the model refuses 13")
        n = len(rows)
        response = {
            "model_name": call.endpoint,
            "model_version": (call.variant or "v0")[1:],
            "outputs": [
                {"name": "sum", "datatype": "FP32", "shape": [n], "data": [sum(r) for r in rows]},
                {
                    "name": "first",
                    "datatype": "INT64",
                    "shape": [n],
                    "data": [int(r[0]) for r in rows],
                },
            ],
        }
        return RuntimeResponse(
            body=json.dumps(response).encode(),
            content_type="application/json",
            variant=call.variant,
        )

    return answer


class FakeContext:
    """A Lambda context whose remaining time is scripted."""

    def __init__(self, remaining_ms: Callable[[], int] | int) -> None:
        self._remaining = remaining_ms if callable(remaining_ms) else (lambda: remaining_ms)
        self.aws_request_id = "req-1"
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:batch"

    def get_remaining_time_in_millis(self) -> int:
        return int(self._remaining())


def publish(registry: Any, *, version: int, model: str = MODEL, signature: Any = None) -> None:
    registry.register_version(
        version=ModelVersion(
            model=model,
            version=version,
            sha256=hashlib.sha256(f"{model}{version}".encode()).hexdigest(),
            artifact_uri=f"file:///artifacts/{model}/{version}/model.tar.gz",
            manifest={"name": model, "version": version, "signature": signature or SIGNATURE},
            created_at=utc_now(),
            created_by="test",
            endpoint_name=f"{PREFIX}-{model}",
            variant_name=f"v{version}",
        )
    )


@dataclass
class Stack:
    settings: Settings
    registry: Any
    store: Any
    runtime: FakeRuntime
    s3: Any = None  # a boto3 S3 client under moto (the AWS backend), else None
    sleeps: list[float] = field(default_factory=list)
    continued: list[dict[str, Any]] = field(default_factory=list)
    hand_on: bool = False  # record continuation events instead of going on in-process
    _sequence: int = 0

    @property
    def deps(self) -> BatchDeps:
        return BatchDeps(
            settings=self.settings,
            registry=self.registry,
            store=self.store,
            runtime=self.runtime,
            sleep=self.sleeps.append,
            continue_later=self.continued.append if self.hand_on else None,
        )

    def upload(self, key: str, body: bytes) -> dict[str, Any]:
        """Store ``body`` at ``key`` and return the notification S3 would send."""
        self._sequence += 1
        if self.s3 is not None:
            put = self.s3.put_object(Bucket=self.settings.bucket_name, Key=key, Body=body)
            return s3_put_event(
                bucket=self.settings.bucket_name,
                key=key,
                size=len(body),
                etag=put["ETag"].strip('"'),
                version_id=put.get("VersionId"),
                sequencer=f"{time.time_ns():020X}",
            )
        self.store.put_object(key=key, body=body)
        return s3_put_event(
            bucket=self.settings.bucket_name,
            key=key,
            size=len(body),
            etag=hashlib.md5(body).hexdigest(),
            sequencer=f"{self._sequence:020X}",
        )

    def run(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        return handle_event(event=event, context=context, deps=self.deps)

    def read(self, key: str) -> bytes | None:
        try:
            stream = self.store.open_object(key=key)
        except ObjectNotFound:
            return None
        try:
            return bytes(stream.read())
        finally:
            stream.close()

    def read_lines(self, key: str) -> list[dict[str, Any]] | None:
        body = self.read(key)
        if body is None:
            return None
        return [json.loads(line) for line in body.decode().splitlines()]

    def output(self, stem: str, *, version: int = 1, errors: bool = False) -> str:
        """The key of the one job's results (or error file) named ``stem`` under ``version``;
        results live under their job's id, so they are found by listing."""
        suffix = f"/{stem}.errors.jsonl" if errors else f"/{stem}.jsonl"
        return output_key(self.store, stem=stem, version=version, suffix=suffix)

    def jobs(self) -> list[Job]:
        return list(self.registry.list_jobs(model=MODEL))


def merge_events(*events: dict[str, Any]) -> dict[str, Any]:
    return {"Records": [r for e in events for r in e["Records"]]}


def output_key(store: Any, *, stem: str, version: int, suffix: str, model: str = MODEL) -> str:
    """``outputs/{model}/{version}/{job_id}/{stem}{suffix}`` for the single job that wrote one;
    a key that cannot exist when none did (so reading it finds nothing)."""
    prefix = f"outputs/{model}/{version}/"
    found = [
        key
        for key in store.list_objects(prefix=prefix)
        if key.endswith(suffix) and key[len(prefix) :].count("/") == 1 + stem.count("/")
    ]
    assert len(found) <= 1, f"several jobs wrote {stem}{suffix}: {found}"
    return found[0] if found else f"{prefix}no-job/{stem}{suffix}"
