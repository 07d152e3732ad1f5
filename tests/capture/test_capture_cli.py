"""``modelway shadow``, ``modelway compare`` and replay's pairing, on the local backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli import main
from functions.core.backends import current
from functions.core.capture.records import PRIMARY, SHADOW, CaptureRecord
from functions.core.capture.replay import build_replay_input, replay_report
from functions.core.capture.writer import CaptureWriter
from functions.core.clock import utc_now
from functions.core.settings import get_settings
from tests.capture.capture_testkit import LABELS, register_digits


@pytest.fixture
def home(modelway_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELWAY_ACTOR", "dana")
    get_settings.cache_clear()
    registry = current().registry
    for number in (1, 2):
        register_digits(
            registry, number, artifact_uri=f"file:///a/{number}", endpoint="modelway-local-digits"
        )
    registry.set_alias(model="digits", alias="default", version=1, actor="dana")
    return modelway_home


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def logits(top: int, rows: int = 1) -> dict[str, Any]:
    data = []
    for _ in range(rows):
        row = [0.0] * 10
        row[top] = 3.0
        data += row
    return {"name": "logits", "datatype": "FP32", "shape": [rows, 10], "data": data}


def pixels(rows: int = 1) -> list[dict[str, Any]]:
    data = [float(i) for i in range(4 * rows)]
    return [{"name": "input", "datatype": "FP32", "shape": [rows, 4], "data": data}]


def record(request_id: str, role: str, version: int, top: int, **kw: Any) -> CaptureRecord:
    return CaptureRecord(
        request_id=request_id,
        at=utc_now(),
        model="digits",
        alias="default",
        version=version,
        role=role,
        status=200,
        latency_ms=4.0 if role == PRIMARY else 6.0,
        inputs=pixels() if role == PRIMARY else None,
        outputs=[logits(top)],
        **kw,
    )


def capture(records: list[CaptureRecord]) -> None:
    store = current().store
    writer = CaptureWriter(sink=lambda key, body: store.put_object(key=key, body=body))
    writer.submit(records)
    assert writer.flush()


def test_shadow_sets_the_alias_and_history_shows_it(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "shadow", "digits", "--version", "2", "--percent", "50", "--capture", "10"
    )
    assert code == 0, err
    alias = json.loads(out)
    assert (alias["shadow_version"], alias["shadow_percent"], alias["capture_percent"]) == (
        2,
        50,
        10,
    )
    code, out, _ = run(capsys, "history", "digits")
    assert "traffic" in out
    assert "shadow v2@50% capture 10%" in out
    code, out, _ = run(capsys, "shadow", "digits", "--off")
    assert json.loads(out)["shadow_version"] is None
    code, _, err = run(capsys, "shadow", "digits")
    assert code == 2
    code, _, err = run(capsys, "shadow", "digits", "--version", "9", "--percent", "5")
    assert code == 1
    assert "version_not_found" in err


def test_compare_prints_both_versions_and_writes_a_page(
    home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    records = []
    for i in range(8):
        records.append(record(f"r{i}", PRIMARY, 1, top=1))
        records.append(record(f"r{i}", SHADOW, 2, top=1 if i < 6 else 2))
    capture(records)

    code, out, err = run(capsys, "compare", "digits", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["pairs"][0]["agreement"] == 0.75
    assert {(v["version"], v["role"]) for v in report["versions"]} == {(1, PRIMARY), (2, SHADOW)}

    page = tmp_path / "report.html"
    code, out, err = run(capsys, "compare", "digits", "--since", "1h", "--html", str(page))
    assert code == 0, err
    assert "v1 vs v2" in out
    assert "0.75" in out
    assert page.read_text().count("<svg") == 3

    code, _, err = run(capsys, "compare", "digits", "--alias", "prod")
    assert code == 1
    assert "no_captures" in err


def test_replay_pairs_each_row_with_what_the_primary_answered() -> None:
    two_rows = record("a", PRIMARY, 1, top=3)
    two_rows = CaptureRecord(
        **{**two_rows.__dict__, "inputs": pixels(2), "outputs": [logits(3, 2)]}
    )
    hashed = CaptureRecord(**{**record("b", PRIMARY, 1, top=3).__dict__, "redacted": "hash"})
    built = build_replay_input([two_rows, hashed, record("a", SHADOW, 2, top=3)])
    assert len(built.lines) == 2
    assert built.skipped_redacted == 1
    first = json.loads(built.lines[0])
    assert first["id"] == "a#0"
    assert first["inputs"][0]["shape"] == [1, 4]
    assert first["inputs"][0]["data"] == [0.0, 1.0, 2.0, 3.0]
    results = [
        json.dumps({"record": 1, "id": "a#0", "outputs": [logits(3)]}).encode(),
        json.dumps({"record": 2, "id": "a#1", "outputs": [logits(4)]}).encode(),
    ]
    report = replay_report(built=built, results=iter(results), version=2, labels=LABELS)
    assert (report["scored"], report["agreement"], report["against"]) == (2, 0.5, [1])
