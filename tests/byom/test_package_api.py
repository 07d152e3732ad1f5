"""The packaging API on users' own models: what ends up in the artifact."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from functions.core.archive import sha256_file
from functions.core.exceptions import InvalidArtifact
from functions.core.manifest import MANIFEST_NAME, MODEL_FILE_NAME, Manifest
from model_build import package_onnx
from tests.byom.byom_testkit import IrisFiles


def _manifest(artifact: Path) -> Manifest:
    with tarfile.open(artifact, "r:gz") as tar:
        member = tar.extractfile(MANIFEST_NAME)
        assert member is not None
        return Manifest.model_validate(json.loads(member.read()))


def test_an_skl2onnx_file_with_expected_outputs(iris: IrisFiles, tmp_path: Path) -> None:
    result = package_onnx(
        iris.onnx, name="iris", out_dir=tmp_path, samples=iris.samples, expected=iris.expected,
        labels=["setosa", "versicolor", "virginica"], scores_output="probabilities",
    )  # fmt: skip
    manifest = _manifest(result.artifact)
    assert manifest == result.manifest
    # The user's file is packed byte for byte.
    assert manifest.sha256 == sha256_file(iris.onnx)
    assert [(s.name, s.datatype, s.shape) for s in manifest.signature.inputs] == [
        ("X", "FP32", [-1, 4])
    ]
    assert [(s.name, s.datatype, s.shape) for s in manifest.signature.outputs] == [
        ("label", "INT64", [-1]),
        ("probabilities", "FP32", [-1, 3]),
    ]
    parity = manifest.parity
    assert (parity.reference, parity.samples, parity.passed) == ("expected", 30, True)
    assert parity.outputs["label"] == 0.0
    assert parity.outputs["probabilities"] < 1e-6
    assert parity.argmax_agreement == 1.0
    assert manifest.frameworks["producer"].startswith("skl2onnx")
    assert manifest.frameworks["opset"]
    assert set(manifest.latency_ms) == {"p50_batch1", "p99_batch1", "p50_batch32", "p99_batch32"}
    assert manifest.model_extra is not None
    assert manifest.model_extra["source"] == {
        "kind": "onnx",
        "file": "iris.onnx",
        "inputs": "sample",
    }


def test_without_samples_the_model_runs_on_generated_inputs(
    iris: IrisFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli import main

    assert main(["package", str(iris.onnx), "--name", "iris", "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["artifact"] == str(tmp_path / "model.tar.gz")
    assert summary["parity"]["reference"] == "none"
    assert summary["parity"]["max_abs_diff"] is None  # nothing compared, nothing claimed
    assert "parity not checked" in summary["note"]
    assert summary["signature"]["outputs"] == ["label INT64 [-1]", "probabilities FP32 [-1, 3]"]


def test_a_sensitive_input_is_marked_for_capture_and_a_wrong_name_refused(
    iris: IrisFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli import main

    argv = ["package", str(iris.onnx), "--name", "iris", "--out", str(tmp_path)]
    argv += ["--samples", str(iris.samples)]
    assert main([*argv, "--sensitive-input", "X", "--sensitive-mode", "drop"]) == 0
    capsys.readouterr()
    manifest = _manifest(tmp_path / "model.tar.gz").model_dump()
    assert manifest["capture"] == {"sensitive": ["X"], "mode": "drop"}
    # The samples' deciles, per feature: the drift baseline (generated inputs give none).
    assert manifest["reference"]["inputs"]["X"]["features"] == 4

    with pytest.raises(InvalidArtifact, match="not inputs of the model"):
        package_onnx(
            iris.onnx, name="iris", out_dir=tmp_path / "x", capture={"sensitive": ["petal"]}
        )


def test_arrays_in_memory_work_like_files(iris: IrisFiles, tmp_path: Path) -> None:
    rows = iris.features[:7].astype(np.float64)  # numpy's default float: cast, not refused
    result = package_onnx(
        iris.onnx, name="iris", out_dir=tmp_path, samples={"X": rows},
        expected={"probabilities": iris.classifier.predict_proba(rows)},
    )  # fmt: skip
    assert result.manifest.parity.samples == 7
    assert list(result.manifest.parity.outputs) == ["probabilities"]


def test_the_torch_module_keeps_its_names_types_and_dynamic_axes(ranker: dict[str, Any]) -> None:
    summary = ranker["summary"]
    assert summary["signature"] == {
        # --max-length sequence=64 bounds both inputs' sequence axis.
        "inputs": [
            "token_ids INT64 [-1, -1] max [-1, 64]",
            "attention_mask FP32 [-1, -1] max [-1, 64]",
        ],
        # forward returns a dict: its keys name the outputs (one of which, "embedding",
        # is also the name torch's exporter gives the nn.Embedding's own value).
        "outputs": ["logits FP32 [-1, 3]", "embedding FP32 [-1, 32]"],
    }
    parity = summary["parity"]
    assert parity["reference"] == "torch"
    assert parity["passed"] is True
    assert parity["max_abs_diff"] <= 1e-4
    assert set(parity["checks"]) == {"samples", "first row alone", "sequence one shorter"}
    assert Path(summary["artifact"]).name == "model.tar.gz"


def test_the_torch_artifact_runs_any_sequence_length_within_the_bound(
    ranker: dict[str, Any],
) -> None:
    import onnxruntime as ort
    import torch
    import user_ranker  # type: ignore[import-not-found]

    with tarfile.open(ranker["summary"]["artifact"], "r:gz") as tar:
        member = tar.extractfile(MODEL_FILE_NAME)
        assert member is not None
        session = ort.InferenceSession(member.read(), providers=["CPUExecutionProvider"])
    module = user_ranker.build()
    for length in (1, 5, 40):
        ids = np.arange(1, 3 * length + 1, dtype=np.int64).reshape(3, length) % 499 + 1
        mask = np.ones((3, length), np.float32)
        logits, _ = session.run(None, {"token_ids": ids, "attention_mask": mask})
        with torch.no_grad():
            want = module(torch.from_numpy(ids), torch.from_numpy(mask))["logits"].numpy()
        np.testing.assert_allclose(logits, want, atol=1e-5)


def test_publishing_accepts_unchecked_parity_only_when_it_says_so(iris: IrisFiles) -> None:
    from functions.core.archive import check_parity_report
    from functions.core.manifest import ParityReport

    base: dict[str, Any] = {
        "name": "iris", "sha256": "0" * 64,
        "signature": {"inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}],
                      "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}]},
    }  # fmt: skip
    unchecked = ParityReport(samples=2, tolerance=0.0, passed=True, reference="none")
    check_parity_report(Manifest.model_validate({**base, "parity": unchecked.model_dump()}))
    claimed = ParityReport(samples=2, tolerance=1e-4, passed=True, reference="torch")
    with pytest.raises(InvalidArtifact, match="has no max abs diff"):
        check_parity_report(Manifest.model_validate({**base, "parity": claimed.model_dump()}))


@pytest.mark.parametrize(
    ("elem", "datatype", "sample"),
    [
        ("FLOAT", "FP32", np.array([[0.5, -1.0], [2.0, 3.0]], np.float64)),
        ("FLOAT16", "FP16", np.array([[0.5, -1.0], [2.0, 3.0]], np.float16)),
        ("DOUBLE", "FP64", np.array([[0.5, -1.0], [2.0, 3.0]], np.float64)),
        ("INT64", "INT64", np.array([[1, 2], [3, 4]], np.int32)),
        ("INT32", "INT32", np.array([[1, 2], [3, 4]], np.int64)),
        ("INT8", "INT8", np.array([[-128, 2], [3, 127]], np.int64)),
        ("UINT8", "UINT8", np.array([[0, 2], [3, 255]], np.int64)),
        ("BOOL", "BOOL", np.array([[True, False], [False, True]])),
        ("STRING", "BYTES", np.array([["ab", "c"], ["é", ""]])),
    ],
)
def test_every_datatype_packages_from_samples_and_from_generated_inputs(
    tmp_path: Path, elem: str, datatype: str, sample: np.ndarray
) -> None:
    """An Identity graph over each type: samples in the user's numpy dtype are taken in the
    graph's (within a kind), the model runs, and the output equals the input."""
    from onnx import TensorProto, helper

    from tests.byom.byom_testkit import tiny_graph

    kind = TensorProto.DataType.Value(elem)
    model = tiny_graph(
        tmp_path / f"{elem}.onnx",
        nodes=[helper.make_node("Identity", ["x"], ["y"])],
        inputs=[helper.make_tensor_value_info("x", kind, ["n", 2])],
        outputs=[helper.make_tensor_value_info("y", kind, ["n", 2])],
    )
    checked = package_onnx(
        model, name="identity", out_dir=tmp_path / "a", samples={"x": sample},
        expected={"y": sample},
    )  # fmt: skip
    assert [(s.datatype, s.shape) for s in checked.manifest.signature.inputs] == [
        (datatype, [-1, 2])
    ]
    assert checked.manifest.parity.outputs == {"y": 0.0}
    generated = package_onnx(model, name="identity", out_dir=tmp_path / "b")
    assert generated.manifest.parity.reference == "none"


def test_integer_samples_out_of_the_inputs_range_are_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    from model_build.exceptions import InvalidSamples
    from tests.byom.byom_testkit import tiny_graph

    model = tiny_graph(
        tmp_path / "u8.onnx",
        nodes=[helper.make_node("Identity", ["x"], ["y"])],
        inputs=[helper.make_tensor_value_info("x", TensorProto.UINT8, ["n", 2])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.UINT8, ["n", 2])],
    )
    with pytest.raises(InvalidSamples, match="outside the range of UINT8"):
        package_onnx(model, name="u8", out_dir=tmp_path, samples={"x": np.array([[0, 256]] * 2)})


def test_a_text_classifier_taking_strings(tmp_path: Path) -> None:
    """skl2onnx's TF-IDF pipeline: a BYTES input [-1, 1], checked against scikit-learn."""
    from tests.byom.byom_testkit import REVIEWS, make_reviews

    reviews = make_reviews(tmp_path / "reviews")
    texts = [text for text, _ in REVIEWS]
    result = package_onnx(
        reviews.onnx, name="reviews", out_dir=tmp_path / "out",
        samples={"text": np.array(texts).reshape(-1, 1)},
        expected={"label": reviews.classifier.predict(texts),
                  "probabilities": reviews.classifier.predict_proba(texts)},
    )  # fmt: skip
    signature = result.manifest.signature
    assert [(s.name, s.datatype, s.shape) for s in signature.inputs] == [("text", "BYTES", [-1, 1])]
    assert result.manifest.parity.passed
    assert result.manifest.parity.outputs["label"] == 0.0
    assert result.manifest.parity.outputs["probabilities"] < 1e-6


def test_weights_in_external_data_files_are_packed_inline(iris: IrisFiles, tmp_path: Path) -> None:
    """Exporters write large weights beside the model; the artifact carries one model file."""
    import onnx
    from onnx import helper, numpy_helper

    weight = np.arange(12, dtype=np.float32).reshape(4, 3)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 3])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = tmp_path / "src" / "linear.onnx"
    path.parent.mkdir()
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="linear.weights", size_threshold=0
    )
    assert (tmp_path / "src" / "linear.weights").is_file()

    rows = np.ones((2, 4), np.float32)
    result = package_onnx(
        path, name="linear", out_dir=tmp_path / "out", samples={"x": rows},
        expected={"y": rows @ weight},
    )  # fmt: skip
    with tarfile.open(result.artifact, "r:gz") as tar:
        assert sorted(tar.getnames()) == sorted([MANIFEST_NAME, MODEL_FILE_NAME])
    assert result.manifest.parity.outputs == {"y": 0.0}


def test_latency_of_a_slow_model_is_bounded_by_its_time_budget(
    iris: IrisFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model whose run takes 50 ms is timed in about the budget, not 20 warm-up runs plus
    200 timed ones per batch size."""
    import time

    import model_build.runner
    from model_build.latency import measure_latency

    real_open = model_build.runner.open_session
    runs: list[int] = []

    def slow_session(path: Path, *, threads: int = 1) -> Any:
        session = real_open(path, threads=threads)

        class Slow:
            def run(self, names: Any, feed: Any) -> Any:
                runs.append(1)
                time.sleep(0.05)
                return session.run(names, feed)

        return Slow()

    monkeypatch.setattr(model_build.runner, "open_session", slow_session)
    feeds = {"X": iris.features[:4]}
    latency = measure_latency(onnx_path=iris.onnx, feeds=feeds, budget_seconds=0.5)
    assert latency["p50_batch1"] >= 50
    # Per batch size: warm-up within a fifth of the budget, then 10 timed runs (the floor).
    assert len(runs) <= 2 * (3 + 10)


def test_eager_torch_failing_on_a_parity_input_is_one_line() -> None:
    import torch

    from model_build.exceptions import ExportFailed
    from model_build.parity import torch_outputs

    class NeedsTwoRows(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] < 2:
                raise ValueError("batch norm needs more than one row")
            return x

    with pytest.raises(ExportFailed, match=r"NeedsTwoRows fails in eager torch on inputs of "
                       r"shapes \{'x': \[1, 3\]\}: ValueError: batch norm needs"):  # fmt: skip
        torch_outputs(
            model=NeedsTwoRows(), inputs={"x": np.zeros((1, 3), np.float32)}, output_names=["y"]
        )
