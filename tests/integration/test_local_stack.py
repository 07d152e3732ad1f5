"""The whole local request path on loopback: real model, real model server, real router.

One stack per module (model server + router as child processes, as ``modelway up`` runs
them), driven over HTTP exactly as a client would; a test that breaks a stack (a damaged
version, a stopped model server) gets one of its own, so every test passes alone and in any
order.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from cli.up import LocalStack
from tests.stack_testkit import local_stack

pytestmark = pytest.mark.integration


@dataclass
class Stack:
    router: str
    serving: str
    endpoint: str
    admin: str
    digits_only: str
    other_only: str
    home: Path
    local: LocalStack


def infer_body(pixels: list[float], *, batch: int = 1) -> dict[str, object]:
    return {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [batch, 1, 8, 8], "data": pixels}]
    }


@contextmanager
def running_stack(artifact: Path, home: Path, free_port: Callable[[], int]) -> Iterator[Stack]:
    """A stack of its own in ``home``: ``artifact`` published as digits v1 (alias default),
    three keys, model server and router started; stopped, and the environment put back, on
    exit."""
    # No key cache: a key revoked mid-run must stop at the next request.
    env = {"MODELWAY_KEY_CACHE_TTL_SECONDS": "0", "MODELWAY_REGISTRY_CACHE_TTL_SECONDS": "0"}
    with local_stack(home=home, free_port=free_port, artifacts=[artifact], env=env) as running:
        yield Stack(
            router=running.router,
            serving=running.serving,
            endpoint=running.endpoint("digits"),
            admin=running.key("*", name="admin", admin=True),
            digits_only=running.key("digits", name="d"),
            other_only=running.key("other", name="o"),
            home=home,
            local=running.local,
        )


@pytest.fixture(scope="module")
def stack(
    digits_artifact: Path,
    tmp_path_factory: pytest.TempPathFactory,
    free_port: Callable[[], int],
) -> Iterator[Stack]:
    """One stack the module's tests share: they only read from it (or add what no other
    test looks at), so they pass alone and in any order."""
    with running_stack(digits_artifact, tmp_path_factory.mktemp("stack-home"), free_port) as it:
        yield it


@pytest.fixture
def own_stack(
    digits_artifact: Path, tmp_path: Path, free_port: Callable[[], int]
) -> Iterator[Stack]:
    """A stack for one test that damages it (a broken version, a stopped model server)."""
    with running_stack(digits_artifact, tmp_path / "stack-home", free_port) as it:
        yield it


@pytest.fixture(scope="module")
def samples() -> list[tuple[list[float], int]]:
    from model_build.digits import load_sample

    return [load_sample(index=i) for i in range(20)]


def post_infer(stack: Stack, body: object, *, key: str | None, path: str = "") -> httpx.Response:
    headers = {"x-api-key": key} if key else {}
    url = f"{stack.router}/v2/models/digits{path}/infer"
    if isinstance(body, bytes | str):
        return httpx.post(url, content=body, headers=headers, timeout=30)
    return httpx.post(url, json=body, headers=headers, timeout=30)


def label_of(response: httpx.Response) -> list[int]:
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    return [int(v) for v in outputs["label"]["data"]]


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"error", "code"}, payload
    assert payload["error"]
    if code is not None:
        assert payload["code"] == code, payload


def test_health_needs_no_key(stack: Stack) -> None:
    assert httpx.get(f"{stack.router}/v2/health/live").status_code == 200
    assert httpx.get(f"{stack.router}/v2/health/ready").status_code == 200


def test_classifies_held_out_digits_over_http(
    stack: Stack, samples: list[tuple[list[float], int]]
) -> None:
    right = 0
    for pixels, label in samples:
        response = post_infer(stack, infer_body(pixels), key=stack.digits_only)
        assert response.status_code == 200, response.text
        assert response.headers["x-model-version"] == "1"
        right += label_of(response) == [label]
    assert right >= 19  # the model is >95% accurate on the held-out split


def test_batch_request_and_pinned_version(
    stack: Stack, samples: list[tuple[list[float], int]]
) -> None:
    pixels = [p for sample, _ in samples[:4] for p in sample]
    response = post_infer(stack, infer_body(pixels, batch=4), key=stack.admin, path="/versions/1")
    assert response.status_code == 200, response.text
    assert response.headers["x-model-version"] == "1"
    assert label_of(response) == [label for _, label in samples[:4]]


def test_model_and_version_metadata(stack: Stack) -> None:
    headers = {"x-api-key": stack.digits_only}
    model = httpx.get(f"{stack.router}/v2/models/digits", headers=headers).json()
    assert model["name"] == "digits"
    assert {t["name"] for t in model["inputs"]} == {"input"}
    ready = httpx.get(f"{stack.router}/v2/models/digits/versions/1/ready", headers=headers)
    assert ready.status_code == 200


def test_boto3_sagemaker_runtime_against_the_model_server(
    stack: Stack, samples: list[tuple[list[float], int]]
) -> None:
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=stack.serving,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    pixels, label = samples[0]
    answer = client.invoke_endpoint(
        EndpointName=stack.endpoint,
        TargetVariant="v1",
        ContentType="application/json",
        Body=json.dumps(infer_body(pixels)),
    )
    assert answer["InvokedProductionVariant"] == "v1"
    outputs = {o["name"]: o for o in json.loads(answer["Body"].read())["outputs"]}
    assert outputs["label"]["data"] == [label]

    with pytest.raises(ClientError) as missing:
        client.invoke_endpoint(
            EndpointName=stack.endpoint, TargetVariant="v99",
            ContentType="application/json", Body=json.dumps(infer_body(pixels)),
        )  # fmt: skip
    assert missing.value.response["Error"]["Code"] == "ValidationError"


@pytest.mark.parametrize(
    ("key_attr", "status", "code"),
    [(None, 401, None), ("bogus", 401, None), ("other_only", 403, None)],
)
def test_keys_are_checked(
    stack: Stack, samples: list[tuple[list[float], int]], key_attr: str | None, status: int,
    code: str | None,
) -> None:  # fmt: skip
    key = None if key_attr is None else getattr(stack, key_attr, "mw_key_000_not-a-real-key")
    assert_error(post_infer(stack, infer_body(samples[0][0]), key=key), status, code)


def test_a_request_is_traced_through_router_and_model_server(
    stack: Stack, samples: list[tuple[list[float], int]]
) -> None:
    """The client's id comes back; Server-Timing splits the router's phases and the model
    server's queue and compute (reported through SageMaker's custom attributes)."""
    pixels, _ = samples[0]
    response = httpx.post(
        f"{stack.router}/v2/models/digits/infer",
        json=infer_body(pixels),
        headers={"x-api-key": stack.digits_only, "x-request-id": "trace-it-7"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-it-7"
    phases = [item.strip().split(";")[0] for item in response.headers["server-timing"].split(",")]
    assert phases == [
        "receive",
        "auth",
        "resolve",
        "validate",
        "runtime",
        "queue",
        "compute",
        "total",
    ]


def test_unknown_model_and_version(stack: Stack, samples: list[tuple[list[float], int]]) -> None:
    body = infer_body(samples[0][0])
    response = httpx.post(
        f"{stack.router}/v2/models/nope/infer", json=body, headers={"x-api-key": stack.admin}
    )
    assert_error(response, 404)
    assert_error(post_infer(stack, body, key=stack.admin, path="/versions/7"), 404)


def bad_bodies(pixels: list[float]) -> list[tuple[object, int]]:
    good = infer_body(pixels)["inputs"][0]  # type: ignore[index]
    return [
        (b"", 400),
        (b"{not json", 400),
        (b"[1, 2, 3]", 400),
        ({"inputs": [{**good, "name": "image"}]}, 422),
        ({"inputs": [{**good, "datatype": "INT8"}]}, 422),
        ({"inputs": [{**good, "shape": [1, 64]}]}, 422),
        ({"inputs": [{**good, "data": pixels[:10]}]}, 422),
        ({"inputs": [{**good, "data": ["a"] * 64}]}, 422),
        ({"inputs": []}, 422),
    ]


def test_bad_tensors_are_refused_before_dispatch(
    stack: Stack, samples: list[tuple[list[float], int]]
) -> None:
    for body, status in bad_bodies(samples[0][0]):
        response = post_infer(stack, body, key=stack.admin)
        assert response.status_code in (400, 422), (body, response.text)
        assert_error(response, response.status_code)
        if status == 400:
            assert response.status_code == 400, (body, response.text)


def test_payload_over_the_limit(stack: Stack) -> None:
    huge = b'{"inputs": [' + b" " * (7 * 1024 * 1024) + b"]}"
    assert_error(post_infer(stack, huge, key=stack.admin), 413)


def test_a_key_revoked_mid_run_stops_working(
    stack: Stack, samples: list[tuple[list[float], int]]
) -> None:
    from functions.core import keys
    from functions.core.backends import make_registry
    from functions.core.settings import Settings

    registry = make_registry(Settings(home=stack.home))
    key, secret = keys.create_key(registry=registry, name="temp", models=["*"], admin=False)
    body = infer_body(samples[0][0])
    assert post_infer(stack, body, key=secret).status_code == 200
    keys.revoke_key(registry=registry, key_id=key.key_id)
    assert_error(post_infer(stack, body, key=secret), 401)


def test_a_version_the_model_server_cannot_load_is_502(
    own_stack: Stack, samples: list[tuple[list[float], int]]
) -> None:
    """The artifact on disk is damaged after publishing: the model server fails to load it
    (a SageMaker ModelError), the router says 502, and the good version still answers."""
    from dataclasses import replace

    from functions.core.backends import make_registry
    from functions.core.settings import Settings

    registry = make_registry(Settings(home=own_stack.home))
    good = registry.get_version(model="digits", version=1)
    number = registry.next_version(model="digits")
    damaged = own_stack.home / "artifacts" / "digits" / str(number) / "model.tar.gz"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not a gzip file")
    registry.register_version(
        version=replace(
            good,
            version=number,
            sha256="0" * 64,
            artifact_uri=damaged.as_uri(),
            variant_name=f"v{number}",
        )
    )
    body = infer_body(samples[0][0])
    response = post_infer(own_stack, body, key=own_stack.admin, path=f"/versions/{number}")
    assert_error(response, 502, "model_error")
    assert response.headers["x-model-version"] == str(number)
    assert post_infer(own_stack, body, key=own_stack.admin).status_code == 200


def test_model_server_down_is_503(own_stack: Stack, samples: list[tuple[list[float], int]]) -> None:
    """The model server stops under a running router: 503 with a Retry-After."""
    serving = own_stack.local.processes[0]
    serving.send_signal(signal.SIGINT)
    serving.wait(timeout=10)
    response = post_infer(own_stack, infer_body(samples[0][0]), key=own_stack.admin)
    assert_error(response, 503)
    assert "retry-after" in response.headers
