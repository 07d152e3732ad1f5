"""The comparison report from capture records: agreement by kind of output, latency
percentiles, error rates, and input drift against build-time reference statistics."""

from __future__ import annotations

import json
import random
import struct
import threading
from pathlib import Path

import pytest

from functions.core.artifacts.local import DirectoryArtifactStore
from functions.core.capture.compare import build_report, percentile
from functions.core.capture.drift import drift_report, psi
from functions.core.capture.reader import parse_since, read_captures
from functions.core.capture.records import (
    PRIMARY,
    SHADOW,
    CaptureRecord,
    redact_inputs,
    request_tensors,
)
from functions.core.capture.writer import CaptureWriter

LABELS = [str(d) for d in range(10)]


def _record(
    request_id: str,
    *,
    version: int,
    role: str,
    outputs: list[dict],
    latency_ms: float = 5.0,
    status: int = 200,
    at: str = "2026-12-03T10:00:00.000Z",
    inputs: list[dict] | None = None,
) -> CaptureRecord:
    return CaptureRecord(
        request_id=request_id,
        at=at,
        model="digits",
        alias="default",
        version=version,
        role=role,
        status=status,
        latency_ms=latency_ms,
        key_id="k1",
        code=None if status < 400 else "model_error",
        inputs=inputs,
        outputs=outputs if status < 400 else None,
    )


def _logits(top: int) -> dict:
    data = [0.0] * 10
    data[top] = 5.0
    return {"name": "logits", "datatype": "FP32", "shape": [1, 10], "data": data}


def test_argmax_agreement_counts_rows_with_the_same_top_class() -> None:
    records = []
    for i in range(10):
        records.append(_record(f"r{i}", version=1, role=PRIMARY, outputs=[_logits(i % 10)]))
        # The shadow disagrees on 3 of 10 requests.
        shadow_top = (i + 1) % 10 if i < 3 else i % 10
        records.append(_record(f"r{i}", version=2, role=SHADOW, outputs=[_logits(shadow_top)]))
    report = build_report(
        records, model="digits", alias="default", manifests={1: {"labels": LABELS}}
    )
    (pair,) = report["pairs"]
    assert (pair["primary"], pair["shadow"], pair["compared"]) == (1, 2, 10)
    assert pair["agreement"] == 0.7
    assert pair["outputs"][0]["measure"] == "argmax"


def test_embeddings_compare_by_cosine_and_regression_by_max_abs_diff() -> None:
    emb_a = {"name": "embedding", "datatype": "FP32", "shape": [1, 3], "data": [1.0, 0.0, 0.0]}
    emb_b = {"name": "embedding", "datatype": "FP32", "shape": [1, 3], "data": [1.0, 1.0, 0.0]}
    reg_a = {"name": "price", "datatype": "FP32", "shape": [1, 1], "data": [10.0]}
    reg_b = {"name": "price", "datatype": "FP32", "shape": [1, 1], "data": [10.5]}
    records = [
        _record("a", version=1, role=PRIMARY, outputs=[emb_a, reg_a]),
        _record("a", version=2, role=SHADOW, outputs=[emb_b, reg_b]),
    ]
    report = build_report(records, model="m", alias="default", manifests={})
    outputs = {o["output"]: o for o in report["pairs"][0]["outputs"]}
    assert outputs["embedding"]["measure"] == "cosine"
    assert outputs["embedding"]["mean"] == pytest.approx(2**-0.5, abs=1e-6)
    assert outputs["price"]["measure"] == "max_abs_diff"
    assert outputs["price"]["max"] == pytest.approx(0.5)
    assert report["pairs"][0]["agreement"] == pytest.approx(2**-0.5, abs=1e-6)


def test_per_version_requests_errors_and_latency_percentiles() -> None:
    records = [
        _record(f"r{i}", version=1, role=PRIMARY, outputs=[_logits(1)], latency_ms=float(i + 1))
        for i in range(100)
    ]
    records += [
        _record(f"r{i}", version=2, role=SHADOW, outputs=[_logits(1)], status=502 if i < 4 else 200)
        for i in range(100)
    ]
    report = build_report(
        records, model="digits", alias="default", manifests={1: {"labels": LABELS}}
    )
    v1, v2 = report["versions"]
    assert (v1["version"], v1["requests"], v1["errors"]) == (1, 100, 0)
    assert (v1["p50_ms"], v1["p99_ms"]) == (50.0, 99.0)
    assert (v2["version"], v2["role"], v2["errors"], v2["error_rate"]) == (2, SHADOW, 4, 0.04)
    assert v2["error_codes"] == {"model_error": 4}
    assert report["pairs"][0]["shadow_failed_only"] == 4
    assert report["pairs"][0]["compared"] == 96
    assert percentile([], 50) is None


def _reference(values_per_feature: list[list[float]]) -> dict:
    """A reference as model_build.reference writes it, for hand-made features."""
    import numpy as np

    from functions.core.manifest import Signature, TensorSpec
    from model_build.reference import reference_statistics

    array = np.array(values_per_feature, dtype=np.float32).T.reshape(-1, len(values_per_feature))
    signature = Signature(
        inputs=[TensorSpec(name="x", datatype="FP32", shape=[-1, len(values_per_feature)])],
        outputs=[TensorSpec(name="y", datatype="FP32", shape=[-1, 1])],
    )
    stats = reference_statistics(signature=signature, feeds={"x": array})
    assert stats is not None
    return stats


def test_drift_is_near_zero_for_the_same_population_and_large_for_a_shifted_one() -> None:
    rng = random.Random(7)
    base = [[rng.gauss(0, 1) for _ in range(2000)] for _ in range(3)]
    reference = _reference(base)

    def requests(shift: float) -> list[list[dict]]:
        return [
            [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 3],
                    "data": [rng.gauss(shift, 1) for _ in range(3)],
                }
            ]
            for _ in range(2000)
        ]

    same = drift_report(reference=reference, inputs=requests(0.0))["inputs"]["x"]
    shifted = drift_report(reference=reference, inputs=requests(1.5))["inputs"]["x"]
    assert same["rows"] == 2000
    assert same["features"] == 3
    assert same["psi_max"] < 0.05
    assert same["level"] == "stable"
    assert shifted["psi_max"] > 0.25
    assert shifted["level"] == "significant"
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert drift_report(reference=None, inputs=[])["available"] is False


def test_sensitive_inputs_are_hashed_or_dropped_never_kept() -> None:
    tensors = [
        {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["my card is 4111"]},
        {"name": "lang", "datatype": "BYTES", "shape": [1], "data": ["en"]},
    ]
    hashed, mode = redact_inputs(tensors, policy={"sensitive": ["text"], "mode": "hash"})
    assert mode == "hash"
    assert hashed is not None
    assert "data" not in hashed[0]
    assert len(hashed[0]["sha256"]) == 64
    assert "4111" not in json.dumps(hashed)
    assert hashed[1]["data"] == ["en"]
    dropped, mode = redact_inputs(tensors, policy={"sensitive": ["*"], "mode": "drop"})
    assert (dropped, mode) == (None, "drop")
    kept, mode = redact_inputs(tensors, policy=None)
    assert (kept, mode) == (tensors, None)


def test_binary_requests_are_captured_as_plain_tensors() -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 2],
                    "parameters": {"binary_data_size": 8},
                }
            ]
        }
    ).encode()
    body = header + struct.pack("<2f", 1.5, -2.0)
    (tensor,) = request_tensors(body, json_length=len(header))
    assert tensor == {"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1.5, -2.0]}


def test_writer_batches_records_into_jsonl_objects_by_alias_and_day(tmp_path: Path) -> None:
    store = DirectoryArtifactStore(artifacts_dir=tmp_path / "a", data_dir=tmp_path / "data")
    writer = CaptureWriter(
        sink=lambda key, body: store.put_object(key=key, body=body), max_records=10
    )
    records = [
        _record(
            f"r{i}",
            version=1,
            role=PRIMARY,
            outputs=[_logits(i % 10)],
            at=f"2026-12-0{1 + i % 2}T10:00:00.000Z",
        )
        for i in range(25)
    ]
    assert writer.submit(records) == 25
    assert writer.flush()
    keys = sorted(store.list_objects(prefix="captures/digits/default/"))
    assert {k.split("/")[3] for k in keys} == {"2026-12-01", "2026-12-02"}
    assert all(k.endswith(".jsonl") for k in keys)
    back = list(read_captures(store, model="digits", alias="default"))
    assert sorted(r.request_id for r in back) == sorted(r.request_id for r in records)
    later = list(read_captures(store, model="digits", alias="default", since="2026-12-02"))
    assert len(later) == 12
    assert all(r.at.startswith("2026-12-02") for r in later)
    assert writer.stats.written == 25
    assert writer.stats.dropped_failed == 0


def test_writer_never_blocks_a_submitter_when_its_sink_hangs() -> None:
    entered, release = threading.Event(), threading.Event()

    def stuck(key: str, body: bytes) -> None:
        entered.set()
        release.wait(30)

    writer = CaptureWriter(sink=stuck, max_records=1, max_age_seconds=0.0, max_queue=5)
    record = _record("r", version=1, role=PRIMARY, outputs=[_logits(1)])
    writer.submit([record])
    assert entered.wait(10)
    # The sink is stuck inside a write: every submit still returns, the queue takes 5 and the
    # rest are dropped (counted), none waited for.
    queued = sum(writer.submit([record]) for _ in range(50))
    assert not release.is_set()
    assert queued == 5
    assert writer.stats.dropped_full == 45
    release.set()


def test_a_failing_sink_loses_its_batch_counted_and_the_writer_goes_on() -> None:
    calls = []

    def flaky(key: str, body: bytes) -> None:
        calls.append(key)
        if len(calls) == 1:
            raise OSError("disk full")

    writer = CaptureWriter(sink=flaky, max_records=1)
    writer.submit([_record("a", version=1, role=PRIMARY, outputs=[])])
    assert writer.flush()
    writer.submit([_record("b", version=1, role=PRIMARY, outputs=[])])
    assert writer.flush()
    assert writer.stats.dropped_failed == 1
    assert writer.stats.written == 1


def test_since_takes_dates_times_and_ages() -> None:
    from datetime import UTC, datetime

    from functions.core.capture.exceptions import InvalidCapture

    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert parse_since("24h", now=now) == "2026-12-02T12:00:00.000Z"
    assert parse_since("2026-12-01") == "2026-12-01T00:00:00.000Z"
    assert parse_since(None) is None
    with pytest.raises(InvalidCapture):
        parse_since("last tuesday")


def test_writer_bounds_what_it_holds_in_bytes_and_gives_it_back_once_written() -> None:
    entered, release = threading.Event(), threading.Event()
    written: list[bytes] = []

    def slow(key: str, body: bytes) -> None:
        entered.set()
        release.wait(30)
        written.append(body)

    big = _record("big", version=1, role=PRIMARY, outputs=[_logits(1)])
    size = len(big.to_line())
    writer = CaptureWriter(sink=slow, max_records=1, max_age_seconds=0.0, max_queue_bytes=3 * size)
    writer.submit([big])
    assert entered.wait(10)
    # One record is being written, so two more fit in the byte budget; the rest are dropped.
    assert writer.submit([big] * 5) == 2
    assert writer.stats.dropped_full == 3
    release.set()
    assert writer.flush()
    # Written, their bytes are free again.
    assert writer.submit([big] * 3) == 3
    assert writer.flush()
    assert len(written) == 6
