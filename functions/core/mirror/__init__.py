"""A mirror of modelway's registry in the SageMaker Model Registry, where SageMaker Studio
users look: one model package group per model, one model package per version, its
``ModelApprovalStatus`` following modelway's approval decisions.

modelway's registry stays the source of truth; the mirror is written after it, by
``sync``, which makes one version's package match the registry whatever happened before
(missing group or package, a status an earlier failed write left behind). Every writer — the
CLI's publish / approve / reject and the router's POST /v1/models/{m}/versions, .../approve
and .../reject — goes through ``sync_after_write``: a mirror failure never undoes or hides
the recorded decision; it is logged and reported beside it (``MirrorResult``, ``status:
failed`` with the command that retries it, ``modelway mirror sync MODEL VERSION``).
Locally there is nothing to mirror (``NoMirror``).

boto3, not the ``sagemaker`` SDK: the router's API writes the mirror too and the SDK cannot
go in the Lambda bundle, so this one implementation serves the router and the CLI. Its five
control-plane calls are validated by botocore against SageMaker's model; the SDK's
``ModelPackage`` resources wrap the same calls, and installing it (``sagemaker`` 3.27.0) would
add 60 packages and downgrade protobuf and rich under the CLI (README, "Promotion with
approval").
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from functions.core.aws_clients import LazyClient
    from functions.core.registry.base import ApprovalStore, Decision, ModelVersion, Registry

logger = logging.getLogger("modelway.mirror")

# modelway decision -> SageMaker ModelApprovalStatus, and back.
TO_SAGEMAKER = {"approved": "Approved", "rejected": "Rejected"}
FROM_SAGEMAKER = {v: k for k, v in TO_SAGEMAKER.items()}
PENDING_MANUAL_APPROVAL = "PendingManualApproval"
VERSION_KEY = "modelway:version"


class Mirror(Protocol):
    def sync(self, *, registry: Registry, model: str, version: int) -> str | None:
        """Make the version's package match modelway's registry; its ARN (None: no mirror)."""


class NoMirror:
    """Local: no SageMaker to show versions in."""

    def sync(self, *, registry: Registry, model: str, version: int) -> str | None:
        return None


@dataclass(frozen=True)
class MirrorResult:
    """What became of the mirror write after a registry write (``sync_after_write``)."""

    status: str  # "synced" | "failed" | "off" (no mirror here: local)
    model_package_arn: str | None = None
    error: str | None = None
    retry: str | None = None

    def view(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def sync_after_write(
    *, mirror: Mirror, registry: Registry, model: str, version: int
) -> MirrorResult:
    """``mirror.sync`` after modelway's registry recorded a version or a decision. Never
    raises for an AWS failure: the registry write stands (it is the source of truth, and the
    approval gate reads it), and the caller gets ``failed`` with the error and the command
    that brings the mirror up to date; the next sync of the version does it too."""
    try:
        arn = mirror.sync(registry=registry, model=model, version=version)
    except Exception as exc:
        from botocore.exceptions import BotoCoreError, ClientError

        if not isinstance(exc, BotoCoreError | ClientError):
            raise
        logger.warning(
            "SageMaker Model Registry not updated for %s version %s", model, version, exc_info=True
        )
        return MirrorResult(
            status="failed",
            error=f"recorded in modelway, but the SageMaker Model Registry was not updated: {exc}",
            retry=f"modelway mirror sync {model} {version}",
        )
    if arn is None:
        return MirrorResult(status="off")
    return MirrorResult(status="synced", model_package_arn=arn)


@dataclass(frozen=True)
class _Package:
    arn: str
    status: str
    metadata: dict[str, str]


class SageMakerMirror:
    def __init__(self, *, sagemaker: LazyClient, prefix: str, image_uri: str) -> None:
        self._sm = sagemaker
        self._prefix = prefix
        self._image_uri = image_uri

    def group_name(self, model: str) -> str:
        return f"{self._prefix}-{model}"

    def sync(self, *, registry: Registry, model: str, version: int) -> str | None:
        """Create the group and package if missing (with the status modelway holds), else
        set the package's status to modelway's latest decision where they differ. A version
        nobody decided on in modelway keeps the status its package has: a decision made in
        Studio comes back through its event (``apply_state_change``), not overwritten here."""
        record = registry.get_version(model=model, version=version)
        decisions = registry.list_decisions(model=model, version=version)
        wanted = TO_SAGEMAKER[decisions[-1].decision] if decisions else None
        found = self._package(model=model, version=version)
        if found is None:
            return self._create(version=record, status=wanted or PENDING_MANUAL_APPROVAL)
        if wanted is not None and found.status != wanted:
            last = decisions[-1]
            self._sm.get().update_model_package(
                ModelPackageArn=found.arn,
                ModelApprovalStatus=wanted,
                ApprovalDescription=_approval_description(last),
                # Sent again: the version tag is how the package is found (and moto drops
                # metadata an update leaves out).
                CustomerMetadataProperties=found.metadata,
            )
        return found.arn

    def _create(self, *, version: ModelVersion, status: str) -> str:
        sm = self._sm.get()
        group = self.group_name(version.model)
        try:
            sm.create_model_package_group(
                ModelPackageGroupName=group,
                ModelPackageGroupDescription=f"modelway model {version.model}",
            )
        except sm.exceptions.ClientError as exc:
            if "already exists" not in str(exc):
                raise
        response = sm.create_model_package(
            ModelPackageGroupName=group,
            ModelPackageDescription=_description(version.model, version.version),
            ModelApprovalStatus=status,
            InferenceSpecification={
                "Containers": [
                    {"Image": self._image_uri, "ModelDataUrl": version.artifact_uri},
                ],
                "SupportedContentTypes": ["application/json", "application/octet-stream"],
                "SupportedResponseMIMETypes": ["application/json", "application/octet-stream"],
            },
            CustomerMetadataProperties=_metadata(version, version.manifest),
        )
        return str(response["ModelPackageArn"])

    def _package(self, *, model: str, version: int) -> _Package | None:
        """The version's package, found by the version number it carries. Only a package
        whose description names the version (in the list's summaries) is described: one
        DescribeModelPackage per sync, not one per version the group holds."""
        sm = self._sm.get()
        group = self.group_name(model)
        wanted = _description(model, version)
        try:
            pages = sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group)
            arns = [
                str(summary["ModelPackageArn"])
                for page in pages
                for summary in page["ModelPackageSummaryList"]
                if summary.get("ModelPackageDescription") == wanted
            ]
        except sm.exceptions.ClientError as exc:
            if "does not exist" in str(exc) or "not found" in str(exc).lower():
                return None  # no group yet: nothing published to it
            raise
        for arn in arns:
            described = sm.describe_model_package(ModelPackageName=arn)
            meta = dict(described.get("CustomerMetadataProperties") or {})
            if meta.get(VERSION_KEY) == str(version):
                status = str(described.get("ModelApprovalStatus") or PENDING_MANUAL_APPROVAL)
                return _Package(arn=arn, status=status, metadata=meta)
        return None


def _description(model: str, version: int) -> str:
    # Set at creation and never changed (UpdateModelPackage cannot): how a sync finds it.
    return f"modelway {model} version {version}"


def _approval_description(decision: Decision) -> str:
    text = f"{decision.actor}: {decision.reason}" if decision.reason else decision.actor
    return text[:1024]


def _metadata(version: ModelVersion, manifest: dict[str, Any]) -> dict[str, str]:
    """The manifest's parity report, metrics (``test_accuracy`` …) and measured latency
    (``latency_ms``) as customer metadata, what Studio shows beside the package. SageMaker
    takes at most 50 entries, keys of <= 128 characters from a small set, values <= 256."""
    meta = {
        VERSION_KEY: str(version.version),
        "modelway:sha256": version.sha256,
        "modelway:published_by": version.created_by[:256],
    }
    parity = manifest.get("parity") or {}
    for key in ("passed", "max_abs_diff", "argmax_agreement", "tolerance", "samples"):
        if key in parity:
            meta[f"modelway:parity_{key}"] = str(parity[key])[:256]
    for section, prefix, most in (("metrics", "metric", 16), ("latency_ms", "latency_ms", 8)):
        values = manifest.get(section) or {}
        for key, value in sorted(values.items())[:most]:
            if isinstance(value, int | float | str):
                meta[_metadata_key(f"modelway:{prefix}_{key}")] = str(value)[:256]
    return meta


def _metadata_key(key: str) -> str:
    # CustomerMetadataProperties keys: letters, digits, spaces and _.:/=+-@ only.
    return re.sub(r"[^\w\s.:/=+\-@]", "_", key)[:128]


def apply_state_change(
    *, event: dict[str, Any], registry: ApprovalStore, prefix: str, at: str
) -> Decision | None:
    """An EventBridge ``SageMaker Model Package State Change`` (an approval made in Studio, say)
    as a modelway decision. ``None`` for a package modelway did not publish, a status that is
    not a decision (``PendingManualApproval``), one the registry already holds, or the late
    echo of a write modelway made itself."""
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
    # modelway's own writes come back as events too, and EventBridge does not keep their
    # order: the echo of an approval can arrive after a later rejection. An event carrying
    # the status and description a modelway decision wrote is that echo, never a decision
    # (else a stale echo would approve a rejected version again). A Studio user who changes
    # the status but leaves modelway's description as it was is taken for that echo too:
    # the gate stays as modelway last decided, the safe side.
    description = str(detail.get("ApprovalDescription") or "")
    if any(d.decision == status and _approval_description(d) == description for d in known):
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
