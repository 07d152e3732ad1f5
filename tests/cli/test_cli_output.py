"""The CLI's two output modes: for people on a terminal (tables, colour, progress bars with
steps, counts and ETA, on stderr) and for scripts (``--json`` or piped: clean, parseable
stdout, no escape codes, errors as JSON). The terminal runs under a real pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cli import _leaf_parsers, build_parser, main
from functions.core import progress

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    root = str(Path(__file__).resolve().parents[2])
    return {**env, "MODELWAY_HOME": str(home), "MODELWAY_ENV": "local", "PYTHONPATH": root}


def _modelway(*argv: str) -> list[str]:
    return [sys.executable, "-m", "cli", *argv]


def run_in_terminal(argv: list[str], env: dict[str, str], timeout: float = 240) -> tuple[int, str]:
    """Runs ``argv`` with stdout and stderr on a pseudo-terminal; returns its status and all
    it wrote there."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120"},
    )  # fmt: skip
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(leader)
    code = process.wait(timeout=30)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_every_command_takes_json() -> None:
    from cli import output

    parser = build_parser()
    leaves = _leaf_parsers(parser)
    output.add_json_flag(leaves)
    names = {leaf.prog.removeprefix("modelway ") for leaf in leaves}
    for command in ("build digits", "package", "publish", "versions", "keys list", "batch submit",
                    "jobs", "jobs show", "alias set", "history", "up", "invoke", "shadow",
                    "compare", "replay", "approve", "reject", "mirror sync"):  # fmt: skip
        assert any(name.startswith(command) for name in names), (command, sorted(names))
    for leaf in leaves:
        assert any("--json" in action.option_strings for action in leaf._actions), leaf.prog


def test_publish_reports_its_steps_to_a_listener(
    modelway_home: Path, digits_artifact: Path
) -> None:
    seen: list[tuple[str, int | None, int | None]] = []

    def listener(step: str, *, done: Any = None, total: Any = None, detail: Any = None) -> None:
        seen.append((step, done, total))

    with progress.reporting(listener):
        assert main(["publish", str(digits_artifact), "--json"]) == 0
    steps = list(dict.fromkeys(step for step, _, _ in seen))
    assert steps == ["verifying the artifact", "uploading", "registering the version",
                     "moving aliases"]  # fmt: skip
    uploads = [(done, total) for step, done, total in seen if step == "uploading"]
    size = uploads[-1][1]
    assert size
    assert uploads == [(0, size), (size, size)]
    # Outside the block nobody listens.
    progress.report("nobody hears this")
    assert seen[-1][0] == "moving aliases"


def test_json_mode_tables_and_errors_are_parseable(
    modelway_home: Path, digits_artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["publish", str(digits_artifact), "--json"]) == 0
    capsys.readouterr()
    assert main(["versions", "digits", "--json"]) == 0
    out, err = capsys.readouterr()
    (row,) = json.loads(out)
    assert (row["version"], row["status"], row["aliases"]) == ("1", "active", "default")
    assert err == ""
    assert main(["keys", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []

    assert main(["retire", "digits", "9", "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert json.loads(err) == {"error": "model 'digits' has no version 9",
                               "code": "version_not_found"}  # fmt: skip


def test_piped_output_is_plain(
    modelway_home: Path, digits_artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["publish", str(digits_artifact)]) == 0
    published = capsys.readouterr()
    assert json.loads(published.out)["version"] == 1
    assert published.err == ""  # no progress drawn when not on a terminal
    assert main(["versions", "digits"]) == 0
    out = capsys.readouterr().out
    assert not ANSI.search(out)
    header, row = out.splitlines()
    assert header.split() == ["VERSION", "STATUS", "ALIASES", "SHA256", "CREATED", "BY"]
    assert row.split()[:3] == ["1", "active", "default"]
    assert out == "\n".join(line.rstrip() for line in out.splitlines()) + "\n"
    assert main(["retire", "digits", "9"]) == 1
    assert capsys.readouterr().err == "error: model 'digits' has no version 9 (version_not_found)\n"


@pytest.mark.timeout(300)
def test_terminal_shows_progress_and_colour_json_does_not(
    tmp_path: Path, digits_artifact: Path
) -> None:
    env = _env(tmp_path / "home")
    code, screen = run_in_terminal(_modelway("publish", str(digits_artifact)), env)
    assert code == 0, screen
    text = ANSI.sub("", screen)
    for step in ("verifying the artifact", "uploading", "registering the version"):
        assert step in text, text
    assert "✓" in text  # finished steps
    assert "ETA" in text
    assert ANSI.search(screen), "a terminal gets colour"
    assert '"version": 1' in text

    code, screen = run_in_terminal(_modelway("versions", "digits"), env)
    assert code == 0
    assert ANSI.search(screen)  # a bold header on a terminal
    assert "VERSION" in ANSI.sub("", screen)

    # --json on a terminal: exactly the JSON, nothing drawn.
    code, screen = run_in_terminal(_modelway("publish", str(digits_artifact), "--json"), env)
    assert code == 0
    assert not ANSI.search(screen), screen
    assert json.loads(screen)["created"] is False

    code, screen = run_in_terminal(_modelway("retire", "digits", "7"), env)
    assert code == 1
    assert "error:" in ANSI.sub("", screen)
    assert ANSI.search(screen), "the error is coloured on a terminal"


def test_package_hf_reports_its_steps(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from model_build.hf.package import package_hf

    seen: list[tuple[str, Any]] = []

    def listener(step: str, *, done: Any = None, total: Any = None, detail: Any = None) -> None:
        seen.append((step, detail))

    with progress.reporting(listener):
        package_hf(tiny_bert_dir, name="tiny", out_dir=tmp_path / "out", sentences=["a b", "c d e"])
    steps = list(dict.fromkeys(step for step, _ in seen))
    assert steps == [
        "the reference: eager transformers", "exporting to ONNX",
        "checking parity with transformers", "measuring latency", "writing model.tar.gz",
        "verifying model.tar.gz as publishing will",
    ]  # fmt: skip
    assert ("checking parity with transformers", "2 sentences") in seen


def test_batch_input_upload_reports_bytes(tmp_path: Path) -> None:
    from cli.batch import upload_input

    class Writer:
        def __init__(self) -> None:
            self.body = b""

        def write(self, chunk: bytes) -> None:
            self.body += chunk

        def abort(self) -> None:
            raise AssertionError("not aborted")

        def commit(self) -> str:
            return "file:///x"

    class Store:
        writer = Writer()

        def open_writer(self, *, key: str) -> Writer:
            return self.writer

    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"x": 1}\n' * 200_000)
    seen: list[tuple[Any, Any]] = []

    def listener(step: str, *, done: Any = None, total: Any = None, detail: Any = None) -> None:
        seen.append((done, total))

    store = Store()
    with progress.reporting(listener):
        assert upload_input(store=store, key="inputs/x", source=source) == "file:///x"
    size = source.stat().st_size
    assert store.writer.body == source.read_bytes()
    assert len(seen) > 1
    assert seen[-1] == (size, size)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
