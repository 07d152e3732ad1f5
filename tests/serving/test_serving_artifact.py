"""Opening versions: archives and unpacked directories, hostile archives, lying manifests."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from serving.artifact import open_artifact
from serving.config import ServingConfig
from serving.exceptions import ArtifactError
from serving.model import OnnxModel
from tests.serving.serving_testkit import (
    CLASSIFIER_SIGNATURE,
    DOUBLER_SIGNATURE,
    classifier_onnx,
    manifest_for,
    package,
    write_tar,
)

CONFIG = ServingConfig(ort_threads=1)


def test_archive_is_extracted_and_checked(classifier_tar: Path) -> None:
    artifact = open_artifact(classifier_tar)
    try:
        assert artifact.name == "digits"
        assert artifact.version == 3
        assert artifact.model_path.name == "model.onnx"
        assert [t.name for t in artifact.signature.outputs] == ["logits", "label"]
        assert artifact.scratch is not None
        assert artifact.scratch.is_dir()
    finally:
        artifact.cleanup()
    assert not artifact.model_path.exists()


def test_unpacked_directory_is_served_in_place(tmp_path: Path, classifier_bytes: bytes) -> None:
    """SageMaker mounts the unpacked artifact at /opt/ml/model."""
    (tmp_path / "model.onnx").write_bytes(classifier_bytes)
    manifest = manifest_for(
        classifier_bytes, name="digits", version=None, signature=CLASSIFIER_SIGNATURE
    )
    (tmp_path / "modelway.json").write_text(json.dumps(manifest))
    artifact = open_artifact(tmp_path)
    assert artifact.root == tmp_path
    assert artifact.version is None
    assert artifact.scratch is None


def test_directory_holding_the_archive(tmp_path: Path, classifier_tar: Path) -> None:
    artifact = open_artifact(classifier_tar.parent)
    artifact.cleanup()
    assert artifact.name == "digits"


def _hostile(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"x") -> Path:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return archive


@pytest.mark.parametrize("name", ["../escaped.txt", "/tmp/absolute.txt", "a/../../escaped.txt"])
def test_path_traversal_is_refused(tmp_path: Path, name: str) -> None:
    archive = _hostile(tmp_path, tarfile.TarInfo(name))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(ArtifactError, match="unsafe path"):
        open_artifact(archive, scratch_parent=scratch)
    assert not (tmp_path / "escaped.txt").exists()
    assert list(scratch.iterdir()) == []  # the scratch dir was removed too


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
def test_links_and_devices_are_refused(tmp_path: Path, kind: bytes) -> None:
    member = tarfile.TarInfo("model.onnx")
    member.type = kind
    member.linkname = "/etc/passwd"
    with pytest.raises(ArtifactError, match="not a regular file"):
        open_artifact(_hostile(tmp_path, member))


def test_not_an_archive(tmp_path: Path) -> None:
    junk = tmp_path / "model.tar.gz"
    junk.write_bytes(b"definitely not gzip")
    with pytest.raises(ArtifactError, match="cannot extract"):
        open_artifact(junk)


def test_checksum_mismatch_is_refused(tmp_path: Path, classifier_bytes: bytes) -> None:
    manifest = manifest_for(
        classifier_bytes, name="digits", version=1, signature=CLASSIFIER_SIGNATURE
    )
    manifest["sha256"] = "0" * 64
    archive = package(
        tmp_path / "m.tar.gz",
        classifier_bytes,
        name="digits",
        version=1,
        signature=CLASSIFIER_SIGNATURE,
        manifest=manifest,
    )
    with pytest.raises(ArtifactError, match="does not match"):
        open_artifact(archive)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": ""}, "no name"),
        ({"version": "3"}, "version"),
        ({"model_file": "../model.onnx"}, "bare file name"),
        ({"sha256": None}, "sha256"),
        ({"signature": {"inputs": []}}, "inputs"),
        (
            {"signature": {**CLASSIFIER_SIGNATURE, "outputs": [{"name": "y", "datatype": "STR"}]}},
            "datatype",
        ),
    ],
)
def test_bad_manifests_are_refused(
    tmp_path: Path, classifier_bytes: bytes, change: dict[str, object], message: str
) -> None:
    manifest = manifest_for(
        classifier_bytes, name="digits", version=1, signature=CLASSIFIER_SIGNATURE
    )
    manifest.update(change)
    archive = package(
        tmp_path / "m.tar.gz",
        classifier_bytes,
        name="digits",
        version=1,
        signature=CLASSIFIER_SIGNATURE,
        manifest=manifest,
    )
    with pytest.raises(ArtifactError, match=message):
        open_artifact(archive)


def test_missing_manifest(tmp_path: Path, classifier_bytes: bytes) -> None:
    archive = write_tar(tmp_path / "m.tar.gz", {"model.onnx": classifier_bytes})
    with pytest.raises(ArtifactError, match=r"modelway\.json"):
        open_artifact(archive)


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (
            {
                **CLASSIFIER_SIGNATURE,
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 64]}],
            },
            "'x' is not a graph input",
        ),
        (
            {
                **CLASSIFIER_SIGNATURE,
                "inputs": [{"name": "input", "datatype": "INT64", "shape": [-1, 1, 8, 8]}],
            },
            "manifest INT64, graph FP32",
        ),
        (
            {
                **CLASSIFIER_SIGNATURE,
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
            },
            "shape",
        ),
        (DOUBLER_SIGNATURE, "is not a graph input"),
    ],
)
def test_manifest_that_disagrees_with_the_graph_fails_at_load(
    tmp_path: Path, classifier_bytes: bytes, signature: dict[str, object], message: str
) -> None:
    archive = package(
        tmp_path / "m.tar.gz", classifier_bytes, name="digits", version=1, signature=signature
    )
    with pytest.raises(ArtifactError, match=message):
        OnnxModel.from_source(archive, config=CONFIG)


def test_loaded_model_serves_and_cleans_up(classifier_tar: Path) -> None:
    model = OnnxModel.from_source(classifier_tar, config=CONFIG)
    try:
        assert model.ready
        assert model.name == "digits"
        assert model.version == "3"
        assert model.signature.batchable
        x = np.zeros((1, 1, 8, 8), np.float32)
        outputs = model.predict({"input": x}).result(timeout=10)
        assert outputs["logits"].shape == (1, 10)
        assert outputs["label"].dtype == np.int64
    finally:
        model.close()
    assert not model.artifact.model_path.exists()


def test_version_falls_back_to_the_environment_setting(tmp_path: Path) -> None:
    model_bytes = classifier_onnx(seed=1)
    archive = package(
        tmp_path / "m.tar.gz",
        model_bytes,
        name="digits",
        version=None,
        signature=CLASSIFIER_SIGNATURE,
    )
    model = OnnxModel.from_source(archive, config=ServingConfig(ort_threads=1, model_version="7"))
    model.close()
    assert model.version == "7"
