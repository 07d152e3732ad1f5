"""Batch scoring waits for a slow model as long as SageMaker lets a model answer, where the
router would give up to stay inside API Gateway's deadline: a micro-batch of a real
transformer can take longer than the router's read timeout on a small machine."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from functions.core.backends import Backends
from functions.core.exceptions import UpstreamTimeout
from functions.core.settings import Settings

ANSWER_AFTER_S = 1.5
ANSWER = {"outputs": [{"name": "y", "datatype": "FP32", "shape": [1], "data": [1.0]}]}


class _SlowModel(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(ANSWER_AFTER_S)
        body = json.dumps(ANSWER).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_model_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowModel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_batch_waits_for_a_model_the_router_would_give_up_on(
    slow_model_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        env="local",
        home=tmp_path,
        serving_url=slow_model_url,
        runtime_read_timeout_seconds=0.5,
        runtime_max_attempts=1,
        batch_runtime_read_timeout_seconds=10,
    )
    backends = Backends.from_settings(settings)
    body = json.dumps({"inputs": []}).encode()
    call = {"endpoint": "modelway-local-toy", "variant": None, "body": body,
            "content_type": "application/json"}  # fmt: skip

    with pytest.raises(UpstreamTimeout):
        backends.runtime.invoke(**call)  # type: ignore[arg-type]
    answer = backends.batch_runtime.invoke(**call)  # type: ignore[arg-type]
    assert json.loads(answer.body) == ANSWER
