"""Test kit for the model server: tiny ONNX models built with onnx.helper, packaged as modelway
artifacts, request builders, and uvicorn on a free loopback port.

(The real digits artifact may come from tests/model_build; these tests do not depend on it.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import uvicorn
from onnx import TensorProto, helper, numpy_helper

from tests.artifact_testkit import write_tar

OPSET = 17


def _save(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def classifier_weights(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((64, 10)).astype(np.float32),
        rng.standard_normal(10).astype(np.float32),
    )


def classifier_onnx(seed: int) -> bytes:
    """The demo model's signature: input FP32 [-1,1,8,8] -> logits FP32 [-1,10], label INT64
    [-1]. A linear layer: logits = flatten(x) @ W + b, label = argmax(logits)."""
    weight, bias = classifier_weights(seed)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["mm"]),
            helper.make_node("Add", ["mm", "B"], ["logits"]),
            helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
        ],
        "classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        ],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )
    return _save(graph)


def expected_logits(x: np.ndarray, seed: int) -> np.ndarray:
    weight, bias = classifier_weights(seed)
    return x.reshape(len(x), 64).astype(np.float32) @ weight + bias


CLASSIFIER_SIGNATURE = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
    "outputs": [
        {"name": "logits", "datatype": "FP32", "shape": [-1, 10]},
        {"name": "label", "datatype": "INT64", "shape": [-1]},
    ],
}


def doubler_onnx() -> bytes:
    """x FP32 [-1,-1] -> y = 2x: a second dynamic axis, to test that batches never mix it."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        "doubler",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "D"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "D"])],
        initializer=[numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")],
    )
    return _save(graph)


DOUBLER_SIGNATURE = {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, -1]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, -1]}],
}


def manifest_for(
    model_bytes: bytes, *, name: str, version: int | None, signature: dict[str, Any]
) -> dict[str, Any]:
    return {
        "format_version": 1,
        "name": name,
        "version": version,
        "model_file": "model.onnx",
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "signature": signature,
        "frameworks": {"onnx": onnx.__version__},
    }


def package(
    dest: Path,
    model_bytes: bytes,
    *,
    name: str,
    version: int | None,
    signature: dict[str, Any],
    manifest: dict[str, Any] | None = None,
) -> Path:
    """Write ``dest`` (a model.tar.gz) with model.onnx and modelway.json at the root."""
    doc = manifest or manifest_for(model_bytes, name=name, version=version, signature=signature)
    return write_tar(
        dest, {"model.onnx": model_bytes, "modelway.json": json.dumps(doc).encode("utf-8")}
    )


def publish_classifier(artifacts_dir: Path, *, model: str, version: int, seed: int) -> Path:
    """The local artifact store's layout: {dir}/{model}/{version}/model.tar.gz."""
    return package(
        artifacts_dir / model / str(version) / "model.tar.gz",
        classifier_onnx(seed),
        name=model,
        version=version,
        signature=CLASSIFIER_SIGNATURE,
    )


def infer_body(x: np.ndarray, **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(x.shape),
                "data": x.ravel().tolist(),
            }
        ],
        **extra,
    }


def binary_body(tensors: list[tuple[str, str, np.ndarray]], **extra: Any) -> tuple[bytes, int]:
    """(body, json header length) in the binary tensor extension."""
    header = {
        "inputs": [
            {
                "name": name,
                "datatype": datatype,
                "shape": list(arr.shape),
                "parameters": {"binary_data_size": arr.nbytes},
            }
            for name, datatype, arr in tensors
        ],
        **extra,
    }
    raw = json.dumps(header).encode()
    return raw + b"".join(arr.tobytes() for _, _, arr in tensors), len(raw)


def split_binary_response(body: bytes, json_length: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    header = json.loads(body[:json_length])
    chunks: dict[str, bytes] = {}
    offset = json_length
    for out in header["outputs"]:
        size = out.get("parameters", {}).get("binary_data_size")
        if size is not None:
            chunks[out["name"]] = body[offset : offset + size]
            offset += size
    assert offset == len(body)
    return header, chunks


def wait_for(predicate: Any, *, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll until true; a bound on waiting, not an assertion about speed."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@contextmanager
def running_server(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on a free 127.0.0.1 port, in a thread."""
    # IPPROTO_TCP so asyncio sets TCP_NODELAY (see serving.__main__._bind).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_keep_alive=75)
    )

    def run() -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits(3) when startup fails
            server.run(sockets=[sock])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), what="uvicorn to start")
        if not server.started:
            raise RuntimeError("uvicorn failed to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


# Words in, label (BYTES) and label id (INT64) out: a real text graph (ONNX-ML LabelEncoder),
# for the BYTES path end to end. Unknown words are "unknown" / -1.
WORDS = {"good": ("positive", 1), "bad": ("negative", 0), "日本": ("ニュートラル", 2)}


def words_onnx() -> bytes:
    words = list(WORDS)
    ids = [WORDS[w][1] for w in words]
    graph = helper.make_graph(
        [
            helper.make_node(
                "LabelEncoder", ["text"], ["label_id"], domain="ai.onnx.ml",
                keys_strings=words, values_int64s=ids, default_int64=-1,
            ),
            helper.make_node(
                "LabelEncoder", ["label_id"], ["label"], domain="ai.onnx.ml",
                keys_int64s=ids, values_strings=[WORDS[w][0] for w in words],
                default_string="unknown",
            ),
        ],
        "words",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["N"])],
        [
            helper.make_tensor_value_info("label", TensorProto.STRING, ["N"]),
            helper.make_tensor_value_info("label_id", TensorProto.INT64, ["N"]),
        ],
    )  # fmt: skip
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 2)],
    )
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def runtime_client(url: str) -> Any:
    """boto3's ``sagemaker-runtime`` against a model server on loopback, as the router builds
    it, with no retries: each test sees the first answer."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
