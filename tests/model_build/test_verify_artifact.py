"""verify_artifact: what publishing relies on to refuse an artifact that must not be served."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from functions.core.archive import sha256_file
from functions.core.exceptions import InvalidArtifact
from functions.core.manifest import MANIFEST_NAME, MODEL_FILE_NAME, Manifest
from model_build.verify import verify_artifact


def _read(artifact: Path) -> dict[str, bytes]:
    with tarfile.open(artifact, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def _write(dest: Path, members: dict[str, bytes], *, extra: list[tarfile.TarInfo] = ()) -> Path:  # type: ignore[assignment]
    with tarfile.open(dest, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return dest


def _with_manifest(artifact: Path, dest: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    members = _read(artifact)
    document = json.loads(members[MANIFEST_NAME])
    edit(document)
    members[MANIFEST_NAME] = json.dumps(document).encode()
    return _write(dest, members)


def _refused(path: Path, match: str) -> InvalidArtifact:
    with pytest.raises(InvalidArtifact, match=match) as caught:
        verify_artifact(path=path)
    assert caught.value.code == "invalid_artifact"
    assert caught.value.status == 422
    return caught.value


def test_a_fresh_build_passes_and_yields_its_manifest(digits_artifact: Path) -> None:
    manifest = verify_artifact(path=digits_artifact)
    assert manifest == Manifest.model_validate_json(_read(digits_artifact)[MANIFEST_NAME])
    assert manifest.name == "digits"


def test_an_unpacked_directory_passes(digits_artifact: Path, tmp_path: Path) -> None:
    for name, data in _read(digits_artifact).items():
        (tmp_path / name).write_bytes(data)
    assert verify_artifact(path=tmp_path).sha256 == sha256_file(tmp_path / MODEL_FILE_NAME)


def test_members_packed_with_a_dot_prefix_pass(digits_artifact: Path, tmp_path: Path) -> None:
    # `tar czf model.tar.gz -C dir .` names members "./model.onnx": the usual SageMaker recipe.
    members = {f"./{name}": data for name, data in _read(digits_artifact).items()}
    root = tarfile.TarInfo(".")
    root.type = tarfile.DIRTYPE
    artifact = _write(tmp_path / "model.tar.gz", members, extra=[root])
    assert verify_artifact(path=artifact).name == "digits"


def test_tampered_model_bytes_fail_the_checksum(digits_artifact: Path, tmp_path: Path) -> None:
    members = _read(digits_artifact)
    model = bytearray(members[MODEL_FILE_NAME])
    model[-1] ^= 0xFF
    members[MODEL_FILE_NAME] = bytes(model)
    _refused(_write(tmp_path / "model.tar.gz", members), "checksum mismatch")


def test_a_tampered_unpacked_directory_fails_the_checksum(
    digits_artifact: Path, tmp_path: Path
) -> None:
    for name, data in _read(digits_artifact).items():
        (tmp_path / name).write_bytes(data)
    with (tmp_path / MODEL_FILE_NAME).open("ab") as handle:
        handle.write(b"\0")
    _refused(tmp_path, "checksum mismatch")


def test_a_renamed_input_does_not_match_the_graph(digits_artifact: Path, tmp_path: Path) -> None:
    def rename(doc: dict[str, Any]) -> None:
        doc["signature"]["inputs"][0]["name"] = "pixels"

    error = _refused(
        _with_manifest(digits_artifact, tmp_path / "model.tar.gz", rename),
        "signature does not match the ONNX graph",
    )
    assert "'pixels' is not a graph input" in error.message
    assert "graph input 'input' is missing from the manifest" in error.message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("datatype", "FP64", "datatype: manifest FP64, graph FP32"),
        ("shape", [1, 1, 8, 8], "shape: manifest [1, 1, 8, 8], graph [-1, 1, 8, 8]"),
    ],
)
def test_a_wrong_datatype_or_shape_does_not_match_the_graph(
    digits_artifact: Path, tmp_path: Path, field: str, value: object, expected: str
) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["signature"]["inputs"][0][field] = value

    error = _refused(_with_manifest(digits_artifact, tmp_path / "m.tar.gz", edit), "signature")
    assert expected in error.message


def test_a_dropped_output_does_not_match_the_graph(digits_artifact: Path, tmp_path: Path) -> None:
    def drop(doc: dict[str, Any]) -> None:
        doc["signature"]["outputs"].pop()

    _refused(_with_manifest(digits_artifact, tmp_path / "m.tar.gz", drop), "'label' is missing")


def test_a_missing_manifest_is_refused(digits_artifact: Path, tmp_path: Path) -> None:
    members = _read(digits_artifact)
    del members[MANIFEST_NAME]
    _refused(_write(tmp_path / "model.tar.gz", members), "no modelway.json")


def test_a_missing_model_file_is_refused(digits_artifact: Path, tmp_path: Path) -> None:
    members = _read(digits_artifact)
    del members[MODEL_FILE_NAME]
    _refused(_write(tmp_path / "model.tar.gz", members), "no model.onnx")


def test_a_manifest_that_is_not_json_is_refused(digits_artifact: Path, tmp_path: Path) -> None:
    members = _read(digits_artifact)
    members[MANIFEST_NAME] = b"{not json"
    _refused(_write(tmp_path / "model.tar.gz", members), "not valid JSON")


def test_a_manifest_missing_fields_is_refused(digits_artifact: Path, tmp_path: Path) -> None:
    error = _refused(
        _with_manifest(digits_artifact, tmp_path / "m.tar.gz", lambda doc: doc.pop("sha256")),
        "not a valid manifest",
    )
    assert "sha256" in error.message


def test_a_failed_parity_report_is_refused(digits_artifact: Path, tmp_path: Path) -> None:
    def fail(doc: dict[str, Any]) -> None:
        doc["parity"].update(passed=False, max_abs_diff=0.3, argmax_agreement=0.97)

    _refused(_with_manifest(digits_artifact, tmp_path / "m.tar.gz", fail), "parity check failed")


def test_a_parity_report_contradicting_itself_is_refused(
    digits_artifact: Path, tmp_path: Path
) -> None:
    def lie(doc: dict[str, Any]) -> None:
        doc["parity"].update(passed=True, max_abs_diff=0.3)

    _refused(_with_manifest(digits_artifact, tmp_path / "m.tar.gz", lie), "exceeds its tolerance")


@pytest.mark.parametrize("name", ["../model.onnx", "/etc/model.onnx", "nested/../../x"])
def test_path_traversal_members_are_refused(
    digits_artifact: Path, tmp_path: Path, name: str
) -> None:
    members = _read(digits_artifact)
    members[name] = b"payload"
    _refused(_write(tmp_path / "model.tar.gz", members), "unsafe path")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE])
def test_links_and_special_files_are_refused(
    digits_artifact: Path, tmp_path: Path, kind: bytes
) -> None:
    link = tarfile.TarInfo("extra")
    link.type = kind
    link.linkname = "/etc/passwd"
    _refused(
        _write(tmp_path / "model.tar.gz", _read(digits_artifact), extra=[link]),
        "only regular files are allowed",
    )


def test_a_manifest_pointing_outside_the_artifact_is_refused(
    digits_artifact: Path, tmp_path: Path
) -> None:
    def escape(doc: dict[str, Any]) -> None:
        doc["model_file"] = "../model.onnx"

    _refused(_with_manifest(digits_artifact, tmp_path / "m.tar.gz", escape), "unsafe path")


def test_a_directory_model_symlinked_outside_is_refused(
    digits_artifact: Path, tmp_path: Path
) -> None:
    outside, artifact_dir = tmp_path / "outside", tmp_path / "artifact"
    outside.mkdir()
    artifact_dir.mkdir()
    members = _read(digits_artifact)
    (outside / MODEL_FILE_NAME).write_bytes(members[MODEL_FILE_NAME])
    (artifact_dir / MANIFEST_NAME).write_bytes(members[MANIFEST_NAME])
    (artifact_dir / MODEL_FILE_NAME).symlink_to(outside / MODEL_FILE_NAME)
    _refused(artifact_dir, "points outside the artifact directory")


def test_a_model_file_that_is_not_onnx_is_refused(digits_artifact: Path, tmp_path: Path) -> None:
    members = _read(digits_artifact)
    garbage = b"definitely not a protobuf \xff\xff\xff"
    members[MODEL_FILE_NAME] = garbage
    document = json.loads(members[MANIFEST_NAME])
    document["sha256"] = __import__("hashlib").sha256(garbage).hexdigest()
    members[MANIFEST_NAME] = json.dumps(document).encode()
    _refused(_write(tmp_path / "model.tar.gz", members), "not a valid ONNX model")


def test_a_file_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "model.tar.gz"
    bogus.write_bytes(b"\x1f\x8b but then nothing sensible")
    _refused(bogus, "not a readable tar archive")


def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path / "nope.tar.gz", "no artifact at")
