"""``modelway up`` heals like SageMaker does: a model server that dies is restarted (the router
answers 503 + Retry-After meanwhile), a crash loop is reported and stops the stack, and
Ctrl-C/SIGTERM let every accepted request finish first."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.up_testkit import Up, launch, stop
from tests.stack_testkit import run_cli

pytestmark = pytest.mark.integration

PIXELS = [0.0] * 64


@pytest.fixture
def home(digits_artifact: Path, modelway_home: Path) -> Path:
    """A state directory with digits version 1 published, so ``up`` starts without building."""
    run_cli("publish", digits_artifact)
    return modelway_home


def infer_body() -> bytes:
    tensor = {"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": PIXELS}
    return json.dumps({"inputs": [tensor]}).encode()


def serving_pid(up: Up) -> int:
    return int(up.value(r"model server\s+\S+ \(pid (\d+)"))


class Load:
    """Clients sending inferences back to back, recording every outcome."""

    def __init__(self, url: str, key: str, *, clients: int = 4) -> None:
        self.url = f"{url}/v2/models/digits/infer"
        self.key = key
        self.outcomes: list[tuple[float, int | str, str | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self) -> None:
        headers = {"x-api-key": self.key, "content-type": "application/json"}
        with httpx.Client(timeout=35) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(self.url, content=infer_body(), headers=headers)
                    outcome: tuple[float, int | str, str | None] = (
                        time.monotonic(), r.status_code, r.headers.get("retry-after")
                    )  # fmt: skip
                except httpx.HTTPError as exc:
                    outcome = (time.monotonic(), type(exc).__name__, None)
                self.outcomes.append(outcome)
                time.sleep(0.01)

    def statuses(self, since: float = 0.0) -> Counter[int | str]:
        return Counter(status for at, status, _ in self.outcomes if at >= since)


def test_a_killed_model_server_is_restarted_and_the_router_answers_503_meanwhile(
    home: Path, free_port: Callable[[], int]
) -> None:
    up = launch(home, free_port(), free_port())
    try:
        router = up.value(r"router\s+(\S+)")
        key = up.value(r"admin key\s+(\S+)")
        pid = serving_pid(up)
        with Load(router, key) as load:
            time.sleep(0.5)
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            up.wait_for(
                r"model server \(pid \d+\) exited \(killed by SIGKILL\); restarting", timeout=10
            )
            back = up.wait_for(r"the model server is back \(pid (\d+)\)", timeout=60)
            assert int(back.group(1)) != pid
            time.sleep(1.0)
        assert up.proc.poll() is None, up.output  # the stack is still up
        during = load.statuses(since=killed_at)
        # While it was down: 503s only, every one with Retry-After; never a broken connection.
        assert set(during) <= {200, 503}, during
        assert during[503] > 0, during
        assert all(ra is not None for _, status, ra in load.outcomes if status == 503)
        # And it serves again.
        last = [status for _, status, _ in load.outcomes[-8:]]
        assert last.count(200) == len(last), load.outcomes[-8:]
    finally:
        assert stop(up.proc) == 0, up.output


def test_a_crash_loop_is_reported_and_stops_the_stack(
    home: Path, free_port: Callable[[], int]
) -> None:
    serving_port = free_port()
    up = launch(home, free_port(), serving_port, "--max-restarts", "2")
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        os.kill(serving_pid(up), signal.SIGKILL)
        # Something else takes the port: every restart now fails at once.
        deadline = time.monotonic() + 5
        while True:
            try:
                squatter.bind(("127.0.0.1", serving_port))
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        squatter.listen(1)
        assert up.proc.wait(timeout=60) == 1
        output = up.output
        assert output.count("restarting it in") == 2, output
        assert "the model server keeps dying: restarted 2 times" in output
        assert "giving up" in output
    finally:
        squatter.close()
        if up.proc.poll() is None:
            up.proc.kill()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stopping_finishes_the_requests_in_flight(
    home: Path, free_port: Callable[[], int], signum: int
) -> None:
    port = free_port()
    up = launch(home, port, free_port())
    key = up.value(r"admin key\s+(\S+)")
    body = infer_body()
    head = (
        f"POST /v2/models/digits/infer HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"x-api-key: {key}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        # The router has accepted the request and is reading its body when the stop comes.
        client.sendall(head + body[:20])
        time.sleep(0.5)
        up.proc.send_signal(signum)
        up.wait_for(r"Stopping: finishing the requests in flight", timeout=10)
        time.sleep(1.0)
        client.sendall(body[20:])
        response = b""
        while chunk := client.recv(65536):
            response += chunk
    status_line = response.split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 200 OK", response
    assert up.proc.wait(timeout=60) == 0
    # And the router stopped taking new ones.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v2/health/live", timeout=2)
