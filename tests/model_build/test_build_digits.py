"""The digits build: a real train → export → parity → package run, checked from the outside."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from functions.core.exceptions import InvalidArtifact
from functions.core.manifest import MANIFEST_NAME, MODEL_FILE_NAME, Manifest, ParityReport
from model_build.digits.data import load_split
from model_build.result import BuildResult


def _members(artifact: Path) -> dict[str, bytes]:
    with tarfile.open(artifact, "r:gz") as tar:
        return {
            member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
            for member in tar.getmembers()
        }


def _session(artifact: Path) -> ort.InferenceSession:
    model = _members(artifact)[MODEL_FILE_NAME]
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def test_test_accuracy_clears_the_floor(digits_build: BuildResult) -> None:
    assert digits_build.manifest.metrics["test_accuracy"] >= 0.95
    assert digits_build.manifest.metrics["test_samples"] == 360


def test_parity_holds_on_the_whole_test_split(digits_build: BuildResult) -> None:
    parity = digits_build.manifest.parity
    assert parity.passed
    assert parity.samples == 360
    assert parity.argmax_agreement == 1.0
    assert parity.reference == "torch"
    assert parity.max_abs_diff is not None
    assert parity.max_abs_diff <= parity.tolerance <= 1e-4


def test_archive_holds_exactly_the_model_and_manifest_at_its_root(digits_artifact: Path) -> None:
    with tarfile.open(digits_artifact, "r:gz") as tar:
        members = tar.getmembers()
    assert sorted(m.name for m in members) == [MODEL_FILE_NAME, MANIFEST_NAME]
    assert all(m.isfile() and m.mtime == 0 and m.uid == 0 for m in members)


def test_manifest_describes_the_model_it_ships_with(digits_artifact: Path) -> None:
    members = _members(digits_artifact)
    manifest = Manifest.model_validate(json.loads(members[MANIFEST_NAME]))

    assert manifest.name == "digits"
    assert manifest.version is None
    assert manifest.sha256 == hashlib.sha256(members[MODEL_FILE_NAME]).hexdigest()
    assert manifest.signature.model_dump() == {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
        "outputs": [
            {"name": "logits", "datatype": "FP32", "shape": [-1, 10]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ],
    }
    assert manifest.labels == [str(d) for d in range(10)]
    assert {"torch", "onnx", "onnxruntime", "opset"} <= manifest.frameworks.keys()
    assert manifest.frameworks["opset"] == "18"
    assert {"p50_batch1", "p99_batch1", "p50_batch32", "p99_batch32"} <= manifest.latency_ms.keys()
    assert all(value > 0 for value in manifest.latency_ms.values())
    assert manifest.created_at


def test_onnx_runtime_reads_held_out_digits_from_raw_pixels(digits_artifact: Path) -> None:
    session = _session(digits_artifact)
    split = load_split()

    logits, labels = session.run(["logits", "label"], {"input": split.test_images})
    assert logits.shape == (360, 10)
    assert labels.dtype == np.int64
    assert (labels == logits.argmax(axis=1)).all()
    assert float((labels == split.test_labels).mean()) >= 0.95

    # One request per digit, batch of one, pixels as a client would type them (ints 0..16).
    correct = 0
    for digit in range(10):
        index = int(np.flatnonzero(split.test_labels == digit)[0])
        pixels = np.array(split.test_images[index].astype(int).tolist(), dtype=np.float32)
        (label,) = session.run(["label"], {"input": pixels[None]})
        correct += int(label[0] == digit)
    assert correct >= 9


def test_load_sample_is_a_held_out_digit_as_a_client_sends_it(digits_artifact: Path) -> None:
    from model_build.digits import load_sample

    pixels, digit = load_sample(index=-1)
    assert len(pixels) == 64
    assert all(isinstance(p, float) and 0 <= p <= 16 for p in pixels)
    (label,) = _session(digits_artifact).run(
        ["label"], {"input": np.array(pixels, dtype=np.float32).reshape(1, 1, 8, 8)}
    )
    assert int(label[0]) == digit


def test_build_reports_what_it_built(digits_build: BuildResult) -> None:
    summary = digits_build.summary()
    assert summary["artifact"] == str(digits_build.artifact)
    assert summary["parity"]["passed"] is True  # type: ignore[index]
    assert digits_build.seconds > 0


def test_a_model_below_the_accuracy_floor_is_not_packaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import model_build.digits.train as train_module
    from model_build.digits import build_digits
    from model_build.digits.net import DigitsNet
    from model_build.exceptions import QualityGateFailed

    # An untrained network guesses: about one digit in ten.
    monkeypatch.setattr(train_module, "train", lambda **_: DigitsNet().eval())

    with pytest.raises(QualityGateFailed, match=r"below the required 0\.95") as caught:
        build_digits(out_dir=tmp_path)
    assert isinstance(caught.value, InvalidArtifact)
    assert list(tmp_path.iterdir()) == []


def test_parity_check_catches_a_graph_that_computes_something_else(tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch

    from model_build.digits.net import DigitsNet
    from model_build.export import export_onnx
    from model_build.parity import compare_outputs, torch_outputs

    torch.manual_seed(0)
    model = DigitsNet().eval()
    images = load_split().test_images[:64]
    onnx_path = export_onnx(
        model=model,
        inputs={"input": torch.from_numpy(images[:2])},
        path=tmp_path / "model.onnx",
        output_names=("logits", "label"),
    )
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    actual = dict(zip(("logits", "label"), session.run(None, {"input": images}), strict=True))

    def parity() -> ParityReport:
        expected = torch_outputs(
            model=model, inputs={"input": images}, output_names=("logits", "label")
        )
        return compare_outputs(
            expected=expected, actual=actual, reference="torch", scores_output="logits"
        )

    assert parity().passed

    last = model.classifier[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.bias[3] += 5.0  # the torch side now favours "3"
    report = parity()
    assert not report.passed
    assert report.max_abs_diff is not None
    assert report.max_abs_diff >= 5.0 - 1e-4
    assert report.argmax_agreement is not None
    assert report.argmax_agreement < 1.0
    assert report.samples == 64
    assert report.outputs["label"] >= 1.0  # flipped labels count too


def test_a_retrain_with_another_seed_is_a_new_model_file(
    digits_build: BuildResult, tmp_path: Path
) -> None:
    """The default seed rebuilds the same file (publishing it again is a no-op); another seed
    is a retrain, a different file, so publishing it makes a new version."""
    from model_build.digits import build_digits

    retrained = build_digits(out_dir=tmp_path, seed=1)
    assert retrained.manifest.sha256 != digits_build.manifest.sha256
    assert retrained.test_accuracy >= 0.95


def test_manifest_records_reference_statistics_that_drift_is_measured_against(
    digits_build: BuildResult,
) -> None:
    from functions.core.capture.drift import drift_report

    reference = digits_build.manifest.model_dump()["reference"]
    spec = reference["inputs"]["input"]
    assert spec["features"] == 64
    assert reference["rows"] == 360
    for edges, fractions in zip(spec["edges"], spec["fractions"], strict=True):
        assert len(fractions) == len(edges) + 1
        assert abs(sum(fractions) - 1.0) < 1e-4

    def requests(images: np.ndarray) -> list[list[dict]]:
        return [
            [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [1, 1, 8, 8],
                    "data": row.ravel().tolist(),
                }
            ]
            for row in images
        ]

    images = load_split().test_images
    same = drift_report(reference=reference, inputs=requests(images))["inputs"]["input"]
    # The same population: no feature moved. Inverted strokes (16 - x): most did, a lot.
    assert same["psi_max"] < 0.01
    inverted = drift_report(reference=reference, inputs=requests(16.0 - images))["inputs"]["input"]
    assert inverted["level"] == "significant"
    assert inverted["psi_max"] > 1.0
