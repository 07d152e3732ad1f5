"""Text models on loopback, beside ``tests/byom/test_byom_text.py`` (an encoder through
``modelway package --hf``, JSON, binary and batch): what a client sees of a text model's
signature, refusals before the model, and a classifier's BYTES label out, answered and batch
scored, compared with eager ``transformers``. The real all-MiniLM-L6-v2 is in
``test_minilm.py``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import httpx
import numpy as np
import pytest

from tests.stack_testkit import Caller, local_stack, run_cli

pytestmark = pytest.mark.integration

SENTENCES = [
    "The cat sat on the mat.",
    "A much longer sentence that goes on and on, about nothing in particular, "
    "with commas, clauses and words enough to need many more tokens than the first.",
    "",
    "Le café est fermé le dimanche 🙂",
    "東京は日本の首都です。",
]


@pytest.fixture(scope="module")
def stack(
    tiny_text_artifact: Path,
    tiny_classifier_build,  # type: ignore[no-untyped-def]
    tmp_path_factory: pytest.TempPathFactory,
    free_port: Callable[[], int],
) -> Iterator[Caller]:
    home = tmp_path_factory.mktemp("text-home")
    artifacts = [tiny_text_artifact, tiny_classifier_build.artifact]
    with local_stack(home=home, free_port=free_port, artifacts=artifacts) as running:
        yield running.caller("tiny-text", "tiny-sentiment")


def reference(directory: Path, sentences: list[str], *, task: str = "feature-extraction"):  # type: ignore[no-untyped-def]
    from model_build.hf.source import read_source, reference_outputs

    return reference_outputs(read_source(directory, task=task), sentences)


def json_infer(router: str, key: str, model: str, sentences: list[str]) -> httpx.Response:
    body = {
        "inputs": [
            {"name": "text", "datatype": "BYTES", "shape": [len(sentences)], "data": sentences}
        ]
    }
    return httpx.post(
        f"{router}/v2/models/{model}/infer", json=body, headers={"x-api-key": key}, timeout=60
    )


def test_metadata_shows_the_client_signature_not_the_graph(stack: Caller):
    meta = httpx.get(
        f"{stack.router}/v2/models/tiny-text", headers={"x-api-key": stack.key}, timeout=10
    ).json()
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        ("text", "BYTES", [-1])
    ]
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["outputs"]] == [
        ("embedding", "FP32", [-1, 32])
    ]


def test_numbers_where_text_is_expected_are_refused_before_the_model(stack: Caller):
    body = {"inputs": [{"name": "text", "datatype": "INT64", "shape": [1], "data": [3]}]}
    response = httpx.post(
        f"{stack.router}/v2/models/tiny-text/infer",
        json=body,
        headers={"x-api-key": stack.key},
        timeout=30,
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_tensor"


def test_classifier_answers_label_names(stack: Caller, tiny_classifier_dir: Path):
    response = json_infer(stack.router, stack.key, "tiny-sentiment", SENTENCES[:3])
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["label"]["datatype"] == "BYTES"
    probabilities = np.array(outputs["probabilities"]["data"], np.float32).reshape(3, 3)
    want = reference(tiny_classifier_dir, SENTENCES[:3], task="text-classification")
    np.testing.assert_allclose(probabilities, want, atol=1e-5)
    labels = ["negative", "neutral", "positive"]
    assert outputs["label"]["data"] == [labels[i] for i in want.argmax(axis=1)]


def test_batch_scoring_labels_sentences_of_every_length(
    stack: Caller, tiny_classifier_dir: Path, tmp_path: Path
):
    """One v2 request per line, each a sentence of its own length; one line is not text.
    The label (a BYTES output) and the probabilities land in the results, in input order."""
    lines = [
        json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [s]}]})
        for s in SENTENCES
    ]
    lines.insert(1, json.dumps({"inputs": [{"name": "text", "datatype": "FP32", "shape": [1],
                                            "data": [1.0]}]}))  # fmt: skip
    source = tmp_path / "sentences.jsonl"
    source.write_text("\n".join(lines) + "\n")

    job = run_cli("batch", "submit", source, "--model", "tiny-sentiment")

    assert (job["status"], job["records"], job["ok"], job["errors"]) == (
        "partial",
        len(SENTENCES) + 1,
        len(SENTENCES),
        1,
    )
    results = [json.loads(line) for line in _read_uri(job["output_uri"]).splitlines()]
    assert [r["record"] for r in results] == [1, *range(3, len(SENTENCES) + 2)]
    want = reference(tiny_classifier_dir, SENTENCES, task="text-classification")
    got = np.array(
        [next(o for o in r["outputs"] if o["name"] == "probabilities")["data"] for r in results],
        dtype=np.float32,
    )
    np.testing.assert_allclose(got, want, atol=1e-5)
    labels = [next(o for o in r["outputs"] if o["name"] == "label")["data"][0] for r in results]
    assert labels == [["negative", "neutral", "positive"][i] for i in want.argmax(axis=1)]


def _read_uri(uri: str) -> str:
    parsed = urlparse(uri)
    assert parsed.scheme == "file", uri
    return Path(url2pathname(parsed.path)).read_text()
