"""The load/fault benchmark's 5-second version: the model server SIGKILLed under load, the
batch job running beside it. The script checks what it measures and exits 1 on a failed check
(only 503 + Retry-After while down, no connection error, no request past its deadline, served
again after the restart, every batch record scored or in the error file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_the_stack_holds_under_load_and_heals_after_a_kill(
    digits_artifact: Path, tmp_path: Path
) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_resilience.py"),
         "--scenario", "fault", "--duration", "5", "--concurrency", "8",
         "--artifact", str(digits_artifact), "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    report = run.stdout
    assert run.returncode == 0, report + run.stderr[-3000:]
    assert "connection errors: 0" in report
    assert report.rstrip().endswith("OK")
    assert "model server back (restart logged)" in report
    assert "(all with Retry-After: True)" in report
    assert "result file lines" in report
    assert (tmp_path / "bench_resilience_fault.json").is_file()
    assert (tmp_path / "bench_resilience_fault.png").is_file()
