"""The local stack for real: a tiny ONNX digits classifier (onnx.helper) published through
the real publishing flow, the real model server on loopback, the real runtime client (boto3
``sagemaker-runtime``), the SQLite registry and the directory store — driven through the CLI
(`modelway batch submit`, `modelway jobs`, `modelway invoke batch events/s3-put.json`) and the
inputs watcher."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.artifact_testkit import write_tar
from tests.events import EVENTS_DIR, sample_event, sample_path

pytestmark = pytest.mark.integration


def tiny_digits_artifact(dest: Path, *, seed: int = 7) -> tuple[Path, np.ndarray, np.ndarray]:
    """input FP32 [-1,1,8,8] → logits FP32 [-1,10], label INT64 [-1] (a linear layer)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((64, 10)).astype(np.float32)
    bias = rng.standard_normal(10).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["mm"]),
            helper.make_node("Add", ["mm", "B"], ["logits"]),
            helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
        ],
        "digits",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        ],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    model_bytes = model.SerializeToString()
    manifest = {
        "name": "digits",
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "signature": {
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
            "outputs": [
                {"name": "logits", "datatype": "FP32", "shape": [-1, 10]},
                {"name": "label", "datatype": "INT64", "shape": [-1]},
            ],
        },
        "frameworks": {"onnx": onnx.__version__},
        "parity": {
            "samples": 1,
            "max_abs_diff": 0.0,
            "argmax_agreement": 1.0,
            "tolerance": 1e-4,
            "passed": True,
        },
    }
    write_tar(dest, {"model.onnx": model_bytes, "modelway.json": json.dumps(manifest).encode()})
    return dest, weight, bias


@pytest.fixture
def local_stack(
    modelway_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """Publish the tiny model into the local state and serve it on a free loopback port."""
    import uvicorn

    from functions.core.archive import check_artifact
    from functions.core.backends import make_artifact_store, make_registry, use
    from functions.core.publishing import publish_artifact
    from functions.core.settings import get_settings
    from serving.app import create_local_app
    from serving.config import ServingConfig

    artifact, weight, bias = tiny_digits_artifact(tmp_path / "model.tar.gz")
    settings = get_settings()
    registry = make_registry(settings)
    publish_artifact(
        path=artifact, registry=registry, store=make_artifact_store(settings), settings=settings,
        actor="test", verify=check_artifact,
    )  # fmt: skip

    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_local_app(
        artifacts_dir=settings.artifacts_dir,
        endpoint_prefix=settings.resolved_endpoint_prefix,
        config=ServingConfig(ort_threads=1, max_queue_delay_ms=0),
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(2000):
        if server.started:
            started.set()
            break
        threading.Event().wait(0.005)
    assert started.is_set(), "the model server did not start"

    monkeypatch.setenv("MODELWAY_SERVING_URL", url)
    get_settings.cache_clear()
    use(None)  # the process's backends, from the settings again
    try:
        yield {"settings": get_settings(), "weight": weight, "bias": bias}
    finally:
        use(None)  # the process's backends, from the settings again
        server.should_exit = True
        thread.join(15)
        sock.close()


def expected(images: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> tuple[Any, Any]:
    logits = images.reshape(len(images), 64).astype(np.float32) @ weight + bias
    return logits, logits.argmax(axis=1)


def test_batch_submit_scores_a_file_through_the_real_model_server(
    local_stack: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli import main

    rng = np.random.default_rng(0)
    images = rng.integers(0, 17, size=(300, 64)).astype(np.float32)
    lines = [json.dumps(img.tolist()) for img in images]
    lines[41] = "[1, 2, 3]"  # a bad record among good ones
    source = tmp_path / "digits batch.jsonl"
    source.write_text("\n".join(lines) + "\n")

    assert main(["batch", "submit", str(source), "--model", "digits"]) == 0

    job = json.loads(capsys.readouterr().out)
    assert (job["status"], job["records"], job["ok"], job["errors"]) == ("partial", 300, 299, 1)
    data_dir = local_stack["settings"].data_dir
    assert (
        data_dir / "inputs/digits/default/digits batch.jsonl"
    ).read_bytes() == source.read_bytes()
    results = [
        json.loads(line)
        for line in (data_dir / f"outputs/digits/1/{job['job_id']}/digits batch.jsonl")
        .read_text()
        .splitlines()
    ]
    good = np.delete(images, 41, axis=0)
    logits, labels = expected(good, local_stack["weight"], local_stack["bias"])
    assert [r["record"] for r in results] == [n for n in range(1, 301) if n != 42]
    got = {o["name"]: o for o in results[0]["outputs"]}
    assert got["label"]["shape"] == [1]
    assert got["logits"]["shape"] == [1, 10]
    assert [r["outputs"][1]["data"][0] for r in results] == labels.tolist()
    assert np.allclose([r["outputs"][0]["data"] for r in results], logits, atol=1e-4)
    (error,) = [
        json.loads(line)
        for line in (data_dir / f"outputs/digits/1/{job['job_id']}/digits batch.errors.jsonl")
        .read_text()
        .splitlines()
    ]
    assert error["record"] == 42
    assert "64 elements" in error["error"]

    assert main(["jobs", "--model", "digits"]) == 0
    listing = capsys.readouterr().out
    assert job["job_id"] in listing
    assert "partial" in listing
    assert main(["jobs", "show", job["job_id"]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["output_uri"].endswith(f"outputs/digits/1/{job['job_id']}/digits%20batch.jsonl")
    # Another submit is another upload (here pinned to version 1): another job.
    assert main(["batch", "submit", str(source), "--model", "digits", "--version", "1"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["job_id"] != job["job_id"]
    assert again["version"] == 1
    assert again["status"] == "partial"
    # Each job keeps its own results: the alias job still points at a complete file.
    assert again["output_uri"] != job["output_uri"]
    assert main(["jobs", "show", job["job_id"]]) == 0
    assert json.loads(capsys.readouterr().out)["output_uri"] == shown["output_uri"]


def test_invoke_batch_runs_the_sample_event_against_the_local_stack(
    local_stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from cli import main
    from cli.batch import stage_event_inputs

    event = sample_event("s3-put.json")
    staged = stage_event_inputs(
        event=event, settings=local_stack["settings"], search_dir=EVENTS_DIR
    )
    assert staged == ["inputs/digits/default/sample.jsonl"]

    assert main(["invoke", "batch", str(sample_path("s3-put.json"))]) == 0

    summary = json.loads(capsys.readouterr().out)
    (job,) = summary["jobs"]
    assert (job["status"], job["records"], job["ok"]) == ("succeeded", 5, 5)
    data_dir = local_stack["settings"].data_dir
    results = (data_dir / f"outputs/digits/1/{job['job_id']}/sample.jsonl").read_text()
    assert [json.loads(line)["record"] for line in results.splitlines()] == [1, 2, 3, 4, 5]
    assert json.loads(results.splitlines()[3])["id"] == "sample-4"


def test_the_watcher_scores_a_dropped_file_once(local_stack: dict[str, Any]) -> None:
    from functions.batch.handler import get_deps
    from functions.batch.watch import InputsWatcher

    settings = local_stack["settings"]
    watcher = InputsWatcher(deps=get_deps())
    folder = settings.data_dir / "inputs/digits/default"
    folder.mkdir(parents=True)
    (folder / "dropped.csv").write_text(
        ",".join(f"p{i}" for i in range(64)) + "\n" + ",".join(["3"] * 64) + "\n"
    )

    assert watcher.poll() == []  # seen once: wait for it to hold still
    assert watcher.poll() == ["inputs/digits/default/dropped.csv"]
    assert watcher.poll() == []

    registry = get_deps().registry
    (job,) = registry.list_jobs(model="digits")
    assert (job.status, job.records, job.extra["format"]) == ("succeeded", 1, "csv")
    assert (settings.data_dir / f"outputs/digits/1/{job.job_id}/dropped.jsonl").is_file()
    # A restarted watcher fires the file again: the same job, nothing re-scored.
    restarted = InputsWatcher(deps=get_deps())
    restarted.poll()
    assert restarted.poll() == ["inputs/digits/default/dropped.csv"]
    (again,) = registry.list_jobs(model="digits")
    assert again.job_id == job.job_id
    assert again.updated_at == job.updated_at


def test_watch_inputs_stops_when_told(local_stack: dict[str, Any]) -> None:
    from functions.batch.watch import watch_inputs

    stop = threading.Event()
    thread = threading.Thread(
        target=watch_inputs,
        kwargs={"settings": local_stack["settings"], "stop_event": stop, "interval": 0.01},
    )
    thread.start()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def test_replay_scores_captured_requests_with_another_version_and_pairs_them(
    local_stack: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`modelway replay`: captured v1 traffic scored by v2 through batch scoring, each row
    compared with what v1 answered (argmax agreement = what numpy says of the two models)."""
    from cli import main
    from functions.core.archive import check_artifact
    from functions.core.backends import current
    from functions.core.capture.records import CaptureRecord
    from functions.core.capture.writer import CaptureWriter
    from functions.core.clock import utc_now
    from functions.core.publishing import publish_artifact

    settings = local_stack["settings"]
    backends = current()
    (tmp_path / "v2").mkdir()
    artifact, weight2, bias2 = tiny_digits_artifact(tmp_path / "v2" / "model.tar.gz", seed=8)
    publish_artifact(
        path=artifact, registry=backends.registry, store=backends.store, settings=settings,
        actor="test", alias=None, verify=check_artifact,
    )  # fmt: skip
    rng = np.random.default_rng(1)
    images = rng.integers(0, 17, size=(30, 64)).astype(np.float32)
    logits1, labels1 = expected(images, local_stack["weight"], local_stack["bias"])
    _, labels2 = expected(images, weight2, bias2)
    records = []
    for start in range(0, 30, 3):  # requests of 3 rows each
        rows = slice(start, start + 3)
        records.append(
            CaptureRecord(
                request_id=f"req-{start}",
                at=utc_now(),
                model="digits",
                alias="default",
                version=1,
                role="primary",
                status=200,
                latency_ms=1.0,
                inputs=[{"name": "input", "datatype": "FP32", "shape": [3, 1, 8, 8],
                         "data": images[rows].ravel().tolist()}],
                outputs=[{"name": "logits", "datatype": "FP32", "shape": [3, 10],
                          "data": logits1[rows].ravel().tolist()},
                         {"name": "label", "datatype": "INT64", "shape": [3],
                          "data": labels1[rows].tolist()}],
            )
        )  # fmt: skip
    writer = CaptureWriter(sink=lambda key, body: backends.store.put_object(key=key, body=body))
    writer.submit(records)
    assert writer.flush()

    assert main(["replay", "captures/digits/default/", "--version", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["version"], report["against"], report["lines"], report["scored"]) == (
        2,
        [1],
        30,
        30,
    )
    # No labels in this manifest: the label output agrees exactly or not; logits by cosine.
    agree = float(np.mean(labels1 == labels2))
    assert 0 < agree < 1
    assert report["agreement"] == round(agree, 4)
    measures = {o["output"]: o["measure"] for o in report["outputs"]}
    assert measures == {"logits": "cosine", "label": "exact"}
    job = current().registry.get_job(job_id=report["job"])
    assert (job.status, job.version, job.ok) == ("succeeded", 2, 30)
