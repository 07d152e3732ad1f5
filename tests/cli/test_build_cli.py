"""``modelway build digits``: the command a person runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import model_build.digits
from cli import main
from model_build.result import BuildResult


@pytest.fixture
def fake_build(digits_build: BuildResult, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Stands in for the (already tested) build so the CLI test takes no training time;
    records where the CLI asked it to build."""
    calls: list[Path] = []

    def build_digits(*, out_dir: Path, seed: int | None = None) -> BuildResult:
        calls.append(out_dir)
        seeds.append(seed)
        return digits_build

    monkeypatch.setattr(model_build.digits, "build_digits", build_digits)
    return calls


seeds: list[int | None] = []


def test_build_digits_prints_what_it_built(
    fake_build: list[Path],
    digits_build: BuildResult,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["build", "digits", "--out", str(tmp_path / "out")]) == 0

    assert fake_build == [tmp_path / "out"]
    printed = json.loads(capsys.readouterr().out)
    assert printed["artifact"] == str(digits_build.artifact)
    assert printed["metrics"]["test_accuracy"] >= 0.95
    assert printed["parity"]["max_abs_diff"] <= 1e-4
    assert "p50_batch1" in printed["latency_ms"]


def test_build_digits_defaults_to_modelway_home(
    fake_build: list[Path], modelway_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", "digits"]) == 0
    assert fake_build == [modelway_home / "build" / "digits"]
    assert "modelway-home" in str(modelway_home)  # the shared fixture, not the cwd


def test_seed_reaches_the_build(fake_build: list[Path], tmp_path: Path) -> None:
    seeds.clear()
    assert main(["build", "digits", "--out", str(tmp_path), "--seed", "3"]) == 0
    assert main(["build", "digits", "--out", str(tmp_path)]) == 0
    assert seeds == [3, None]


def test_a_failed_gate_is_an_error_exit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from model_build.exceptions import QualityGateFailed

    def build_digits(*, out_dir: Path, seed: int | None = None) -> BuildResult:
        raise QualityGateFailed("digits test accuracy 0.1000 is below the required 0.95")

    monkeypatch.setattr(model_build.digits, "build_digits", build_digits)
    assert main(["build", "digits", "--out", str(tmp_path)]) == 1
    assert "below the required 0.95 (quality_gate_failed)" in capsys.readouterr().err


def test_an_unknown_model_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["build", "imagenet"])
    assert caught.value.code == 2


def test_the_command_tree_loads_without_torch() -> None:
    # `modelway --help` must stay instant: building the parser may not import torch or onnx.
    code = (
        "import sys, cli.build as b, model_build.digits, model_build.verify;"
        "import argparse; p = argparse.ArgumentParser(); b.register(p.add_subparsers());"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
