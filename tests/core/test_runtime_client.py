"""The runtime client over real boto3 and real HTTP, against a stub that answers the way the
local model server (and SageMaker) do: how each failure reaches the router."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from functions.core.exceptions import (
    InvalidInput,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from functions.core.runtime.base import JSON
from functions.core.runtime.sagemaker import SageMakerRuntimeClient


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (the timeout tests) closes the socket before a late answer:
        # expected here, so no traceback on the worker's stderr.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Stub:
    """A SageMaker-runtime-shaped server: the endpoint name in the path picks the answer."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.seen: list[dict[str, Any]] = []
        self.release = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                endpoint = self.path.split("/")[2]
                stub.hits[endpoint] = stub.hits.get(endpoint, 0) + 1
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stub.seen.append(
                    {
                        "path": self.path,
                        "variant": self.headers.get("X-Amzn-SageMaker-Target-Variant"),
                        "component": self.headers.get("X-Amzn-SageMaker-Inference-Component"),
                        "content_type": self.headers.get("Content-Type"),
                        "custom_attributes": self.headers.get("X-Amzn-SageMaker-Custom-Attributes"),
                        "authorization": self.headers.get("Authorization"),
                        "body": body,
                    }
                )
                stub.answer(self, endpoint, body)

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def answer(self, h: BaseHTTPRequestHandler, endpoint: str, body: bytes) -> None:
        if endpoint == "ok":
            variant = h.headers.get("X-Amzn-SageMaker-Target-Variant") or "v1"
            send(h, 200, {"echo": body.decode()}, {"x-Amzn-Invoked-Production-Variant": variant})
        elif endpoint == "bad-input":
            original = json.dumps(
                {"error": "input 'x' has shape [3], expected [-1, 4]", "code": "invalid_shape"}
            )
            send_error(
                h,
                424,
                "ModelError",
                {
                    "message": "Received client error (400) from model",
                    "OriginalStatusCode": 400,
                    "OriginalMessage": original,
                },
            )
        elif endpoint == "bad-input-text":
            send_error(
                h,
                424,
                "ModelError",
                {
                    "message": "Received client error (400) from model",
                    "OriginalStatusCode": 400,
                    "OriginalMessage": "plain text complaint",
                },
            )
        elif endpoint == "crash":
            send_error(
                h,
                424,
                "ModelError",
                {
                    "message": "Received server error (500) from model",
                    "OriginalStatusCode": 500,
                    "OriginalMessage": json.dumps({"error": "CUDA out of memory", "code": "oom"}),
                },
            )
        elif endpoint in ("dropped", "overloaded"):
            status = 504 if endpoint == "dropped" else 503
            code = "model_timeout" if endpoint == "dropped" else "overloaded"
            send_error(
                h,
                424,
                "ModelError",
                {
                    "message": f"Received server error ({status}) from model",
                    "OriginalStatusCode": status,
                    "OriginalMessage": json.dumps({"error": "too late", "code": code}),
                },
            )
        elif endpoint == "missing":
            send_error(
                h, 400, "ValidationError", {"message": "Endpoint missing of account 123 not found."}
            )
        elif endpoint == "cold":
            # SageMaker's answer for an inference component at zero copies.
            send_error(
                h,
                400,
                "ValidationError",
                {
                    "message": "Inference Component has no capacity to process this request. "
                    "ApplicationAutoScaling may be in-progress (if configured) or try to "
                    "increase the capacity by invoking UpdateInferenceComponentRuntimeConfig API."
                },
            )
        elif endpoint == "busy":
            send_error(h, 503, "ServiceUnavailable", {"message": "model is loading"})
        elif endpoint == "throttled":
            send_error(h, 400, "ThrottlingException", {"message": "Rate exceeded"})
        elif endpoint == "internal":
            send_error(h, 500, "InternalFailure", {"message": "boom"})
        elif endpoint == "slow":
            self.release.wait(10)
            send(h, 200, {"late": True}, {})
        elif endpoint == "cut":
            # A model server killed mid-answer: headers promise a body that never arrives.
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", "1000")
            h.end_headers()
            h.wfile.write(b'{"outputs": [')
            h.wfile.flush()
            h.close_connection = True

    def __enter__(self) -> Stub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def send(
    h: BaseHTTPRequestHandler, status: int, doc: dict[str, Any], headers: dict[str, str]
) -> None:
    data = json.dumps(doc).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    for name, value in headers.items():
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(data)


def send_error(
    h: BaseHTTPRequestHandler, status: int, error_type: str, doc: dict[str, Any]
) -> None:
    send(h, status, doc, {"x-amzn-ErrorType": error_type})


@pytest.fixture
def stub() -> Iterator[Stub]:
    with Stub() as server:
        yield server


def client_for(
    url: str, *, read_timeout: float = 5.0, max_attempts: int = 1
) -> SageMakerRuntimeClient:
    return SageMakerRuntimeClient(
        endpoint_url=url,
        region=None,
        connect_timeout=1.0,
        read_timeout=read_timeout,
        max_attempts=max_attempts,
    )


@pytest.fixture(autouse=True)
def no_aws_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local client must need no AWS configuration at all."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_a_request_reaches_the_variant_and_the_answer_names_it(stub: Stub) -> None:
    response = client_for(stub.url).invoke(
        endpoint="ok", variant="v7", body=b'{"inputs": []}', content_type=JSON
    )

    assert json.loads(response.body) == {"echo": '{"inputs": []}'}
    assert response.variant == "v7"
    assert response.content_type == "application/json"
    assert stub.seen[0]["path"] == "/endpoints/ok/invocations"
    assert stub.seen[0]["variant"] == "v7"
    assert stub.seen[0]["content_type"] == JSON


def test_no_variant_lets_the_endpoint_choose(stub: Stub) -> None:
    response = client_for(stub.url).invoke(
        endpoint="ok", variant=None, body=b"{}", content_type=JSON
    )
    assert stub.seen[0]["variant"] is None
    assert response.variant == "v1"


def test_with_inference_components_the_version_is_called_by_its_component_name(
    stub: Stub,
) -> None:
    client = SageMakerRuntimeClient(
        endpoint_url=stub.url,
        region=None,
        connect_timeout=1.0,
        read_timeout=2.0,
        max_attempts=1,
        components=True,
    )
    client.invoke(endpoint="ok", variant="v7", body=b"{}", content_type=JSON)

    assert stub.seen[0]["component"] == "ok-v7"
    assert stub.seen[0]["variant"] is None


def test_a_component_at_zero_copies_is_a_503_asking_to_retry_in_a_minute(stub: Stub) -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        client_for(stub.url, max_attempts=3).invoke(
            endpoint="cold", variant="v2", body=b"{}", content_type=JSON
        )
    assert caught.value.status == 503
    assert caught.value.retry_after == 60
    assert "starting a copy" in caught.value.message
    assert stub.hits["cold"] == 1  # not retried at once: a copy takes minutes


def test_the_models_own_4xx_is_passed_through_with_its_message_and_code(stub: Stub) -> None:
    with pytest.raises(InvalidInput) as caught:
        client_for(stub.url).invoke(
            endpoint="bad-input", variant="v1", body=b"{}", content_type=JSON
        )
    assert caught.value.message == "input 'x' has shape [3], expected [-1, 4]"
    assert caught.value.code == "invalid_shape"
    assert caught.value.status == 422


def test_a_4xx_without_a_json_body_keeps_the_models_text(stub: Stub) -> None:
    with pytest.raises(InvalidInput) as caught:
        client_for(stub.url).invoke(
            endpoint="bad-input-text", variant="v1", body=b"{}", content_type=JSON
        )
    assert caught.value.message == "plain text complaint"
    assert caught.value.code == "invalid_tensor"


def test_a_model_crash_is_a_502_and_is_not_retried(stub: Stub) -> None:
    with pytest.raises(UpstreamError) as caught:
        client_for(stub.url, max_attempts=3).invoke(
            endpoint="crash", variant="v1", body=b"{}", content_type=JSON
        )
    assert caught.value.status == 502
    assert "CUDA out of memory" in caught.value.message
    assert stub.hits["crash"] == 1


def test_an_unknown_endpoint_or_variant_is_a_503(stub: Stub) -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        client_for(stub.url).invoke(endpoint="missing", variant="v9", body=b"{}", content_type=JSON)
    assert caught.value.status == 503
    assert "missing/v9" in caught.value.message


@pytest.mark.parametrize("endpoint", ["busy", "throttled"])
def test_busy_or_throttled_is_a_503_with_retry_after_after_capped_retries(
    stub: Stub, endpoint: str
) -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        client_for(stub.url, max_attempts=2).invoke(
            endpoint=endpoint, variant="v1", body=b"{}", content_type=JSON
        )
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0
    # Retried, but no more than max_attempts in total.
    assert stub.hits[endpoint] == 2


def test_an_internal_failure_is_a_502(stub: Stub) -> None:
    with pytest.raises(UpstreamError):
        client_for(stub.url).invoke(
            endpoint="internal", variant="v1", body=b"{}", content_type=JSON
        )


def test_nothing_listening_is_a_503_with_retry_after() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The port is closed again: connections are refused.
    with pytest.raises(UpstreamUnavailable) as caught:
        client_for(f"http://127.0.0.1:{port}").invoke(
            endpoint="ok", variant="v1", body=b"{}", content_type=JSON
        )
    assert caught.value.status == 503
    assert caught.value.retry_after


def test_an_answer_cut_off_mid_body_is_a_503_with_retry_after(stub: Stub) -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        client_for(stub.url).invoke(endpoint="cut", variant="v1", body=b"{}", content_type=JSON)
    assert caught.value.status == 503
    assert caught.value.retry_after


def test_a_slow_model_is_a_504(stub: Stub) -> None:
    with pytest.raises(UpstreamTimeout) as caught:
        client_for(stub.url, read_timeout=0.3).invoke(
            endpoint="slow", variant="v1", body=b"{}", content_type=JSON
        )
    assert caught.value.status == 504


def test_the_boto3_client_is_built_once_and_lazily() -> None:
    client = client_for("http://127.0.0.1:9")
    assert client._client is None
    assert client.client is client.client


def test_the_deadline_travels_as_custom_attributes(stub: Stub) -> None:
    client = client_for(stub.url)
    client.invoke(
        endpoint="ok", variant="v1", body=b"{}", content_type=JSON, deadline=time.time() + 2.5
    )
    client.invoke(endpoint="ok", variant="v1", body=b"{}", content_type=JSON)
    sent, unsent = stub.seen
    name, _, value = sent["custom_attributes"].partition("=")
    assert name == "timeout-ms"
    assert 2000 < int(value) <= 2500
    assert unsent["custom_attributes"] is None


def test_a_deadline_already_past_is_a_504_without_a_call(stub: Stub) -> None:
    with pytest.raises(UpstreamTimeout):
        client_for(stub.url).invoke(
            endpoint="ok", variant="v1", body=b"{}", content_type=JSON, deadline=time.time() - 1
        )
    assert stub.seen == []


def test_the_model_servers_504_and_503_keep_their_meaning(stub: Stub) -> None:
    with pytest.raises(UpstreamTimeout) as late:
        client_for(stub.url).invoke(endpoint="dropped", variant="v1", body=b"{}", content_type=JSON)
    assert (late.value.status, late.value.code) == (504, "model_timeout")
    with pytest.raises(UpstreamUnavailable) as busy:
        client_for(stub.url).invoke(
            endpoint="overloaded", variant="v1", body=b"{}", content_type=JSON
        )
    assert busy.value.status == 503
    assert busy.value.retry_after


def test_the_local_model_server_gets_unsigned_requests_aws_gets_sigv4(stub: Stub) -> None:
    """The model server checks no signature, so the local client spends nothing on SigV4;
    the AWS client (here pointed at the stub) signs every call, as SageMaker requires."""
    from functions.core.backends import make_runtime_client
    from functions.core.settings import Settings

    local = make_runtime_client(Settings(env="local", serving_url=stub.url))
    aws = make_runtime_client(
        Settings(env="dev", region="us-east-1", runtime_endpoint_url=stub.url)
    )
    for client in (local, aws):
        client.invoke(endpoint="ok", variant="v1", body=b'{"inputs": []}', content_type=JSON)
    local_call, aws_call = stub.seen
    assert local_call["authorization"] is None
    assert str(aws_call["authorization"]).startswith("AWS4-HMAC-SHA256 Credential=local/")


def test_a_model_server_that_stops_answering_cannot_hold_a_request_past_its_deadline(
    stub: Stub,
) -> None:
    """The usual client would wait 2 x 5 s; a request with 0.8 s left gives up in time."""
    client = client_for(stub.url, read_timeout=5.0, max_attempts=2)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        client.invoke(
            endpoint="slow", variant="v1", body=b"{}", content_type=JSON, deadline=time.time() + 0.8
        )
    assert time.monotonic() - started < 2.0
    assert stub.hits["slow"] == 1  # one attempt: no time for a second
    # A deadline the usual client's worst case fits in uses the usual client.
    assert client._client_within(30.0) is client.client
    assert client._client_within(0.8) is client._client_within(0.9)  # one per timeout
