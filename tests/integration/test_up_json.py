"""``modelway up --json``: one JSON line on stdout (where everything is, and the admin key)
before the stack runs on; the build and restart notes stay off stdout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration


@pytest.mark.timeout(400)
def test_up_json_prints_one_parseable_line(tmp_path: Path, free_port: Callable[[], int]) -> None:
    env = {**os.environ, "MODELWAY_HOME": str(tmp_path / "home"), "MODELWAY_ENV": "local"}
    errors = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "up", "--json", "--no-watch",
         "--port", str(free_port()), "--serving-port", str(free_port())],
        env=env, stdout=subprocess.PIPE, stderr=errors, text=True,
    )  # fmt: skip
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout=300)
    try:
        assert first, (tmp_path / "stderr.txt").read_text()
        assert first[0], (tmp_path / "stderr.txt").read_text()
        started = json.loads(first[0])
        assert set(started) == {
            "home", "router", "router_pid", "model_server", "model_server_pid", "admin_key",
        }  # fmt: skip
        models = httpx.get(
            f"{started['router']}/v1/models", headers={"x-api-key": started["admin_key"]}
        )
        assert models.status_code == 200
        assert [m["name"] for m in models.json()["models"]] == ["digits"]
        assert httpx.get(f"{started['model_server']}/ping").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=90)
        errors.close()
    assert code == 0
    rest = proc.stdout.read() if proc.stdout else ""
    assert rest.strip() == "", rest  # nothing but the JSON line on stdout
