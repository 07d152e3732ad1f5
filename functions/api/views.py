"""How registry records look on the wire (control plane JSON); keys: ``keys.key_summary``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from functions.core.registry.base import (
    Alias,
    AliasEvent,
    Decision,
    Job,
    ModelVersion,
    PendingMove,
)

PLATFORM = "onnxruntime_onnx"


def version_view(version: ModelVersion, *, with_manifest: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "model": version.model,
        "version": version.version,
        "status": version.status,
        "sha256": version.sha256,
        "artifact_uri": version.artifact_uri,
        "endpoint_name": version.endpoint_name,
        "variant_name": version.variant_name,
        "created_at": version.created_at,
        "created_by": version.created_by,
        "signature": version.manifest.get("signature"),
    }
    if with_manifest:
        view["manifest"] = version.manifest
    return view


def alias_view(alias: Alias) -> dict[str, Any]:
    return asdict(alias)


def pending_move_view(move: PendingMove) -> dict[str, Any]:
    """An alias move waiting for its target to serve (``deploy.rollout``)."""
    return {**asdict(move), "pending": True}


def alias_event_view(event: AliasEvent) -> dict[str, Any]:
    return asdict(event)


def decision_view(decision: Decision) -> dict[str, Any]:
    return asdict(decision)


def job_view(job: Job) -> dict[str, Any]:
    return asdict(job)


def model_metadata(*, model: str, version: ModelVersion, versions: list[int]) -> dict[str, Any]:
    """The Open Inference Protocol model metadata response."""
    signature = version.manifest.get("signature") or {}
    return {
        "name": model,
        "versions": [str(v) for v in versions],
        "platform": PLATFORM,
        "inputs": [_tensor(t) for t in signature.get("inputs", [])],
        "outputs": [_tensor(t) for t in signature.get("outputs", [])],
    }


def _tensor(spec: dict[str, Any]) -> dict[str, Any]:
    return {"name": spec["name"], "datatype": spec["datatype"], "shape": list(spec["shape"])}
