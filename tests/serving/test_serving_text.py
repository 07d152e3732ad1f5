"""Text models in the model server: the manifest's processing around the graph, and dynamic
batching of sentences of different lengths."""

from __future__ import annotations

import json
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from serving.batching import DynamicBatcher
from serving.config import ServingConfig
from serving.exceptions import ArtifactError
from serving.model import OnnxModel
from serving.processing import Processing

SHORT = "ok"
LONG = "the quick brown fox jumps over the lazy dog and all that glitters is not gold " * 6


@pytest.fixture(scope="module")
def text_model(tiny_text_artifact: Path):  # type: ignore[no-untyped-def]
    model = OnnxModel.from_source(tiny_text_artifact, config=ServingConfig(ort_threads=1))
    yield model
    model.close()


def test_text_in_unit_embedding_out(text_model):
    assert [t.name for t in text_model.signature.inputs] == ["text"]
    assert text_model.signature.inputs[0].datatype == "BYTES"
    texts = np.array([SHORT, LONG, "", "東京は日本の首都です 🙂"], dtype=object)
    outputs = text_model.predict({"text": texts}).result(timeout=30)
    assert list(outputs) == ["embedding"]
    embedding = outputs["embedding"]
    assert embedding.shape == (4, 32)
    assert embedding.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-6)
    # Different sentences, different embeddings (the tokenizer really ran).
    assert float(embedding[0] @ embedding[1]) < 0.9999


@pytest.mark.parametrize("length_buckets", [False, True], ids=["pad-to-longest", "buckets"])
def test_a_row_is_the_same_alone_and_in_a_batch_of_32_with_longer_neighbours(
    tiny_text_artifact, length_buckets
):
    """Requests of different lengths share one batch (padded to its longest, or to the
    longest of its length bucket); each row's embedding matches the one it gets alone,
    within the parity tolerance."""
    text_model = OnnxModel.from_source(
        tiny_text_artifact, config=ServingConfig(ort_threads=1, length_buckets=length_buckets)
    )
    rng = np.random.default_rng(7)
    words = LONG.split()
    sentences = [SHORT] + [
        " ".join(rng.choice(words, size=int(rng.integers(5, 60)))) for _ in range(31)
    ]
    alone = {
        s: text_model._run({"text": np.array([s], dtype=object)})["embedding"][0] for s in sentences
    }

    release = threading.Event()
    first = threading.Event()

    def run(inputs):  # type: ignore[no-untyped-def]
        if not first.is_set():  # hold the worker so the 32 requests queue up behind it
            first.set()
            release.wait(10)
        return text_model._run(inputs)

    batcher = DynamicBatcher(run=run, name="equivalence", max_batch_size=32)
    try:
        blocker = batcher.submit({"text": np.array(["warm"], dtype=object)})
        assert first.wait(10)
        futures = [batcher.submit({"text": np.array([s], dtype=object)}) for s in sentences]
        release.set()
        blocker.result(timeout=30)
        batched = [f.result(timeout=30)["embedding"][0] for f in futures]
    finally:
        batcher.close()
        text_model.close()
    assert batcher.stats.requests_per_run[32] == 1  # one run held all 32 requests
    for sentence, row in zip(sentences, batched, strict=True):
        expected = alone[sentence]
        assert float(row @ expected) >= 0.9999
        np.testing.assert_allclose(row, expected, atol=1e-5)


def test_classifier_returns_label_names_and_probabilities(tiny_classifier_build):
    model = OnnxModel.from_source(
        Path(tiny_classifier_build.artifact), config=ServingConfig(ort_threads=1)
    )
    try:
        outputs = model.predict({"text": np.array([SHORT, LONG], dtype=object)}).result(30)
    finally:
        model.close()
    probabilities = outputs["probabilities"]
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    labels = ["negative", "neutral", "positive"]
    assert list(outputs["label"]) == [labels[i] for i in probabilities.argmax(axis=1)]


def _repack(artifact: Path, dest: Path, **replace: bytes) -> Path:
    import io

    with tarfile.open(artifact) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    members.update(replace)
    with tarfile.open(dest, "w:gz") as out:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return dest


def test_a_swapped_tokenizer_does_not_load(tiny_text_artifact, tmp_path):
    bad = _repack(tiny_text_artifact, tmp_path / "model.tar.gz", **{"tokenizer.json": b"{}"})
    with pytest.raises(ArtifactError, match=r"tokenizer\.json sha256"):
        OnnxModel.from_source(bad, config=ServingConfig(ort_threads=1))


def test_processing_without_graph_signature_does_not_load(tiny_text_artifact, tmp_path):
    with tarfile.open(tiny_text_artifact) as tar:
        document = json.loads(tar.extractfile("modelway.json").read())  # type: ignore[union-attr]
    del document["graph_signature"]
    bad = _repack(
        tiny_text_artifact,
        tmp_path / "model.tar.gz",
        **{"modelway.json": json.dumps(document).encode()},
    )
    with pytest.raises(ArtifactError, match="graph_signature"):
        OnnxModel.from_source(bad, config=ServingConfig(ort_threads=1))


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("not an object", "must be an object"),
        ({"pre": []}, "exactly one tokenize step"),
        ({"pre": [{"op": "lowercase"}]}, "unknown pre op"),
        ({"pre": [{"op": "tokenize", "input": "text"}]}, "'file'"),
        (
            {
                "pre": [
                    {
                        "op": "tokenize",
                        "input": "text",
                        "file": "../tokenizer.json",
                        "sha256": "0" * 64,
                        "max_length": 16,
                        "pad_id": 0,
                        "pad_type_id": 0,
                        "input_ids": "input_ids",
                        "attention_mask": "attention_mask",
                    }
                ]
            },
            "bare name",
        ),
        (
            {
                "pre": [
                    {
                        "op": "tokenize",
                        "input": "text",
                        "file": "tokenizer.json",
                        "sha256": "0" * 64,
                        "max_length": 10**6,
                        "pad_id": 0,
                        "pad_type_id": 0,
                        "input_ids": "input_ids",
                        "attention_mask": "attention_mask",
                    }
                ]
            },
            "max_length",
        ),
    ],
)
def test_bad_processing_sections_are_refused_with_a_reason(section, message):
    with pytest.raises(ArtifactError, match=message):
        Processing.parse(section)


def test_unknown_post_op_is_refused():
    with pytest.raises(ArtifactError, match="unknown post op 'max_pool'"):
        Processing.parse(
            {
                "pre": [
                    {
                        "op": "tokenize",
                        "input": "text",
                        "file": "tokenizer.json",
                        "sha256": "0" * 64,
                        "max_length": 16,
                        "pad_id": 0,
                        "pad_type_id": 0,
                        "input_ids": "input_ids",
                        "attention_mask": "attention_mask",
                    }
                ],
                "post": [{"op": "max_pool", "input": "x", "output": "y"}],
            }
        )
