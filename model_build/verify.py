"""Refuse an artifact that must not be published; return its manifest otherwise.

The full verification, for the CLI's ``publish``: everything ``check_artifact`` in
``functions.core.publishing`` checks without onnx (only plain files at safe paths, a valid
manifest whose parity passed, a valid model name, a matching sha256), then the ONNX graph
itself: a well-formed model with its weights inside, whose inputs and outputs are exactly
the manifest's signature (names, v2 datatypes, shapes with -1 for dynamic axes). Nothing is
extracted to disk.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path

from functions.core import oip
from functions.core.archive import (
    MAX_MANIFEST_BYTES,
    check_artifact,
    check_parity_report,
    open_archive,
    parse_manifest,
    read_member,
    safe_member_name,
)
from functions.core.exceptions import InvalidArtifact
from functions.core.manifest import MANIFEST_NAME, Manifest, Signature
from functions.core.naming import is_model_name
from model_build.signature import ONNX_TO_V2_DATATYPE, signature_from_model, signature_from_onnx

# A tokenizer file is a few MiB at most (large vocabularies included).
MAX_PROCESSING_FILE_BYTES = 64 * 1024 * 1024

__all__ = ["ONNX_TO_V2_DATATYPE", "signature_from_model", "signature_from_onnx", "verify_artifact"]


def verify_artifact(*, path: Path) -> Manifest:
    """Verify a ``model.tar.gz`` or an unpacked artifact directory at ``path``.

    A ``Verifier`` for ``publish_artifact``; raises ``InvalidArtifact`` naming the problem.
    """
    if path.is_dir():
        manifest, model_bytes = _read_directory(path)

        def read(name: str) -> bytes:
            return _read_file(path, safe_member_name(name), limit=MAX_PROCESSING_FILE_BYTES)

    elif path.is_file():
        manifest = check_artifact(path=path)
        with open_archive(path) as (tar, members):
            model_bytes = read_member(
                tar, members, safe_member_name(manifest.model_file), limit=sys.maxsize
            )

        def read(name: str) -> bytes:
            with open_archive(path) as (tar, members):
                return read_member(
                    tar, members, safe_member_name(name), limit=MAX_PROCESSING_FILE_BYTES
                )

    else:
        raise InvalidArtifact(f"no artifact at {path}")
    graph = _graph_signature(model_bytes)
    if manifest.processing is None:
        _compare_signatures(declared=manifest.signature, actual=graph)
    else:
        _check_processing(manifest, graph=graph, read=read)
    return manifest


def _check_processing(
    manifest: Manifest, *, graph: Signature, read: Callable[[str], bytes]
) -> None:
    """A text model: the graph matches ``graph_signature``, the processing section is one the
    model server accepts and connects the client's signature to the graph's, and every file it
    names is in the artifact with the declared sha256."""
    from serving.exceptions import ArtifactError
    from serving.processing import Processing

    if manifest.graph_signature is None:
        raise InvalidArtifact("a manifest with processing must declare graph_signature")
    _compare_signatures(declared=manifest.graph_signature, actual=graph)
    try:
        processing = Processing.parse(manifest.processing)
        processing.check(
            inputs=[t.name for t in manifest.signature.inputs],
            outputs=[t.name for t in manifest.signature.outputs],
            graph_inputs=[t.name for t in graph.inputs],
            graph_outputs=[t.name for t in graph.outputs],
        )
    except ArtifactError as exc:
        raise InvalidArtifact(exc.message) from None
    for name, expected in processing.files.items():
        digest = hashlib.sha256(read(name)).hexdigest()
        if digest != expected:
            raise InvalidArtifact(
                f"checksum mismatch: sha256 of {name} is {digest}, the manifest says {expected}"
            )


def _read_directory(root: Path) -> tuple[Manifest, bytes]:
    """The same light checks as ``check_artifact``, for files on disk."""
    manifest = parse_manifest(_read_file(root, MANIFEST_NAME, limit=MAX_MANIFEST_BYTES))
    check_parity_report(manifest)
    if not is_model_name(manifest.name):
        raise InvalidArtifact(f"invalid model name {manifest.name!r} in {MANIFEST_NAME}")
    model_file = safe_member_name(manifest.model_file)
    model_bytes = _read_file(root, model_file, limit=None)
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != manifest.sha256:
        raise InvalidArtifact(
            f"checksum mismatch: sha256 of {model_file} is {digest}, "
            f"the manifest says {manifest.sha256}"
        )
    return manifest, model_bytes


def _read_file(root: Path, name: str, *, limit: int | None) -> bytes:
    root = root.resolve()
    path = (root / name).resolve()
    # A symlink may point anywhere; only files that really live in the artifact count.
    if not path.is_relative_to(root):
        raise InvalidArtifact(f"{name} points outside the artifact directory")
    if not path.is_file():
        raise InvalidArtifact(f"the artifact has no {name}")
    if limit is not None and path.stat().st_size > limit:
        raise InvalidArtifact(f"{name} is larger than {limit} bytes")
    return path.read_bytes()


def _graph_signature(model_bytes: bytes) -> Signature:
    import onnx

    try:
        model = onnx.load_model_from_string(model_bytes)
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError, ...: all mean "not a usable model"
        raise InvalidArtifact(f"the model file is not a valid ONNX model: {exc}") from exc
    external = [t.name for t in model.graph.initializer if t.data_location == t.EXTERNAL]
    if external:
        raise InvalidArtifact(
            "the model keeps weights in external data files the artifact does not carry "
            f"({', '.join(external[:3])}, ...); export with the weights inside the model"
        )
    return signature_from_model(model)


def _compare_signatures(*, declared: Signature, actual: Signature) -> None:
    # The model server runs the same reconcile at load (non-exact): an exact match here
    # means what publishes is what loads.
    try:
        oip.reconcile(declared.to_codec(), actual.to_codec(), exact=True)
    except oip.SignatureError as exc:
        raise InvalidArtifact(str(exc)) from None
