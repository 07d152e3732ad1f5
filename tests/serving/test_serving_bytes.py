"""Text (BYTES) models: what ``package`` and ``publish`` accept, the model server loads and runs,
with BYTES in and out, as JSON strings and as the binary extension's length-prefixed elements.

(Before the shared signature module, such an artifact published and then failed to load:
"unsupported datatype 'BYTES'".)
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from functions.core import oip
from model_build.package import package_onnx
from model_build.verify import verify_artifact
from serving.app import create_hosting_app
from serving.config import ServingConfig
from tests.serving.serving_testkit import WORDS, running_server, split_binary_response, words_onnx

TEXTS = ["good", "bad", "日本", "neither", ""]
LABELS = [WORDS[t][0] if t in WORDS else "unknown" for t in TEXTS]
IDS = [WORDS[t][1] if t in WORDS else -1 for t in TEXTS]


@pytest.fixture(scope="module")
def words_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("words")
    (root / "words.onnx").write_bytes(words_onnx())
    result = package_onnx(root / "words.onnx", name="words", out_dir=root / "out")
    return Path(result.artifact)


@pytest.fixture(scope="module")
def client(words_artifact: Path) -> Iterator[httpx.Client]:
    app = create_hosting_app(model_dir=words_artifact.parent, config=ServingConfig(ort_threads=1))
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def test_a_bytes_model_publishes_with_the_signature_the_server_serves(
    words_artifact: Path, client: httpx.Client
) -> None:
    manifest = verify_artifact(path=words_artifact)  # what `modelway publish` runs
    assert [(t.name, t.datatype) for t in manifest.signature.inputs] == [("text", "BYTES")]
    assert client.get("/ping").status_code == 200  # and it loaded


def test_json_strings_in_and_out(client: httpx.Client) -> None:
    request = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [5], "data": TEXTS}]}
    response = client.post("/invocations", json=request)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["label"] == {"name": "label", "datatype": "BYTES", "shape": [5], "data": LABELS}
    assert outputs["label_id"]["data"] == IDS


def test_binary_strings_in_and_out(client: httpx.Client) -> None:
    encoded = oip.encode_request(
        inputs=[
            oip.OutputTensor(name="text", datatype="BYTES", shape=(5,), values=TEXTS, binary=True)
        ],
        binary_output=True,
    )
    assert encoded.json_length is not None
    response = client.post(
        "/invocations",
        content=encoded.body,
        headers={"Inference-Header-Content-Length": str(encoded.json_length)},
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    header, chunks = split_binary_response(response.content, length)
    # BYTES on the wire: a 4-byte little-endian length before each UTF-8 element.
    label, position = [], 0
    while position < len(chunks["label"]):
        (size,) = struct.unpack_from("<I", chunks["label"], position)
        label.append(chunks["label"][position + 4 : position + 4 + size].decode())
        position += 4 + size
    assert label == LABELS
    assert list(struct.unpack("<5q", chunks["label_id"])) == IDS
    decoded = oip.decode_response(response.content, json_length=length)
    assert decoded.output("label").values == LABELS  # type: ignore[union-attr]
    assert json.loads(response.content[:length])["outputs"][0]["datatype"] == "BYTES"
    assert header["model_name"] == "words"


def test_bad_text_is_refused_like_the_router_refuses_it(client: httpx.Client) -> None:
    numbers = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [7]}]}
    response = client.post("/invocations", json=numbers)
    assert response.status_code == 422
    assert response.json() == {
        "error": "input 'text': BYTES data must be strings, got 7",
        "code": "invalid_tensor",
    }
    assert client.post("/invocations", json={"inputs": [
        {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["good"]}
    ]}).status_code == 200  # fmt: skip
