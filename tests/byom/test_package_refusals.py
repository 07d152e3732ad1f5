"""``modelway package`` refuses a model that could not serve, with one line and its own exit
status; nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from tests.byom.byom_testkit import IrisFiles, tiny_graph

Run = Callable[..., tuple[int, str, str]]


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def _nothing_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []


def _identity(path: Path, shape: list[str | int | None], elem: int = TensorProto.FLOAT) -> Path:
    return tiny_graph(
        path,
        nodes=[helper.make_node("Identity", ["x"], ["y"])],
        inputs=[helper.make_tensor_value_info("x", elem, shape)],
        outputs=[helper.make_tensor_value_info("y", elem, shape)],
    )


def test_a_missing_file(run_package: Run, tmp_path: Path) -> None:
    status, _, err = run_package(tmp_path / "nope.onnx", "--name", "m")
    assert status == 3
    assert "does not exist (file_not_found)" in _one_line(err)


def test_missing_samples_file(run_package: Run, iris: IrisFiles, tmp_path: Path) -> None:
    status, _, err = run_package(iris.onnx, "--name", "iris", "--samples", tmp_path / "x.npz")
    assert status == 3
    assert "samples file" in _one_line(err)


def test_an_operator_onnx_runtime_cannot_run(run_package: Run, tmp_path: Path) -> None:
    model = tiny_graph(
        tmp_path / "custom.onnx",
        nodes=[helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")],
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        opsets={"": 18, "com.example": 1},
    )
    status, _, err = run_package(model, "--name", "custom")
    assert status == 4
    line = _one_line(err)
    assert "com.example:Frobnicate" in line
    assert "(unsupported_operator)" in line
    _nothing_written(tmp_path)


def test_scikit_learn_zipmap_says_how_to_turn_it_off(
    run_package: Run, iris: IrisFiles, tmp_path: Path
) -> None:
    status, _, err = run_package(iris.zipmap_onnx, "--name", "iris")
    assert status == 5
    line = _one_line(err)
    assert "'output_probability' is a sequence of maps (scikit-learn's ZipMap)" in line
    assert "options={id(clf): {'zipmap': False}}" in line
    _nothing_written(tmp_path)


def test_an_element_type_v2_cannot_carry(run_package: Run, tmp_path: Path) -> None:
    model = _identity(tmp_path / "bf16.onnx", ["n", 4], elem=TensorProto.BFLOAT16)
    status, _, err = run_package(model, "--name", "bf16")
    assert status == 5
    assert "ONNX type BFLOAT16" in _one_line(err)


@pytest.mark.parametrize("shape", [[1, 4], [4], []])
def test_an_input_with_no_batch_axis(
    run_package: Run, tmp_path: Path, shape: list[str | int | None]
) -> None:
    status, _, err = run_package(_identity(tmp_path / "fixed.onnx", shape), "--name", "fixed")
    assert status == 6
    line = _one_line(err)
    assert f"input 'x' has shape {shape}" in line
    assert "(no_batch_axis)" in line
    _nothing_written(tmp_path)


def test_parity_over_tolerance(run_package: Run, iris: IrisFiles, tmp_path: Path) -> None:
    with np.load(iris.expected) as loaded:
        wrong = dict(loaded)
    wrong["probabilities"] = wrong["probabilities"].copy()
    wrong["probabilities"][3, 0] += 0.01
    np.savez(tmp_path / "wrong.npz", **wrong)

    status, _, err = run_package(
        iris.onnx, "--name", "iris", "--samples", iris.samples, "--expected", tmp_path / "wrong.npz"
    )
    assert status == 7
    line = _one_line(err)
    assert "disagrees with expected on 30 rows on output 'probabilities'" in line
    assert "(parity_failed)" in line
    _nothing_written(tmp_path)
    # A looser tolerance the user chose accepts the same difference.
    status, _, _ = run_package(
        iris.onnx, "--name", "iris", "--samples", iris.samples,
        "--expected", tmp_path / "wrong.npz", "--tolerance", "0.02",
    )  # fmt: skip
    assert status == 0


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"features": np.zeros((4, 4), np.float32)}, "no sample array for input(s) ['X']"),
        ({"X": np.zeros((4, 4), np.int64)}, "'X' is int64, the model takes FP32"),
        ({"X": np.zeros((4, 5), np.float32)}, "axis 1 must be 4"),
        ({"X": np.zeros((1, 4), np.float32)}, "at least 2"),
    ],
)
def test_samples_that_do_not_fit(
    run_package: Run, iris: IrisFiles, tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    np.savez(tmp_path / "s.npz", **arrays)  # type: ignore[arg-type]
    status, _, err = run_package(iris.onnx, "--name", "iris", "--samples", tmp_path / "s.npz")
    assert status == 8
    line = _one_line(err)
    assert message in line
    assert "(invalid_samples)" in line


def test_expected_outputs_named_wrong(run_package: Run, iris: IrisFiles, tmp_path: Path) -> None:
    np.savez(tmp_path / "e.npz", probs=np.zeros((30, 3), np.float32))
    status, _, err = run_package(
        iris.onnx, "--name", "iris", "--samples", iris.samples, "--expected", tmp_path / "e.npz"
    )
    assert status == 8
    assert "['probs'] are not outputs of the model" in _one_line(err)


def test_a_model_that_fails_when_run(run_package: Run, tmp_path: Path) -> None:
    """Loads, but its Reshape only fits one batch size: generated inputs expose it."""
    model = tiny_graph(
        tmp_path / "reshape.onnx",
        nodes=[helper.make_node("Reshape", ["x", "shape"], ["y"])],
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 12])],
        initializers=[helper.make_tensor("shape", TensorProto.INT64, [2], [1, 12])],
    )
    status, _, err = run_package(model, "--name", "reshape")
    assert status == 9
    assert "fails on the generated inputs" in _one_line(err)


def test_an_output_without_one_row_per_input_row(run_package: Run, tmp_path: Path) -> None:
    model = tiny_graph(
        tmp_path / "sum.onnx",
        nodes=[helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0)],
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    status, _, err = run_package(model, "--name", "sum")
    assert status == 9
    assert "one row per input row" in _one_line(err)


def test_not_an_onnx_file(run_package: Run, tmp_path: Path) -> None:
    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"\x00\xffnot a protobuf")
    status, _, err = run_package(junk, "--name", "junk")
    assert status == 12
    assert "not a valid ONNX model" in _one_line(err)


def test_a_torch_callable_that_cannot_be_imported(run_package: Run, tmp_path: Path) -> None:
    np.savez(tmp_path / "s.npz", x=np.zeros((2, 3), np.float32))
    status, _, err = run_package(
        "--torch", "no_such_module_here:build", "--samples", tmp_path / "s.npz", "--name", "m"
    )
    assert status == 10
    assert "cannot import no_such_module_here" in _one_line(err)


def test_a_torch_callable_that_returns_no_module(
    run_package: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "not_a_model.py").write_text("def build():\n    return 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    np.savez(tmp_path / "s.npz", x=np.zeros((2, 3), np.float32))
    status, _, err = run_package(
        "--torch", "not_a_model:build", "--samples", tmp_path / "s.npz", "--name", "m"
    )
    assert status == 10
    assert "returned a int, not a torch.nn.Module" in _one_line(err)


def test_samples_named_other_than_forward_parameters(
    run_package: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "user_linear.py").write_text(
        "import torch\n\n"
        "class Linear(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.layer = torch.nn.Linear(3, 2)\n\n"
        "    def forward(self, features):\n"
        "        return self.layer(features)\n\n"
        "def build():\n"
        "    return Linear()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    np.savez(tmp_path / "s.npz", x=np.zeros((2, 3), np.float32))
    status, _, err = run_package(
        "--torch", "user_linear:build", "--samples", tmp_path / "s.npz", "--name", "m"
    )
    assert status == 8
    assert "['x'] are not parameters of Linear.forward ['features']" in _one_line(err)


@pytest.mark.parametrize(
    "args",
    [
        ["--name", "m"],  # no source
        ["a.onnx", "--torch", "m:f", "--name", "m"],  # two sources
        ["a.onnx", "--name", "m", "--dynamic", "x:1"],  # a torch flag on an ONNX file
        ["--torch", "m:f", "--name", "m"],  # --torch without samples
        ["--torch", "m:f", "--samples", "s.npz", "--name", "m", "--dynamic", "x:0=b"],
    ],
)
def test_usage_errors(run_package: Run, args: list[str]) -> None:
    status, _, err = run_package(*args)
    assert status == 2
    assert "(usage)" in _one_line(err)


def test_an_invalid_model_name(run_package: Run, iris: IrisFiles) -> None:
    status, _, err = run_package(iris.onnx, "--name", "Iris_Model")
    assert status == 1
    assert "invalid model name 'Iris_Model'" in _one_line(err)


def test_hf_flags_reach_the_hugging_face_packager(
    run_package: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command's part of --hf: its flags become package_hf's arguments (the packaging
    itself is tested with model_build.hf)."""
    import model_build.package
    from model_build.exceptions import ParityFailed

    calls: list[dict[str, object]] = []

    def package_hf(directory: Path, **kwargs: object) -> None:
        calls.append({"directory": directory, **kwargs})
        raise ParityFailed("mean cosine 0.98 is under 0.99")

    monkeypatch.setattr(model_build.package, "package_hf", package_hf)
    (tmp_path / "encoder").mkdir()
    status, _, err = run_package(
        "--hf", tmp_path / "encoder", "--task", "feature-extraction", "--name", "enc",
        "--quantize", "int8", "--max-length", "128",
    )  # fmt: skip
    assert status == 7
    assert "mean cosine 0.98 is under 0.99 (parity_failed)" in _one_line(err)
    assert calls == [
        {
            "directory": tmp_path / "encoder", "task": "feature-extraction", "name": "enc",
            "out_dir": tmp_path / "out", "precision": "int8", "max_length": 128,
            "description": "",
        }
    ]  # fmt: skip


def test_hf_directory_missing(run_package: Run, tmp_path: Path) -> None:
    status, _, err = run_package(
        "--hf", tmp_path / "nope", "--task", "text-classification", "--name", "m"
    )
    assert status == 3
    assert "Hugging Face directory" in _one_line(err)


@pytest.mark.parametrize(
    "args",
    [
        ["--hf", ".", "--name", "m"],  # no task
        ["a.onnx", "--name", "m", "--fp16"],  # precision is for --hf
        ["--hf", ".", "--task", "feature-extraction", "--name", "m", "--max-length", "seq=9"],
        ["--hf", ".", "--task", "feature-extraction", "--name", "m", "--samples", "s.npz"],
    ],
)
def test_hf_usage_errors(run_package: Run, args: list[str]) -> None:
    status, _, err = run_package(*args)
    assert status == 2
    assert "(usage)" in _one_line(err)


def test_each_refusal_has_its_own_exit_status() -> None:
    from cli.package import exit_status
    from functions.core.exceptions import InvalidArtifact
    from model_build.exceptions import PackagingError

    refusals = PackagingError.__subclasses__()
    statuses = [cls.exit_status for cls in refusals]
    assert len(set(statuses)) == len(statuses)
    assert not {0, 1, 2} & set(statuses)
    assert len({cls.code for cls in refusals}) == len(refusals)
    # An error raised outside model_build.exceptions with a refusal's code exits the same way.
    assert exit_status(InvalidArtifact("x", code="invalid_model")) == 12
    assert exit_status(InvalidArtifact("x")) == 1


def test_a_named_dynamic_axis_the_module_fixes(
    run_package: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.export silently specializes an axis the code reshapes to a constant; packaging
    says so instead of shipping a graph that refuses every other length."""
    (tmp_path / "user_fixed.py").write_text(
        "import torch\n\n"
        "class Fixed(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return x.reshape(x.shape[0], 40).sum(1)\n\n"
        "def build():\n"
        "    return Fixed()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    np.savez(tmp_path / "s.npz", x=np.ones((3, 10, 4), np.float32))
    status, _, err = run_package(
        "--torch", "user_fixed:build", "--samples", tmp_path / "s.npz", "--name", "m",
        "--dynamic", "x:1=sequence",
    )  # fmt: skip
    assert status == 10
    line = _one_line(err)
    assert "input 'x' axis 1 (sequence) was exported with the fixed size 10" in line
    _nothing_written(tmp_path)


def test_scores_without_expected_outputs(run_package: Run, iris: IrisFiles) -> None:
    status, _, err = run_package(
        iris.onnx, "--name", "iris", "--samples", iris.samples, "--scores", "probabilities"
    )
    assert status == 8
    assert "compared with expected outputs" in _one_line(err)
