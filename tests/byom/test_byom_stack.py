"""Bring your own model, end to end on loopback: a scikit-learn pipeline converted by skl2onnx
and a user's two-input torch module (INT64 token ids, dynamic sequence length) each go
``modelway package`` → ``modelway publish`` → the real router and model server (child
processes, as ``modelway up`` runs them) with a scoped key, in JSON and binary requests, and
``modelway batch submit``; every answer is compared with the original framework's."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import httpx
import numpy as np
import pytest

from tests.byom.byom_testkit import IRIS_CLASSES, IrisFiles
from tests.stack_testkit import Caller, local_stack, run_cli

pytestmark = pytest.mark.integration

STRUCT = {"FP32": "f", "INT64": "q"}
NUMPY = {"FP32": np.float32, "INT64": np.int64}


@pytest.fixture(scope="module")
def stack(
    iris: IrisFiles,
    ranker: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
    free_port: Callable[[], int],
) -> Iterator[Caller]:
    home = tmp_path_factory.mktemp("byom-home")
    packaged = run_cli(
        "package", iris.onnx, "--name", "iris", "--samples", iris.samples,
        "--expected", iris.expected, "--scores", "probabilities",
        "--labels", ",".join(IRIS_CLASSES), "--out", home / "iris-build",
    )  # fmt: skip
    artifacts = [packaged["artifact"], ranker["summary"]["artifact"]]
    with local_stack(home=home, free_port=free_port, artifacts=artifacts) as running:
        yield running.caller("iris", "ranker")


def _json_tensors(inputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "datatype": "INT64" if array.dtype == np.int64 else "FP32",
            "shape": list(array.shape),
            "data": array.ravel().tolist(),
        }
        for name, array in inputs.items()
    ]


def _outputs(outputs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {
        o["name"]: np.array(o["data"], dtype=NUMPY[o["datatype"]]).reshape(o["shape"])
        for o in outputs
    }


def _json_infer(stack: Caller, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    body = {"inputs": _json_tensors(inputs)}
    response = httpx.post(
        f"{stack.router}/v2/models/{model}/infer",
        json=body,
        headers={"x-api-key": stack.key},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-model-version"] == "1"
    return _outputs(response.json()["outputs"])


def _binary_infer(
    stack: Caller, model: str, inputs: dict[str, np.ndarray], outputs: list[str]
) -> dict[str, np.ndarray]:
    """The binary tensor extension both ways: inputs as raw little-endian bytes after the JSON
    header, outputs asked for as binary too."""
    header: dict[str, Any] = {"inputs": [], "outputs": []}
    payload = b""
    for name, array in inputs.items():
        datatype = "INT64" if array.dtype == np.int64 else "FP32"
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header["inputs"].append(
            {"name": name, "datatype": datatype, "shape": list(array.shape),
             "parameters": {"binary_data_size": len(data)}}
        )  # fmt: skip
        payload += data
    header["outputs"] = [{"name": n, "parameters": {"binary_data": True}} for n in outputs]
    head = json.dumps(header).encode()
    response = httpx.post(
        f"{stack.router}/v2/models/{model}/infer",
        content=head + payload,
        headers={
            "x-api-key": stack.key,
            "inference-header-content-length": str(len(head)),
            "content-type": "application/octet-stream",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    size = int(response.headers["inference-header-content-length"])
    answer = json.loads(response.content[:size])
    offset, results = size, {}
    for output in answer["outputs"]:
        length = output["parameters"]["binary_data_size"]
        count = int(np.prod(output["shape"]))
        values = struct.unpack_from(
            f"<{count}{STRUCT[output['datatype']]}", response.content, offset
        )
        results[output["name"]] = np.array(values, dtype=NUMPY[output["datatype"]]).reshape(
            output["shape"]
        )
        offset += length
    assert offset == len(response.content)
    return results


def _ranker_reference(token_ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    import torch
    import user_ranker  # type: ignore[import-not-found]

    with torch.no_grad():
        out = user_ranker.build()(torch.from_numpy(token_ids), torch.from_numpy(mask))
    return {name: value.numpy() for name, value in out.items()}


def _tokens(rows: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(1, 500, size=(rows, length), dtype=np.int64)
    mask = np.ones((rows, length), dtype=np.float32)
    mask[0, length // 2 :] = 0.0
    token_ids[0, length // 2 :] = 0
    return token_ids, mask


# scikit-learn via skl2onnx --------------------------------------------------------------------
def test_iris_json_matches_scikit_learn(stack: Caller, iris: IrisFiles) -> None:
    rows = iris.features[1::7]
    got = _json_infer(stack, "iris", {"X": rows})
    np.testing.assert_array_equal(got["label"], iris.classifier.predict(rows))
    np.testing.assert_allclose(got["probabilities"], iris.classifier.predict_proba(rows), atol=1e-5)


def test_iris_binary_matches_scikit_learn(stack: Caller, iris: IrisFiles) -> None:
    rows = iris.features[2::9]
    got = _binary_infer(stack, "iris", {"X": rows}, ["label", "probabilities"])
    np.testing.assert_array_equal(got["label"], iris.classifier.predict(rows))
    np.testing.assert_allclose(got["probabilities"], iris.classifier.predict_proba(rows), atol=1e-5)


def test_iris_metadata_is_the_graph_signature(stack: Caller) -> None:
    meta = httpx.get(
        f"{stack.router}/v2/models/iris", headers={"x-api-key": stack.key}, timeout=10
    ).json()
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        ("X", "FP32", [-1, 4])
    ]
    assert {t["name"] for t in meta["outputs"]} == {"label", "probabilities"}


def test_iris_batch_scoring_csv_matches_scikit_learn(
    stack: Caller, iris: IrisFiles, tmp_path: Path
) -> None:
    rows = iris.features
    source = tmp_path / "flowers.csv"
    lines = ["sepal_length,sepal_width,petal_length,petal_width"]
    lines += [",".join(repr(float(v)) for v in row) for row in rows]
    source.write_text("\n".join(lines) + "\n")

    job = run_cli("batch", "submit", source, "--model", "iris")

    assert (job["status"], job["records"], job["ok"], job["errors"]) == ("succeeded", 150, 150, 0)
    results = [json.loads(line) for line in _read_uri(job["output_uri"]).splitlines()]
    assert [r["record"] for r in results] == list(range(1, 151))
    labels = [next(o for o in r["outputs"] if o["name"] == "label")["data"][0] for r in results]
    probabilities = [
        next(o for o in r["outputs"] if o["name"] == "probabilities")["data"] for r in results
    ]
    np.testing.assert_array_equal(labels, iris.classifier.predict(rows))
    np.testing.assert_allclose(probabilities, iris.classifier.predict_proba(rows), atol=1e-5)


# A user's torch module: INT64 token ids + FP32 mask, dynamic sequence length ---------------
@pytest.mark.parametrize("length", [3, 11, 40])
def test_ranker_json_matches_eager_torch_at_any_length(stack: Caller, length: int) -> None:
    token_ids, mask = _tokens(4, length, seed=length)
    got = _json_infer(stack, "ranker", {"token_ids": token_ids, "attention_mask": mask})
    want = _ranker_reference(token_ids, mask)
    assert set(got) == {"logits", "embedding"}
    for name in ("logits", "embedding"):
        np.testing.assert_allclose(got[name], want[name], atol=1e-5)


def test_ranker_refuses_a_sequence_over_its_bound_before_the_model(stack: Caller) -> None:
    token_ids, mask = _tokens(1, 65, seed=2)  # packaged with --max-length sequence=64
    body = {"inputs": _json_tensors({"token_ids": token_ids, "attention_mask": mask})}
    response = httpx.post(
        f"{stack.router}/v2/models/ranker/infer", json=body, headers={"x-api-key": stack.key}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_tensor"
    assert "64" in response.json()["error"]


def test_ranker_binary_matches_eager_torch(stack: Caller) -> None:
    token_ids, mask = _tokens(3, 17, seed=5)
    got = _binary_infer(
        stack, "ranker", {"token_ids": token_ids, "attention_mask": mask}, ["logits"]
    )
    assert set(got) == {"logits"}
    np.testing.assert_allclose(
        got["logits"], _ranker_reference(token_ids, mask)["logits"], atol=1e-5
    )


def test_ranker_refuses_float_token_ids_before_the_model(stack: Caller) -> None:
    token_ids, mask = _tokens(2, 5, seed=1)
    body = {
        "inputs": [
            {"name": "token_ids", "datatype": "FP32", "shape": [2, 5],
             "data": token_ids.astype(np.float32).ravel().tolist()},
            {"name": "attention_mask", "datatype": "FP32", "shape": [2, 5],
             "data": mask.ravel().tolist()},
        ]
    }  # fmt: skip
    response = httpx.post(
        f"{stack.router}/v2/models/ranker/infer", json=body, headers={"x-api-key": stack.key}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_tensor"


def test_ranker_batch_scoring_jsonl_matches_eager_torch(stack: Caller, tmp_path: Path) -> None:
    """One v2 request per line, each its own sequence length; one record is bad."""
    requests, references = [], []
    for index, length in enumerate([4, 9, 2, 13, 6]):
        token_ids, mask = _tokens(1, length, seed=100 + index)
        inputs = {"token_ids": token_ids, "attention_mask": mask}
        requests.append(json.dumps({"inputs": _json_tensors(inputs)}))
        references.append(_ranker_reference(token_ids, mask))
    bad = json.loads(requests[0])
    bad["inputs"][1]["shape"] = [1, 3]  # the mask no longer matches its data
    requests.insert(2, json.dumps(bad))
    source = tmp_path / "queries.jsonl"
    source.write_text("\n".join(requests) + "\n")

    job = run_cli("batch", "submit", source, "--model", "ranker")

    assert (job["status"], job["records"], job["ok"], job["errors"]) == ("partial", 6, 5, 1)
    results = [json.loads(line) for line in _read_uri(job["output_uri"]).splitlines()]
    assert [r["record"] for r in results] == [1, 2, 4, 5, 6]
    for result, want in zip(results, references, strict=True):
        got = {
            o["name"]: np.array(o["data"], np.float32).reshape(o["shape"])
            for o in result["outputs"]
        }
        np.testing.assert_allclose(got["logits"], want["logits"], atol=1e-5)
        np.testing.assert_allclose(got["embedding"], want["embedding"], atol=1e-5)
    (error,) = [json.loads(line) for line in _read_uri(job["errors_uri"]).splitlines()]
    assert error["record"] == 3


def _read_uri(uri: str) -> str:
    parsed = urlparse(uri)
    assert parsed.scheme == "file", uri
    return Path(url2pathname(parsed.path)).read_text()
