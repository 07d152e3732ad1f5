"""Batch scoring of text (BYTES) models, JSON Lines strings and CSV text columns, scored by the
real model server (in process) running a real text graph; and hostile records that are each
one bad record, never a failed job. Local backend (the formats do not depend on it)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from functions.core.exceptions import InvalidInput
from functions.core.runtime.base import RuntimeResponse
from functions.core.settings import Settings
from serving.app import create_hosting_app
from serving.config import ServingConfig
from tests.batch.batch_testkit import Stack, output_key, publish
from tests.serving.serving_testkit import WORDS, words_onnx

SIGNATURE = {
    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1], "max_bytes": 64}],
    "outputs": [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "label_id", "datatype": "INT64", "shape": [-1]},
    ],
}


@dataclass
class ServingRuntime:
    """The runtime client, answered by the real model server's hosting app."""

    client: TestClient
    calls: list[bytes] = field(default_factory=list)

    def invoke(
        self, *, endpoint: str, variant: str | None, body: bytes, content_type: str
    ) -> RuntimeResponse:
        self.calls.append(body)
        response = self.client.post(
            "/invocations", content=body, headers={"content-type": content_type}
        )
        if response.status_code != 200:
            raise InvalidInput(response.json()["error"], code=response.json()["code"])
        return RuntimeResponse(
            body=response.content, content_type=response.headers["content-type"], variant=variant
        )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    from functions.core.artifacts.local import DirectoryArtifactStore
    from functions.core.registry.sqlite import SqliteRegistry

    root = tmp_path / "model"
    root.mkdir()
    model = words_onnx()
    (root / "model.onnx").write_bytes(model)
    manifest = {"name": "words", "version": 1, "model_file": "model.onnx", "signature": SIGNATURE,
                "sha256": hashlib.sha256(model).hexdigest()}  # fmt: skip
    (root / "modelway.json").write_text(json.dumps(manifest))
    app = create_hosting_app(model_dir=root, config=ServingConfig(ort_threads=1))
    settings = Settings(env="local", home=tmp_path / "home")
    registry = SqliteRegistry(path=settings.registry_path)
    store = DirectoryArtifactStore(artifacts_dir=settings.artifacts_dir, data_dir=settings.data_dir)
    publish(registry, version=1, model="words", signature=SIGNATURE)
    registry.set_alias(model="words", alias="default", version=1, actor="tests")
    with TestClient(app) as client:
        yield Stack(settings=settings, registry=registry, store=store,
                    runtime=ServingRuntime(client))  # type: ignore[arg-type]  # fmt: skip
    registry.close()


def _run(stack: Stack, name: str, body: bytes) -> tuple[dict[str, Any], list[Any], list[Any]]:
    (job,) = stack.run(stack.upload(f"inputs/words/default/{name}", body))["jobs"]
    stem = name.rsplit(".", 1)[0]
    found = {}
    for kind in ("", ".errors"):
        key = output_key(stack.store, stem=stem, version=1, suffix=f"/{stem}{kind}.jsonl",
                         model="words")  # fmt: skip
        found[kind] = stack.read_lines(key) or []
    good, bad = found[""], found[".errors"]
    return job, good, bad


def _labels(good: list[Any]) -> list[tuple[int, str]]:
    return [(g["record"], g["outputs"][0]["data"][0]) for g in good]


def test_json_lines_of_strings(stack: Stack) -> None:
    lines = [
        json.dumps("good"),
        json.dumps({"text": "bad", "id": "r2"}),
        json.dumps(
            {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["日本"]}]}
        ),
        json.dumps(["neither"]),
        json.dumps(7),  # a number is not a text
        json.dumps({"text": 5}),
        json.dumps("x" * 65),  # over the signature's max_bytes
    ]
    job, good, bad = _run(stack, "texts.jsonl", "\n".join(lines).encode())
    assert (job["status"], job["ok"], job["errors"]) == ("partial", 4, 3)
    assert _labels(good) == [
        (1, WORDS["good"][0]), (2, WORDS["bad"][0]), (3, WORDS["日本"][0]), (4, "unknown")
    ]  # fmt: skip
    assert good[1]["id"] == "r2"
    assert [(b["record"], b["code"]) for b in bad] == [
        (5, "invalid_request"), (6, "invalid_tensor"), (7, "invalid_tensor")
    ]  # fmt: skip
    assert "BYTES data must be strings" in bad[1]["error"]
    assert "more than the 64 allowed" in bad[2]["error"]


def test_csv_text_column(stack: Stack) -> None:
    body = 'id,text\na,good\nb,"bad"\nc,日本\nd,\ne,"good, or not"\n'.encode()
    job, good, bad = _run(stack, "texts.csv", body)
    assert (job["status"], job["ok"], job["errors"]) == ("succeeded", 5, 0), (job, bad)
    assert [(g["id"], g["outputs"][0]["data"][0]) for g in good] == [
        ("a", "positive"), ("b", "negative"), ("c", "ニュートラル"), ("d", "unknown"),
        ("e", "unknown"),
    ]  # fmt: skip


def test_hostile_records_are_bad_records_and_the_rest_is_scored(stack: Stack) -> None:
    deep = b'{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":' + b"[" * 5000
    deep += b"]" * 5000 + b"}]}"
    absurd = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2**62], "data": ["a"]}]}
    lines = [json.dumps("good").encode(), deep, json.dumps(absurd).encode(), b'"\\ud800"',
             json.dumps("bad").encode()]  # fmt: skip
    job, good, bad = _run(stack, "hostile.jsonl", b"\n".join(lines))
    assert (job["status"], job["ok"], job["errors"]) == ("partial", 2, 3)
    assert _labels(good) == [(1, "positive"), (5, "negative")]
    assert [(b["record"], b["code"]) for b in bad] == [
        (2, "invalid_request"), (3, "payload_too_large"), (4, "invalid_tensor")
    ]  # fmt: skip
    assert "nests JSON more than 64 levels deep" in bad[0]["error"]


def test_a_deep_first_line_of_an_unnamed_file_is_one_bad_record(stack: Stack) -> None:
    # The format is sniffed from the first line: a line too deep to parse is still JSON.
    deep = b'{"inputs":' + b"[" * 5000 + b"]" * 5000 + b"}"
    job, good, bad = _run(stack, "sniffed", deep + b"\n" + json.dumps("good").encode())
    assert (job["status"], job["ok"], job["errors"]) == ("partial", 1, 1)
    assert _labels(good) == [(2, "positive")]
    assert bad[0]["code"] == "invalid_request"
