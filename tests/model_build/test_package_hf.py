"""``package_hf``: a local Hugging Face directory -> a text-in artifact, gated on parity."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from functions.core.exceptions import InvalidArtifact
from model_build.exceptions import ParityFailed
from model_build.hf import HfModelError, package_hf
from model_build.hf import package as hf_package
from model_build.verify import verify_artifact


def _members(artifact: Path) -> dict[str, bytes]:
    with tarfile.open(artifact) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_feature_extraction_artifact_is_text_in_embedding_out(tiny_text_build, tiny_bert_dir):
    manifest = tiny_text_build.manifest
    members = _members(tiny_text_build.artifact)
    assert sorted(members) == ["model.onnx", "modelway.json", "tokenizer.json"]
    # The tokenizer travels byte for byte; the manifest decides its length and padding.
    assert members["tokenizer.json"] == (tiny_bert_dir / "tokenizer.json").read_bytes()
    document = json.loads(members["modelway.json"])
    assert document["signature"] == {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1], "max_bytes": 65536}],
        "outputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, 32]}],
    }
    assert [t["name"] for t in document["graph_signature"]["inputs"]] == [
        "input_ids",
        "attention_mask",
        "token_type_ids",
    ]
    assert document["graph_signature"]["inputs"][0]["shape"] == [-1, -1]  # batch, sequence
    assert document["graph_signature"]["outputs"][0]["shape"] == [-1, -1, 32]
    tokenize = document["processing"]["pre"][0]
    assert tokenize["max_length"] == 64  # the tokenizer's model_max_length
    assert [step["op"] for step in document["processing"]["post"]] == ["mean_pool", "l2_normalize"]
    parity = document["parity"]
    assert parity["passed"]
    assert parity["samples"] >= 200
    assert parity["min_cosine"] >= 0.9999
    assert parity["reference"].startswith("transformers")
    assert "quantization" not in document
    assert verify_artifact(path=tiny_text_build.artifact).name == "tiny-text"
    assert manifest.processing == document["processing"]


def test_text_classification_artifact_has_label_and_probabilities(tiny_classifier_build):
    document = json.loads(_members(tiny_classifier_build.artifact)["modelway.json"])
    assert document["signature"]["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ]
    label_map = document["processing"]["post"][1]
    assert label_map["op"] == "label_map"
    assert label_map["labels"] == ["negative", "neutral", "positive"]
    assert document["parity"]["argmax_agreement"] == 1.0


def test_int8_artifact_records_size_latency_and_cosine_to_fp32(tiny_bert_dir, tmp_path):
    result = package_hf(
        tiny_bert_dir,
        name="tiny-text",
        out_dir=tmp_path,
        precision="int8",
        sentences=hf_package_sentences(),
    )
    quantization = result.manifest.quantization
    assert quantization is not None
    assert quantization["precision"] == "int8"
    assert quantization["size_bytes"] < quantization["fp32_size_bytes"]
    assert quantization["vs_fp32"]["mean_cosine"] >= 0.99
    assert quantization["vs_fp32"]["min_cosine"] >= 0.97
    assert {"p50_batch1", "p50_batch32"} <= set(quantization["fp32_latency_ms"])
    assert result.manifest.frameworks["precision"] == "int8"


def hf_package_sentences() -> list[str]:
    from model_build.hf.sentences import parity_sentences

    return parity_sentences(count=40, max_length=64)


def test_parity_gate_refuses_a_tokenizer_cut_that_differs_from_the_model(
    tiny_bert_dir, tmp_path, monkeypatch
):
    """A manifest that would tokenize differently from the reference (here: cut at 8 tokens,
    the model at 64) computes other embeddings for long sentences: refused, nothing written."""
    real = hf_package.processing_section

    def short_cut(source):  # type: ignore[no-untyped-def]
        section = real(source)
        section["pre"][0]["max_length"] = 8
        return section

    monkeypatch.setattr(hf_package, "processing_section", short_cut)
    with pytest.raises(ParityFailed, match="cosine min"):
        package_hf(
            tiny_bert_dir, name="tiny-text", out_dir=tmp_path, sentences=hf_package_sentences()
        )
    assert not (tmp_path / "model.tar.gz").exists()


@pytest.mark.parametrize("missing", ["tokenizer.json", "config.json", "model.safetensors"])
def test_a_directory_missing_a_file_is_refused_by_name(tiny_bert_dir, tmp_path, missing):
    copy = tmp_path / "model"
    shutil.copytree(tiny_bert_dir, copy)
    (copy / missing).unlink()
    with pytest.raises(HfModelError, match=missing.split(".")[0]):
        package_hf(copy, name="tiny-text", out_dir=tmp_path / "out")


def test_unknown_task_and_precision_are_refused(tiny_bert_dir, tmp_path):
    with pytest.raises(HfModelError, match="unknown task"):
        package_hf(tiny_bert_dir, task="translation", name="x", out_dir=tmp_path)
    with pytest.raises(HfModelError, match="unknown precision"):
        package_hf(tiny_bert_dir, name="x", out_dir=tmp_path, precision="int4")
    with pytest.raises(HfModelError, match="invalid model name"):
        package_hf(tiny_bert_dir, name="Not A Name", out_dir=tmp_path)


def _rewrite(artifact: Path, dest: Path, **replace: bytes) -> Path:
    members = _members(artifact)
    members.update(replace)
    with tarfile.open(dest, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            import io

            tar.addfile(info, io.BytesIO(data))
    return dest


def test_publishing_refuses_a_swapped_tokenizer(tiny_text_artifact, tmp_path):
    swapped = _rewrite(
        tiny_text_artifact, tmp_path / "model.tar.gz", **{"tokenizer.json": b'{"version": "1.0"}'}
    )
    with pytest.raises(InvalidArtifact, match=r"sha256 of tokenizer\.json"):
        verify_artifact(path=swapped)


def test_publishing_refuses_processing_that_does_not_reach_the_graph(tiny_text_artifact, tmp_path):
    document = json.loads(_members(tiny_text_artifact)["modelway.json"])
    document["processing"]["post"][0]["input"] = "pooler_output"
    broken = _rewrite(
        tiny_text_artifact,
        tmp_path / "model.tar.gz",
        **{"modelway.json": json.dumps(document).encode()},
    )
    with pytest.raises(InvalidArtifact, match="'pooler_output' is not produced"):
        verify_artifact(path=broken)
