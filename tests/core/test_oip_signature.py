"""The shared signature rules: one module decides what a manifest may declare, for publishing
(pydantic ``Manifest``), the router and the model server alike."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from functions.core import manifest, oip
from functions.core.oip import Signature, SignatureError, TensorSpec, reconcile


def _spec(**fields: Any) -> dict[str, Any]:
    return {"name": "x", "datatype": "FP32", "shape": [-1, 4], **fields}


@pytest.mark.parametrize(
    "datatype",
    ["FP32", "FP16", "FP64", "INT64", "INT32", "INT16", "INT8", "UINT8", "BOOL", "BYTES"],
)
def test_every_protocol_datatype_is_accepted_everywhere(datatype: str) -> None:
    raw = _spec(datatype=datatype)
    assert TensorSpec.from_dict(raw).to_dict() == raw
    assert manifest.TensorSpec.model_validate(raw).model_dump(mode="json") == raw


BAD_SPECS: list[tuple[dict[str, Any], str]] = [
    (_spec(datatype="FP8"), "unknown datatype 'FP8'"),
    (_spec(datatype=None), "unknown datatype None"),
    (_spec(name=""), "tensor name"),
    (_spec(name="n" * 300), "tensor name"),
    (_spec(shape=[0, 4]), "positive or -1"),
    (_spec(shape=[-2, 4]), "positive or -1"),
    (_spec(shape="4"), "list of integers"),
    (_spec(shape=[1] * 33), "rank 33"),
    (_spec(max_shape=[8]), "must have the rank of shape"),
    (_spec(max_shape=[8, 5]), "bounds axis 1, which is fixed at 4"),
    (_spec(max_shape=[8, 0]), "positive or -1"),
    (_spec(min_shape=[9, -1], max_shape=[8, -1]), "above max_shape"),
    (_spec(max_bytes=10), "BYTES tensors only"),
    (_spec(datatype="BYTES", max_bytes=0), "positive integer"),
    (_spec(dim_names=["batch"]), "one name or null per axis"),
    (_spec(dim_names=["batch", "features"]), "names axis 1, which is fixed"),
    (_spec(dim_names=[7, None]), "dim_names[0] must be a short string"),
]


@pytest.mark.parametrize(("raw", "message"), BAD_SPECS)
def test_a_bad_spec_is_refused_by_the_codec_and_the_manifest(
    raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(SignatureError, match=re.escape(message)):
        TensorSpec.from_dict(raw)
    # pydantic's own type checks may speak first; either way the manifest is refused.
    with pytest.raises(ValidationError):
        manifest.TensorSpec.model_validate(raw)


def test_bounds_are_per_axis_and_optional() -> None:
    spec = TensorSpec.from_dict(
        {
            "name": "ids",
            "datatype": "INT64",
            "shape": [-1, -1, 3],
            "min_shape": [-1, 2, -1],
            "max_shape": [64, 256, 3],
        }
    )
    assert spec.bounds(0) == (1, 64)
    assert spec.bounds(1) == (2, 256)
    assert spec.bounds(2) == (3, 3)
    assert TensorSpec(name="y", datatype="FP32", shape=(-1,)).bounds(0) == (1, None)


def test_named_axes_are_the_ones_several_inputs_share() -> None:
    signature = Signature.from_dict(
        {
            "inputs": [
                {"name": "ids", "datatype": "INT64", "shape": [-1, -1], "dim_names": ["b", "seq"]},
                {
                    "name": "mask",
                    "datatype": "INT64",
                    "shape": [-1, -1],
                    "dim_names": [None, "seq"],
                },
                {"name": "pos", "datatype": "INT64", "shape": [-1, -1], "dim_names": ["b", "p"]},
            ],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
        }
    )
    assert signature.named_axes == {"b": [("ids", 0), ("pos", 0)], "seq": [("ids", 1), ("mask", 1)]}
    raw = signature.to_dict()["inputs"][1]
    assert manifest.TensorSpec.model_validate(raw).model_dump(mode="json") == raw


def test_old_manifests_read_and_write_unchanged() -> None:
    raw = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
    }
    assert manifest.Signature.model_validate(raw).model_dump(mode="json") == raw
    assert Signature.from_dict(raw).to_dict() == raw
    assert manifest.Signature.model_validate(raw).to_codec() == Signature.from_dict(raw)


def test_duplicate_names_are_refused() -> None:
    raw = {"inputs": [_spec(), _spec()], "outputs": [_spec(name="y")]}
    with pytest.raises(SignatureError, match="name 'x' twice"):
        Signature.from_dict(raw)
    with pytest.raises(ValidationError, match="name 'x' twice"):
        manifest.Signature.model_validate(raw)


def _sig(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> Signature:
    return Signature.from_dict({"inputs": inputs, "outputs": outputs})


GRAPH = _sig(
    [{"name": "ids", "datatype": "INT64", "shape": [-1, -1]}],
    [
        {"name": "y", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "z", "datatype": "FP32", "shape": [-1]},
    ],
)


def test_reconcile_keeps_bounds_and_fixes_what_either_side_fixes() -> None:
    declared = _sig(
        [{"name": "ids", "datatype": "INT64", "shape": [-1, -1], "max_shape": [-1, 256]}],
        [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
    )
    served = reconcile(declared, GRAPH)
    assert served.inputs[0].max_shape == (-1, 256)
    assert [t.name for t in served.outputs] == ["y"]  # the manifest chooses what is served
    with pytest.raises(SignatureError, match="graph output 'z' is missing"):
        reconcile(declared, GRAPH, exact=True)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([{"name": "ids", "datatype": "INT32", "shape": [-1, -1]}], "manifest INT32, graph INT64"),
        ([{"name": "ids", "datatype": "INT64", "shape": [-1]}], "shape: manifest [-1]"),
        ([{"name": "text", "datatype": "BYTES", "shape": [-1]}], "'text' is not a graph input"),
    ],
)
def test_reconcile_refuses_what_the_graph_cannot_take(
    inputs: list[dict[str, Any]], message: str
) -> None:
    declared = _sig(inputs, [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}])
    with pytest.raises(SignatureError, match=re.escape(message)):
        reconcile(declared, GRAPH)


def test_a_graph_dim_outside_the_declared_bounds_is_refused() -> None:
    graph = _sig(
        [{"name": "ids", "datatype": "INT64", "shape": [-1, 512]}],
        [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
    )
    declared = _sig(
        [{"name": "ids", "datatype": "INT64", "shape": [-1, -1], "max_shape": [-1, 256]}],
        [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
    )
    with pytest.raises(SignatureError, match="axis 1: the graph fixes it at 512"):
        reconcile(declared, graph)


def test_the_codec_imports_nothing_outside_the_standard_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, functions.core.oip; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'boto3', 'botocore', 'fastapi', 'numpy', 'starlette')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert oip.DATATYPE_SIZES["FP16"] == 2
