"""A mirror of modelway's registry in the SageMaker Model Registry, where SageMaker Studio
users look: one model package group per model, one model package per version, its
``ModelApprovalStatus`` following modelway's approval decisions.

modelway's registry stays the source of truth; the mirror is written after it. Locally there
is nothing to mirror (``NoMirror``). boto3, not the ``sagemaker`` SDK: these are four plain
control-plane calls, and the SDK would put a heavy import (and its config lookups) where a
boto3 client already is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from functions.core.aws_clients import LazyClient
    from functions.core.registry.base import Decision, ModelVersion, Registry

# modelway decision -> SageMaker ModelApprovalStatus, and back.
TO_SAGEMAKER = {"approved": "Approved", "rejected": "Rejected"}
FROM_SAGEMAKER = {v: k for k, v in TO_SAGEMAKER.items()}
VERSION_KEY = "modelway:version"


class Mirror(Protocol):
    def version_published(self, *, version: ModelVersion, image_uri: str) -> str | None:
        """Create the model's package group (once) and the version's package; its ARN."""

    def decision_made(self, *, decision: Decision) -> None:
        """Set the version's package ``ModelApprovalStatus``."""


class NoMirror:
    """Local: no SageMaker to show versions in."""

    def version_published(self, *, version: ModelVersion, image_uri: str) -> str | None:
        return None

    def decision_made(self, *, decision: Decision) -> None:
        return None


class SageMakerMirror:
    def __init__(self, *, sagemaker: LazyClient, prefix: str) -> None:
        self._sm = sagemaker
        self._prefix = prefix

    def group_name(self, model: str) -> str:
        return f"{self._prefix}-{model}"

    def version_published(self, *, version: ModelVersion, image_uri: str) -> str | None:
        sm = self._sm.get()
        group = self.group_name(version.model)
        existing = self._package(model=version.model, version=version.version)
        if existing is not None:  # a re-run publish: the package is there already
            return existing[0]
        try:
            sm.create_model_package_group(
                ModelPackageGroupName=group,
                ModelPackageGroupDescription=f"modelway model {version.model}",
            )
        except sm.exceptions.ClientError as exc:
            if "already exists" not in str(exc):
                raise
        manifest = version.manifest
        response = sm.create_model_package(
            ModelPackageGroupName=group,
            ModelPackageDescription=f"modelway {version.model} version {version.version}",
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [
                    {"Image": image_uri, "ModelDataUrl": version.artifact_uri},
                ],
                "SupportedContentTypes": ["application/json", "application/octet-stream"],
                "SupportedResponseMIMETypes": ["application/json", "application/octet-stream"],
            },
            CustomerMetadataProperties=_metadata(version, manifest),
        )
        return str(response["ModelPackageArn"])

    def _package(self, *, model: str, version: int) -> tuple[str, dict[str, str]] | None:
        """The version's package ARN and metadata, found by the version it carries."""
        sm = self._sm.get()
        group = self.group_name(model)
        try:
            pages = sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group)
            summaries = [s for page in pages for s in page["ModelPackageSummaryList"]]
        except sm.exceptions.ClientError:
            return None
        for summary in summaries:
            arn = str(summary["ModelPackageArn"])
            described = sm.describe_model_package(ModelPackageName=arn)
            meta = dict(described.get("CustomerMetadataProperties") or {})
            if meta.get(VERSION_KEY) == str(version):
                return arn, meta
        return None

    def decision_made(self, *, decision: Decision) -> None:
        found = self._package(model=decision.model, version=decision.version)
        if found is None:
            return  # published before the mirror existed: nothing in SageMaker to update
        arn, meta = found
        self._sm.get().update_model_package(
            ModelPackageArn=arn,
            ModelApprovalStatus=TO_SAGEMAKER[decision.decision],
            ApprovalDescription=f"{decision.actor}: {decision.reason}"[:1024],
            # Sent again: the version tag is how the package is found (and moto drops
            # metadata an update leaves out).
            CustomerMetadataProperties=meta,
        )


def _metadata(version: ModelVersion, manifest: dict[str, Any]) -> dict[str, str]:
    """The manifest's parity report and latency as customer metadata (strings, <= 256 chars)."""
    meta = {
        VERSION_KEY: str(version.version),
        "modelway:sha256": version.sha256,
        "modelway:published_by": version.created_by[:256],
    }
    parity = manifest.get("parity") or {}
    for key in ("passed", "max_abs_diff", "argmax_agreement", "tolerance", "samples"):
        if key in parity:
            meta[f"modelway:parity_{key}"] = str(parity[key])[:256]
    latency = manifest.get("latency") or {}
    for key, value in sorted(latency.items())[:8]:
        if isinstance(value, int | float | str):
            meta[f"modelway:latency_{key}"] = str(value)[:256]
    return meta


def apply_state_change(
    *, event: dict[str, Any], registry: Registry, prefix: str, at: str
) -> Decision | None:
    """An EventBridge ``SageMaker Model Package State Change`` (an approval made in Studio, say)
    as a modelway decision. ``None`` for a package modelway did not publish, a status that is
    not a decision (``PendingManualApproval``), or one the registry already holds (modelway's
    own update comes back as an event too)."""
    from functions.core.registry.base import Decision

    detail = event.get("detail") or {}
    group = str(detail.get("ModelPackageGroupName", ""))
    status = FROM_SAGEMAKER.get(str(detail.get("ModelApprovalStatus", "")))
    version = (detail.get("CustomerMetadataProperties") or {}).get(VERSION_KEY)
    if status is None or not group.startswith(f"{prefix}-") or not str(version or "").isdigit():
        return None
    model = group[len(prefix) + 1 :]
    number = int(str(version))
    known = registry.list_decisions(model=model, version=number)
    if known and known[-1].decision == status:
        return None
    who = detail.get("LastModifiedBy") or {}
    actor = str(who.get("UserProfileName") or who.get("IamIdentity", {}).get("Arn") or "sagemaker")
    decision = Decision(
        model=model,
        version=number,
        decision=status,
        actor=f"{actor} (SageMaker)",
        reason=str(detail.get("ApprovalDescription") or "set in the SageMaker Model Registry"),
        at=at,
    )
    return registry.record_decision(decision=decision)
