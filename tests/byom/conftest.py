"""Users' models, made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.byom.byom_testkit import IrisFiles, make_iris


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> IrisFiles:
    return make_iris(tmp_path_factory.mktemp("iris"))


@pytest.fixture
def run_package(tmp_path: Path, capfd: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """``modelway package ARGS --out tmp`` in-process: (exit status, stdout, stderr)."""
    from cli import main

    def run(*args: str | Path) -> tuple[int, str, str]:
        status = main(["package", *map(str, args), "--out", str(tmp_path / "out")])
        captured = capfd.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def ranker(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The user's torch module packaged by the real command, as a user runs it: their code on
    PYTHONPATH, ``modelway package --torch user_ranker:build``."""
    import json
    import os
    import subprocess
    import sys

    from tests.byom.byom_testkit import HERE, ranker_samples

    work = tmp_path_factory.mktemp("ranker")
    samples = ranker_samples(work / "samples.npz")
    repo = HERE.parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(repo)])}
    done = subprocess.run(
        [
            sys.executable, "-m", "cli", "package",
            "--torch", "user_ranker:build", "--samples", str(samples), "--name", "ranker",
            "--dynamic", "token_ids:1=sequence,attention_mask:1=sequence",
            "--max-length", "sequence=64", "--out", str(work / "out"),
        ],
        env=env, cwd=work, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {"summary": json.loads(done.stdout), "samples": samples, "dir": work}
