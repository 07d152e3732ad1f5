"""The init phase (``functions.core.snapstart``): in a Lambda sandbox the router and the
authorizer build everything at import, priming touches no network, the X-Ray SDK is imported
only where tracing is on, and a SnapStart restore renews what sandboxes must not share."""

from __future__ import annotations

import http.server
import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from functions.core import keys
from functions.core.registry.base import ModelVersion
from functions.core.registry.dynamodb import DynamoDBRegistry
from functions.core.registry.sqlite import SqliteRegistry
from functions.core.runtime.sagemaker import SageMakerRuntimeClient
from tests.api.api_testkit import FakeClock, digit_request

REPO = Path(__file__).resolve().parents[2]


class _Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = b'{"ok": true}'
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serving_stub() -> Iterator[str]:
    """A loopback stand-in for the model server's runtime path."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _run(code: str, *, env: dict[str, str]) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter (imports are what is tested); it prints JSON."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


_ROUTER_PROBE = """
import json, sys
import snapshot_restore_py
from functions.api import handler
state = handler._adapter.app.state.modelway if handler._adapter else None
print(json.dumps({
    "built": handler._adapter is not None,
    "clients_built": state is not None and {"registry", "runtime"} <= state.backends.built,
    "boto3_client": state is not None and state.runtime._client is not None,
    "hooks": [f.__qualname__ for f, _, _ in snapshot_restore_py.get_after_restore()],
    "before": [f.__qualname__ for f, _, _ in snapshot_restore_py.get_before_snapshot()],
    "control_plane": sorted(
        m for m in ("functions.api.routes.admin", "functions.core.publishing",
                    "functions.core.deploy.rollout") if m in sys.modules
    ),
    "xray": "aws_xray_sdk" in sys.modules,
    "tracer": handler.tracer is not None,
    "frozen": __import__("gc").get_freeze_count() > 1000,
}))
"""


def test_in_a_lambda_sandbox_the_router_is_built_at_import(tmp_path: Path) -> None:
    answer = _run(
        _ROUTER_PROBE,
        env={
            "AWS_LAMBDA_FUNCTION_NAME": "modelway-test-api",
            "MODELWAY_HOME": str(tmp_path),
            # Nothing listens there: building and priming must not connect.
            "MODELWAY_SERVING_URL": "http://127.0.0.1:9",
        },
    )
    assert answer["built"]
    assert answer["clients_built"]
    assert answer["boto3_client"]
    assert answer["hooks"] == ["RouterState.renew"]
    assert answer["frozen"]  # the init phase's objects are out of the collector's way
    assert answer["before"] == ["ControlPlane.load"]
    # The data plane is ready; the control plane's modules wait for a /v1 request (or the
    # before-snapshot hook).
    assert answer["control_plane"] == []
    assert answer["xray"] is False
    assert answer["tracer"] is False


def test_outside_lambda_importing_the_handler_builds_nothing(tmp_path: Path) -> None:
    answer = _run(_ROUTER_PROBE, env={"MODELWAY_HOME": str(tmp_path)})
    assert answer["built"] is False
    assert answer["hooks"] == []
    assert answer["xray"] is False
    assert not (tmp_path / "registry.db").exists()


def test_where_tracing_is_on_the_tracer_and_the_xray_sdk_are_there(tmp_path: Path) -> None:
    answer = _run(
        _ROUTER_PROBE,
        env={
            "AWS_LAMBDA_FUNCTION_NAME": "modelway-test-api",
            "LAMBDA_TASK_ROOT": str(REPO),
            "MODELWAY_HOME": str(tmp_path),
            "MODELWAY_SERVING_URL": "http://127.0.0.1:9",
        },
    )
    assert answer["tracer"] is True
    assert answer["xray"] is True


def test_the_authorizer_primes_its_dynamodb_client_at_import() -> None:
    code = """
import json
from functions.authorizer import handler
from functions.core.backends import current
print(json.dumps({"client": current().registry._client._client is not None}))
"""
    answer = _run(
        code,
        env={
            "AWS_LAMBDA_FUNCTION_NAME": "modelway-test-authorizer",
            "MODELWAY_ENV": "dev",
            "MODELWAY_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            # Unroutable: a connection attempt would hang or fail, priming must not make one.
            "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9",
        },
    )
    assert answer == {"client": True}


def test_priming_makes_no_connection_and_the_client_still_works(
    serving_stub: str,
) -> None:
    closed = SageMakerRuntimeClient(
        endpoint_url="http://127.0.0.1:9",
        region=None,
        connect_timeout=0.5,
        read_timeout=1,
        max_attempts=1,
    )
    closed.prepare()  # would raise UpstreamUnavailable if it tried to connect
    live = SageMakerRuntimeClient(
        endpoint_url=serving_stub, region=None, connect_timeout=1, read_timeout=2, max_attempts=1
    )
    live.prepare()
    response = live.invoke(endpoint="e", variant="v1", body=b"{}", content_type="application/json")
    assert response.body == b'{"ok": true}'


def test_dynamodb_priming_makes_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    DynamoDBRegistry(table_name="t", region="us-east-1").prepare()


def test_after_a_restore_a_revoked_key_stops_at_once(
    client: TestClient,
    registry: SqliteRegistry,
    clock: FakeClock,
    digits_v1: ModelVersion,
    user_key: str,
) -> None:
    """A key cached before the snapshot must not outlive its revocation in every sandbox
    restored from it (their monotonic clocks do not continue the snapshot's)."""
    url, headers = "/v2/models/digits/infer", {"x-api-key": user_key}
    assert client.post(url, json=digit_request(), headers=headers).status_code == 200
    key = keys.authenticate(registry=registry, secret=user_key)
    registry.revoke_key(key_id=key.key_id)
    # Cached: still accepted within the TTL (the documented window) ...
    assert client.post(url, json=digit_request(), headers=headers).status_code == 200
    state = client.app.state.modelway  # type: ignore[attr-defined]
    state.renew()
    # ... but a restored sandbox starts with empty caches.
    response = client.post(url, json=digit_request(), headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "key_revoked"


def test_after_a_restore_the_canary_rng_is_reseeded(client: TestClient) -> None:
    state = client.app.state.modelway  # type: ignore[attr-defined]
    snapshot = random.Random()
    snapshot.setstate(state.rng.getstate())
    state.renew()
    # Two sandboxes restored from one snapshot would otherwise draw the same sequence.
    assert [state.rng.random() for _ in range(4)] != [snapshot.random() for _ in range(4)]


def test_the_control_plane_loads_on_its_first_request(
    app: FastAPI, admin_key: str, digits_v1: ModelVersion
) -> None:
    control_plane = app.state.control_plane
    client = TestClient(app)  # the ``client`` fixture reads the OpenAPI document: it loads
    assert not control_plane.loaded
    assert client.get("/v2/health/live").status_code == 200
    assert not control_plane.loaded
    response = client.get("/v1/models", headers={"x-api-key": admin_key})
    assert response.status_code == 200
    assert [m["name"] for m in response.json()["models"]] == ["digits"]
    assert control_plane.loaded
    # Unknown /v1 paths and wrong methods answer as they always did.
    missing = client.get("/v1/nothing-here", headers={"x-api-key": admin_key})
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert client.post("/v1/models", headers={"x-api-key": admin_key}).status_code == 405


def test_before_the_control_plane_loads_a_405_still_names_its_methods(
    client: TestClient, admin_key: str
) -> None:
    """The Allow header comes from the OpenAPI document, which loads the control plane."""
    response = client.put("/v2/health/live")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert "/v1/models" in client.get("/openapi.json").json()["paths"]


def test_a_failed_priming_does_not_fail_the_init_phase(caplog: pytest.LogCaptureFixture) -> None:
    """Priming only saves the first event some work; a client it cannot prime (no
    credentials to sign with, here) still comes up and says why."""
    client = SageMakerRuntimeClient(
        endpoint_url=None, region="us-east-1", connect_timeout=1, read_timeout=1, max_attempts=1
    )
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        mp.setenv("AWS_CONFIG_FILE", "/nonexistent")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        # The client comes from boto3's default session, which keeps the credentials it
        # resolved first: an earlier test's would sign the priming call.
        mp.setattr("boto3.DEFAULT_SESSION", None)
        client.prepare()
    assert client.client is not None
    assert "priming InvokeEndpoint failed" in caplog.text
