"""The router on its AWS backend, over real HTTP on loopback.

- "DynamoDB", "S3" and "API Gateway" are moto's threaded server: the router's boto3 clients
  reach it through the standard ``AWS_ENDPOINT_URL_<SERVICE>`` variables.
- The SageMaker runtime is the local model server (``python -m serving local``), reached
  through ``MODELWAY_RUNTIME_ENDPOINT_URL``. It serves what is on disk under its artifacts
  directory, so after each publish the test fetches the artifact from "S3" into it — what a
  SageMaker Model does with its ``ModelDataUrl`` (``MODELWAY_SAGEMAKER_DEPLOY=false``: moto's
  SageMaker would not run anything).
- The router is ``functions.api.app:app_from_environment`` under uvicorn in its own process with
  ``MODELWAY_ENV=dev``, driven with httpx as a client would: publish, alias, canary split,
  rollback, history, retire, key rotation and revocation.

The model is real: a tiny ONNX graph ``y = k * x`` built here, so every answer says by its
numbers which version computed it, as well as by ``x-model-version``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.artifact_testkit import write_tar

pytestmark = pytest.mark.integration

REGION = "us-east-1"
TABLE = "modelway-wire"
BUCKET = "modelway-wire-data"
PREFIX = "modelway-wire"
MODEL = "scale"
REPO = Path(__file__).resolve().parents[2]
# Only for processes to come up; no assertion is timed.
STARTUP_DEADLINE_S = 60


def scale_artifact(dest: Path, *, factor: float) -> Path:
    """A publishable ``model.tar.gz``: an ONNX graph computing ``y = factor * x`` (x: [-1, 4])
    and a manifest that matches it."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["y"])],
        "scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[helper.make_tensor("k", TensorProto.FLOAT, [], [factor])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    model_bytes = model.SerializeToString()
    manifest = {
        "format_version": 1,
        "name": MODEL,
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "signature": {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}],
        },
        "frameworks": {"onnx": onnx.__version__},
        "parity": {
            "samples": 4,
            "max_abs_diff": 0.0,
            "argmax_agreement": 1.0,
            "tolerance": 1e-6,
            "passed": True,
        },
        "description": f"y = {factor} * x",
    }
    return write_tar(
        dest, {"modelway.json": json.dumps(manifest).encode(), "model.onnx": model_bytes}
    )


@dataclass
class Wire:
    router: str
    admin: str  # an admin key's secret
    usage_plan: str
    artifacts_dir: Path
    work: Path

    def post(self, path: str, body: Any = None, *, key: str | None = None) -> httpx.Response:
        return httpx.post(f"{self.router}{path}", json=body, headers=_auth(key or self.admin))

    def put(self, path: str, body: Any, *, key: str | None = None) -> httpx.Response:
        return httpx.put(f"{self.router}{path}", json=body, headers=_auth(key or self.admin))

    def get(self, path: str, *, key: str | None = None) -> httpx.Response:
        return httpx.get(f"{self.router}{path}", headers=_auth(key or self.admin))

    def delete(self, path: str, *, key: str | None = None) -> httpx.Response:
        return httpx.delete(f"{self.router}{path}", headers=_auth(key or self.admin))

    def publish(self, *, factor: float, alias: str | None) -> httpx.Response:
        """Upload an artifact to the data bucket and register it through the admin API."""
        upload = f"uploads/{MODEL}-{factor}.tar.gz"
        artifact = scale_artifact(self.work / f"{MODEL}-{factor}.tar.gz", factor=factor)
        boto3.client("s3", region_name=REGION).upload_file(str(artifact), BUCKET, upload)
        return self.post(f"/v1/models/{MODEL}/versions", {"artifact_key": upload, "alias": alias})

    def serve(self, version: int) -> None:
        """Put a published version where the model server looks, from its S3 artifact."""
        from functions.core.artifacts.s3 import S3ArtifactStore

        S3ArtifactStore(bucket=BUCKET, artifacts_prefix="artifacts/", region=REGION).fetch_artifact(
            model=MODEL,
            version=version,
            dest=self.artifacts_dir / MODEL / str(version) / "model.tar.gz",
        )

    def infer(self, *, key: str | None = None, path: str = "") -> httpx.Response:
        body = {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]
        }
        return self.post(f"/v2/models/{MODEL}{path}/infer", body, key=key)

    def plan_key_values(self) -> set[str]:
        client = boto3.client("apigateway", region_name=REGION)
        items = client.get_usage_plan_keys(usagePlanId=self.usage_plan)["items"]
        return {client.get_api_key(apiKey=item["id"], includeValue=True)["value"] for item in items}


def metered(secret: str) -> str:
    """The value of the API Gateway key that meters ``secret``'s calls."""
    from functions.core.auth import hash_secret
    from functions.core.keys import usage_key_value

    return usage_key_value(hash_secret(secret))


def _auth(key: str) -> dict[str, str]:
    return {"x-api-key": key}


def answered_by(response: httpx.Response) -> int:
    """The version that answered, checked against what the numbers say it computed."""
    assert response.status_code == 200, response.text
    version = int(response.headers["x-model-version"])
    (output,) = response.json()["outputs"]
    factor = output["data"][0]  # y = k * x with x[0] = 1
    assert output["data"] == [factor * x for x in (1, 2, 3, 4)]
    assert factor == version  # version N was published with k = N
    return version


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the router exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]) -> Iterator[Wire]:
    from moto.server import ThreadedMotoServer

    work = tmp_path_factory.mktemp("wire")
    artifacts_dir = work / "served-artifacts"
    artifacts_dir.mkdir()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    aws_env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
        "AWS_ENDPOINT_URL_S3": moto_url,
        "AWS_ENDPOINT_URL_API_GATEWAY": moto_url,
    }
    mp = pytest.MonkeyPatch()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        mp.delenv(name, raising=False)
    for name, value in aws_env.items():
        mp.setenv(name, value)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        from functions.core import keys
        from functions.core.gateway import ApiGatewayKeys
        from functions.core.registry.dynamodb import DynamoDBRegistry, create_table

        # What the stack would have created.
        create_table(table_name=TABLE, region=REGION)
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        usage_plan = boto3.client("apigateway", region_name=REGION).create_usage_plan(
            name=f"{PREFIX}-plan"
        )["id"]
        # The first admin key comes from outside the API (as `modelway keys create` does).
        _, admin = keys.create_key(
            registry=DynamoDBRegistry(table_name=TABLE, region=REGION),
            name="bootstrap-admin",
            models=["*"],
            admin=True,
            gateway=ApiGatewayKeys(usage_plan_id=usage_plan, region=REGION),
        )

        serving = subprocess.Popen(
            [
                sys.executable, "-m", "serving", "local",
                "--artifacts-dir", str(artifacts_dir),
                "--endpoint-prefix", PREFIX,
                "--host", "127.0.0.1", "--port", "0",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        processes.append(serving)
        assert serving.stdout is not None
        line = serving.stdout.readline().decode()
        assert "listening on" in line, line
        serving_url = line.strip().rsplit(" ", 1)[-1]

        router_port = free_port()
        router_env = {
            **os.environ,
            **aws_env,
            "MODELWAY_ENV": "dev",
            "MODELWAY_REGION": REGION,
            "MODELWAY_TABLE_NAME": TABLE,
            "MODELWAY_BUCKET_NAME": BUCKET,
            "MODELWAY_ENDPOINT_PREFIX": PREFIX,
            "MODELWAY_USAGE_PLAN_ID": usage_plan,
            "MODELWAY_RUNTIME_ENDPOINT_URL": serving_url,
            "MODELWAY_SAGEMAKER_DEPLOY": "false",
            # No caches: every change must show at the very next request.
            "MODELWAY_KEY_CACHE_TTL_SECONDS": "0",
            "MODELWAY_REGISTRY_CACHE_TTL_SECONDS": "0",
            "MODELWAY_HOME": str(work / "home"),
        }
        router = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "--factory",
                "functions.api.app:app_from_environment",
                "--host", "127.0.0.1", "--port", str(router_port), "--log-level", "warning",
            ],
            cwd=REPO,
            env=router_env,
        )  # fmt: skip
        processes.append(router)
        router_url = f"http://127.0.0.1:{router_port}"
        _wait_for(f"{router_url}/v2/health/live", router)
        yield Wire(
            router=router_url,
            admin=admin,
            usage_plan=str(usage_plan),
            artifacts_dir=artifacts_dir,
            work=work,
        )
    finally:
        for process in reversed(processes):
            _stop(process)
        mp.undo()
        moto.stop()


def test_publish_alias_canary_rollback_and_retire_over_the_wire(wire: Wire) -> None:
    # Publish v1: the model's first version gets the default alias.
    first = wire.publish(factor=1.0, alias="default")
    assert first.status_code == 201, first.text
    assert first.json()["version"] == 1
    wire.serve(1)
    assert answered_by(wire.infer()) == 1
    # Publishing the same file again names the existing version and creates nothing.
    again = wire.publish(factor=1.0, alias="default")
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 1

    # Publish v2 without moving any alias: pinned calls reach it, the alias still says v1.
    second = wire.publish(factor=2.0, alias=None)
    assert second.status_code == 201, second.text
    assert second.json()["version"] == 2
    wire.serve(2)
    assert answered_by(wire.infer(path="/versions/2")) == 2
    assert answered_by(wire.infer()) == 1

    # Canary: half the traffic to v2. Both versions answer, each with its own numbers.
    moved = wire.put(
        f"/v1/models/{MODEL}/aliases/default",
        {"version": 1, "canary_version": 2, "canary_weight": 50},
    )
    assert moved.status_code == 200, moved.text
    seen = {answered_by(wire.infer()) for _ in range(60)}
    assert seen == {1, 2}

    # Promote v2, then roll back in one step to the canary split.
    assert wire.put(f"/v1/models/{MODEL}/aliases/default", {"version": 2}).status_code == 200
    assert {answered_by(wire.infer()) for _ in range(10)} == {2}
    rolled = wire.post(f"/v1/models/{MODEL}/aliases/default/rollback")
    assert rolled.status_code == 200, rolled.text
    aliases = {a["alias"]: a for a in wire.get(f"/v1/models/{MODEL}/aliases").json()["aliases"]}
    assert aliases["default"]["version"] == 1
    assert aliases["default"]["canary_version"] == 2
    assert aliases["default"]["canary_weight"] == 50

    # A version an alias (or its canary) points at cannot be retired; once moved away, it can.
    refused = wire.delete(f"/v1/models/{MODEL}/versions/2")
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "version_in_use"
    assert wire.put(f"/v1/models/{MODEL}/aliases/default", {"version": 1}).status_code == 200
    retired = wire.delete(f"/v1/models/{MODEL}/versions/2")
    assert retired.status_code == 200, retired.text
    assert retired.json()["status"] == "retired"

    # Every move is in the history, with who made it.
    events = wire.get(f"/v1/models/{MODEL}/history?alias=default").json()["events"]
    assert len(events) == 5
    assert "bootstrap-admin" in json.dumps(events[-1])


def test_key_rotation_and_revocation_over_the_wire(wire: Wire) -> None:
    if wire.get(f"/v1/models/{MODEL}/versions").status_code == 404:
        assert wire.publish(factor=1.0, alias="default").status_code == 201
        wire.serve(1)
    created = wire.post("/v1/keys", {"name": "team-a", "models": [MODEL], "admin": False})
    assert created.status_code == 201, created.text
    key_id, old = created.json()["key_id"], created.json()["secret"]
    # The key is an API Gateway key on the usage plan, its value derived from the stored
    # hash (what the authorizer names as usageIdentifierKey), never the secret.
    assert metered(old) in wire.plan_key_values()
    assert old not in wire.plan_key_values()
    assert wire.infer(key=old).status_code == 200
    # Not an admin key: the control plane refuses it.
    assert wire.get("/v1/models", key=old).status_code == 403

    rotated = wire.post(f"/v1/keys/{key_id}/rotate")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert rotated.json()["key_id"] == key_id
    stale = wire.infer(key=old)
    assert stale.status_code == 401, stale.text
    assert set(stale.json()) == {"error", "code"}
    assert wire.infer(key=new).status_code == 200
    plan = wire.plan_key_values()
    assert metered(new) in plan
    assert metered(old) not in plan

    assert wire.delete(f"/v1/keys/{key_id}").status_code == 200
    assert wire.infer(key=new).status_code == 401
    assert metered(new) not in wire.plan_key_values()
