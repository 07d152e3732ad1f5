"""benchmarks/report.py: the JSON and chart every benchmark writes, and comparing two runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from report import Row, compare, main, write_report

ROWS = [
    Row("torch-eager", 1, 2000.0, 0.3, 6.5),
    Row("modelway", 1, 500.0, 1.6, 9.0, {"server_cpu_s": [1.2, 0.6]}),
    Row("torch-eager", 16, 2300.0, 5.3, 29.0),
    Row("modelway", 16, 900.0, 12.0, 40.0),
    Row("trivial", 16, 9000.0, 1.5, 3.1),
]


def test_report_writes_raw_numbers_and_a_chart(tmp_path: Path) -> None:
    json_path, png_path = write_report(
        "bench_x",
        ROWS,
        baseline="torch-eager",
        title="x",
        parameters={"requests": 300, "dir": tmp_path},
        out_dir=tmp_path,
        off_chart=["trivial"],
    )
    document = json.loads(json_path.read_text())
    assert document["benchmark"] == "bench_x"
    assert document["baseline"] == "torch-eager"
    assert document["parameters"] == {"requests": 300, "dir": str(tmp_path)}
    assert document["machine"]["cpus"] >= 1
    assert [(r["target"], r["concurrency"], r["requests_per_s"]) for r in document["rows"]] == [
        (r.target, r.concurrency, r.requests_per_s) for r in ROWS
    ]  # every row, off-chart ones too
    assert document["rows"][1]["extra"] == {"server_cpu_s": [1.2, 0.6]}
    png = png_path.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 20_000


def test_report_refuses_an_unknown_baseline_and_no_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="baseline"):
        write_report("b", ROWS, baseline="nope", title="t", out_dir=tmp_path)
    with pytest.raises(ValueError, match="at least one row"):
        write_report("b", [], baseline=None, title="t", out_dir=tmp_path)


def test_two_runs_compare_row_by_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, _ = write_report("b", ROWS, baseline="torch-eager", title="t", out_dir=tmp_path / "a")
    faster = [
        Row(r.target, r.concurrency, r.requests_per_s * 2, r.p50_ms, r.p99_ms / 2) for r in ROWS
    ]
    new, _ = write_report("b", faster, baseline="torch-eager", title="t", out_dir=tmp_path / "b")
    lines = compare(json.loads(old.read_text()), json.loads(new.read_text()))
    assert len(lines) == 2 + len(ROWS)
    modelway_16 = next(line for line in lines if line.startswith("modelway") and " 16 " in line)
    assert modelway_16.split() == [
        "modelway",
        "16",
        "900",
        "1800",
        "2.00",
        "40.00",
        "20.00",
        "0.50",
    ]
    assert main([str(old), str(new)]) == 0
    assert "modelway" in capsys.readouterr().out
    other, _ = write_report("c", ROWS, baseline=None, title="t", out_dir=tmp_path / "c")
    assert main([str(old), str(other)]) == 2
