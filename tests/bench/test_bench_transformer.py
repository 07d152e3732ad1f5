"""benchmarks/bench_transformer.py's pieces: the sentences it sends, rows measured in rounds
merged into one, and the goals it prints against the figures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_local_path import Result
from bench_transformer import Variant, merge, print_goals, sentences


def test_the_sentences_are_varied_and_fit_the_bound() -> None:
    from tokenizers import Tokenizer

    from model_build.minilm import model_directory

    pool = sentences()
    tokenizer = Tokenizer.from_file(str(model_directory() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    lengths = [len(tokenizer.encode(s).ids) for s in pool]
    assert len(pool) >= 150
    assert all(s.strip() for s in pool)
    assert max(lengths) < 256
    # Short and long requests mixed.
    assert min(lengths) <= 8
    assert max(lengths) >= 48
    assert any(not s.isascii() for s in pool)


def test_rounds_merge_into_one_row() -> None:
    parts = [
        Result("modelway", 16, 32, 0.5, [10.0] * 32, (0.25,)),
        Result("modelway", 16, 32, 1.5, [30.0] * 32, (0.75,)),
    ]
    row = merge(parts)
    assert (row.target, row.concurrency, row.requests, row.seconds) == ("modelway", 16, 64, 2.0)
    assert row.throughput == 32.0
    assert sorted(row.latencies_ms) == [10.0] * 32 + [30.0] * 32
    assert row.cpu_s == (1.0,)


def _row(target: str, level: int, per_s: float, ms: float, cpu_ms: float) -> Result:
    return Result(target, level, 100, 100 / per_s, [ms] * 100, (cpu_ms / 10,))


def test_goals_are_checked_against_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    results = [
        _row("torch-eager", 1, 40, 25, 23),
        _row("modelway", 1, 80, 12, 12),
        _row("torch-eager", 16, 40, 400, 30),
        _row("modelway", 16, 100, 160, 10),
        _row("modelway-nobatch", 16, 80, 200, 11),
        _row("modelway-int8", 16, 130, 120, 7),
    ]
    manifest = {"metrics": {"size_bytes": 66.6e6}, "parity": {"samples": 240,
                "min_cosine": 0.974, "mean_cosine": 0.9914}}  # fmt: skip
    print_goals(
        results,
        levels=[1, 16],
        manifests={"int8": manifest, "fp32": {"metrics": {"size_bytes": 90.5e6}}},
        probes={"modelway-int8": 0.9934},
        variants=[Variant("modelway", "fp32", {}), Variant("modelway-int8", "int8", {})],
    )
    out = capsys.readouterr().out
    assert "modelway 2.50x the baseline's throughput (goal >= 3: NOT met), p99 0.40x" in out
    assert "the baseline spends 3.00x modelway's server CPU time per request" in out
    assert "p50 0.48x the baseline's (goal <= 1: met)" in out
    assert "dynamic batching on / off = 1.25x throughput (goal >= 2: NOT met)" in out
    assert "INT8: throughput vs FP32 conc 16 1.30x" in out
    assert "min 0.9740 mean 0.99140" in out
    assert "model 66.6 MB vs FP32 90.5 MB" in out
