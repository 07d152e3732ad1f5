"""Text in, end to end on loopback: a scikit-learn TF-IDF classifier converted by skl2onnx
(its graph takes strings: a BYTES input) and a Hugging Face encoder directory packaged with
``modelway package --hf`` (the tokenizer runs in the model server) each go package → publish →
the real router and model server with a scoped key, in JSON and binary requests, and batch
scoring; answers are compared with scikit-learn and eager ``transformers``."""

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

from tests.byom.byom_testkit import ReviewFiles, make_reviews
from tests.stack_testkit import Caller, local_stack, run_cli

pytestmark = pytest.mark.integration

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "le café est fermé le dimanche",
    "numbers like 42 appear too 🙂",
]


@pytest.fixture(scope="module")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> ReviewFiles:
    return make_reviews(tmp_path_factory.mktemp("reviews"))


@pytest.fixture(scope="module")
def stack(
    reviews: ReviewFiles,
    tiny_bert_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    free_port: Callable[[], int],
) -> Iterator[Caller]:
    home = tmp_path_factory.mktemp("text-home")
    hf_args = ["--task", "feature-extraction", "--name", "encoder", "--out", home / "encoder"]
    built = [
        run_cli("package", reviews.onnx, "--name", "reviews", "--out", home / "reviews"),
        run_cli("package", "--hf", tiny_bert_dir, *hf_args),
    ]
    assert built[0]["signature"]["inputs"] == ["text BYTES [-1, 1]"]
    artifacts = [summary["artifact"] for summary in built]
    with local_stack(home=home, free_port=free_port, artifacts=artifacts) as running:
        yield running.caller("reviews", "encoder", name="t")


def _post(stack: Caller, model: str, **kwargs: Any) -> httpx.Response:
    response = httpx.post(
        f"{stack.router}/v2/models/{model}/infer",
        headers={"x-api-key": stack.key, **kwargs.pop("headers", {})},
        timeout=30,
        **kwargs,
    )
    assert response.status_code == 200, response.text
    return response


def _strings_binary(texts: list[str]) -> bytes:
    """BYTES in the binary extension: each element a 4-byte little-endian length + UTF-8."""
    return b"".join(struct.pack("<I", len(text.encode())) + text.encode() for text in texts)


def _binary_request(
    stack: Caller, model: str, name: str, texts: list[str], shape: list[int], outputs: list[str]
) -> dict[str, np.ndarray]:
    data = _strings_binary(texts)
    head = json.dumps(
        {
            "inputs": [{"name": name, "datatype": "BYTES", "shape": shape,
                        "parameters": {"binary_data_size": len(data)}}],
            "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in outputs],
        }
    ).encode()  # fmt: skip
    response = _post(
        stack,
        model,
        content=head + data,
        headers={
            "inference-header-content-length": str(len(head)),
            "content-type": "application/octet-stream",
        },
    )
    size = int(response.headers["inference-header-content-length"])
    answer = json.loads(response.content[:size])
    offset, results = size, {}
    for output in answer["outputs"]:
        assert output["datatype"] in ("FP32", "INT64"), output
        code = "f" if output["datatype"] == "FP32" else "q"
        count = int(np.prod(output["shape"]))
        values = struct.unpack_from(f"<{count}{code}", response.content, offset)
        results[output["name"]] = np.array(values).reshape(output["shape"])
        offset += output["parameters"]["binary_data_size"]
    return results


def _read_uri(uri: str) -> str:
    parsed = urlparse(uri)
    assert parsed.scheme == "file", uri
    return Path(url2pathname(parsed.path)).read_text()


# A BYTES input the user's own exporter made --------------------------------------------------
def test_reviews_json_strings_match_scikit_learn(stack: Caller, reviews: ReviewFiles) -> None:
    texts = ["great food, lovely staff", "cold and rude", "wonderful view"]
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3, 1], "data": texts}]}
    outputs = {o["name"]: o for o in _post(stack, "reviews", json=body).json()["outputs"]}
    assert outputs["label"]["data"] == reviews.classifier.predict(texts).tolist()
    np.testing.assert_allclose(
        np.array(outputs["probabilities"]["data"]).reshape(3, 2),
        reviews.classifier.predict_proba(texts),
        atol=1e-5,
    )


def test_reviews_binary_strings_match_scikit_learn(stack: Caller, reviews: ReviewFiles) -> None:
    texts = ["awful coffee", "a great place, we will come again"]
    got = _binary_request(stack, "reviews", "text", texts, [2, 1], ["probabilities"])
    np.testing.assert_allclose(
        got["probabilities"], reviews.classifier.predict_proba(texts), atol=1e-5
    )


def test_reviews_batch_scoring_jsonl_of_strings(
    stack: Caller, reviews: ReviewFiles, tmp_path: Path
) -> None:
    texts = ["rude waiter", "lovely wine", "cold soup", "great desserts"]
    source = tmp_path / "reviews.jsonl"
    source.write_text("\n".join(json.dumps([text]) for text in texts) + "\n")

    job = run_cli("batch", "submit", source, "--model", "reviews")

    assert (job["status"], job["ok"], job["errors"]) == ("succeeded", 4, 0)
    results = [json.loads(line) for line in _read_uri(job["output_uri"]).splitlines()]
    labels = [next(o for o in r["outputs"] if o["name"] == "label")["data"][0] for r in results]
    assert labels == reviews.classifier.predict(texts).tolist()


# A Hugging Face directory: text in, embedding out -------------------------------------------
def _reference_embeddings(directory: Path, texts: list[str]) -> np.ndarray:
    """What a team computes in eager transformers: mean pooling over the attention mask,
    L2-normalised."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    model = AutoModel.from_pretrained(str(directory)).eval()
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def test_encoder_json_text_matches_eager_transformers(stack: Caller, tiny_bert_dir: Path) -> None:
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3], "data": SENTENCES}]}
    (output,) = _post(stack, "encoder", json=body).json()["outputs"]
    got = np.array(output["data"], np.float32).reshape(output["shape"])
    want = _reference_embeddings(tiny_bert_dir, SENTENCES)
    assert got.shape == want.shape
    cosine = (got * want).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine


def test_encoder_binary_text_matches_eager_transformers(stack: Caller, tiny_bert_dir: Path) -> None:
    meta = httpx.get(
        f"{stack.router}/v2/models/encoder", headers={"x-api-key": stack.key}, timeout=10
    ).json()
    (text_input,) = meta["inputs"]
    (embedding,) = meta["outputs"]
    got = _binary_request(
        stack, "encoder", text_input["name"], SENTENCES[:2], [2], [embedding["name"]]
    )[embedding["name"]]
    want = _reference_embeddings(tiny_bert_dir, SENTENCES[:2])
    assert ((got * want).sum(axis=1)).min() >= 0.9999


def test_encoder_batch_scoring_jsonl_of_strings(
    stack: Caller, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "sentences.jsonl"
    source.write_text("\n".join(json.dumps([text]) for text in SENTENCES) + "\n")

    job = run_cli("batch", "submit", source, "--model", "encoder")

    assert (job["status"], job["ok"], job["errors"]) == ("succeeded", 3, 0)
    results = [json.loads(line) for line in _read_uri(job["output_uri"]).splitlines()]
    got = np.array([r["outputs"][0]["data"] for r in results], np.float32).reshape(3, -1)
    want = _reference_embeddings(tiny_bert_dir, SENTENCES)
    assert ((got * want).sum(axis=1)).min() >= 0.9999


def test_reviews_batch_scoring_csv_text_column(
    stack: Caller, reviews: ReviewFiles, tmp_path: Path
) -> None:
    texts = ["rude waiter, cold soup", 'a "great" evening', "lovely wine"]
    source = tmp_path / "reviews.csv"
    source.write_text("review\n" + "".join('"' + text.replace('"', '""') + '"\n' for text in texts))

    job = run_cli("batch", "submit", source, "--model", "reviews")

    assert (job["status"], job["ok"], job["errors"]) == ("succeeded", 3, 0), job
    results = [json.loads(line) for line in _read_uri(job["output_uri"]).splitlines()]
    probabilities = [
        next(o for o in r["outputs"] if o["name"] == "probabilities")["data"] for r in results
    ]
    np.testing.assert_allclose(probabilities, reviews.classifier.predict_proba(texts), atol=1e-5)
