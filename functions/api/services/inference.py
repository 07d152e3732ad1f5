"""The data plane: resolve a model to a version, check the request, send it to the endpoint."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.api.services.lookup import CachedRegistryReads
from functions.api.trace import Timings
from functions.api.views import model_metadata
from functions.core import oip
from functions.core.exceptions import NotFound
from functions.core.naming import is_alias_name
from functions.core.registry.base import DEFAULT_ALIAS, ModelVersion
from functions.core.registry.exceptions import AliasNotFound, InvalidAliasTarget
from functions.core.runtime.base import BINARY_JSON, JSON, RuntimeClient, RuntimeResponse

_VARIANT = re.compile(r"^v(\d+)$")
_HEADER_SIZE = re.compile(r"json-header-size=(\d+)")


@dataclass(frozen=True)
class Target:
    """The version a request goes to, and the alias that chose it (None when pinned)."""

    version: ModelVersion
    alias: str | None = None


@dataclass(frozen=True)
class InferenceResult:
    body: bytes
    content_type: str
    version: int  # the version that answered
    alias: str | None
    json_header_size: int | None  # set for a binary-extension response


class InferenceService:
    def __init__(
        self, *, reads: CachedRegistryReads, runtime: RuntimeClient, rng: random.Random
    ) -> None:
        self.reads = reads
        self.runtime = runtime
        self.rng = rng

    # Resolution -----------------------------------------------------------------------
    def by_alias(self, *, model: str, alias: str | None) -> Target:
        """The alias's version, or its canary for ``canary_weight`` percent of requests."""
        name = alias or DEFAULT_ALIAS
        if not is_alias_name(name):
            raise InvalidAliasTarget(f"invalid alias name {name!r}")
        try:
            record = self.reads.get_alias(model=model, alias=name)
        except AliasNotFound:
            self.reads.list_versions(model=model)  # an unknown model says so (404 model_not_found)
            raise
        number = record.version
        if record.canary_version is not None and self.rng.random() * 100 < record.canary_weight:
            number = record.canary_version
        return Target(version=self._serving(model=model, version=number), alias=name)

    def pinned(self, *, model: str, version: int) -> Target:
        return Target(version=self._serving(model=model, version=version))

    def _serving(self, *, model: str, version: int) -> ModelVersion:
        record = self.reads.get_version(model=model, version=version)
        if record.status != "active":
            raise NotFound(f"{model} version {version} is retired", code="version_retired")
        return record

    def default_version(self, *, model: str) -> ModelVersion:
        """What the model's metadata describes: its default alias, else its newest version."""
        try:
            return self.by_alias(model=model, alias=None).version
        except AliasNotFound:
            active = self.active_versions(model=model)
            if not active:
                raise NotFound(f"model {model!r} has no active version") from None
            return active[-1]

    def active_versions(self, *, model: str) -> list[ModelVersion]:
        return [v for v in self.reads.list_versions(model=model) if v.status == "active"]

    # Metadata -------------------------------------------------------------------------
    def model_metadata(self, *, model: str) -> dict[str, Any]:
        version = self.default_version(model=model)
        versions = [v.version for v in self.active_versions(model=model)]
        return model_metadata(model=model, version=version, versions=versions)

    def version_metadata(self, *, model: str, version: int) -> dict[str, Any]:
        record = self.pinned(model=model, version=version).version
        return model_metadata(model=model, version=record, versions=[version])

    # Dispatch -------------------------------------------------------------------------
    def infer(
        self,
        *,
        target: Target,
        body: bytes,
        json_header_length: str | None,
        content_type: str | None = None,
        deadline: float | None = None,
        request_id: str | None = None,
        timings: Timings | None = None,
    ) -> InferenceResult:
        """Check ``body`` against the version's signature (400/422 before any GPU time), then
        invoke the version's variant, which must answer by ``deadline`` (epoch seconds), and
        pass its answer through. A binary body's JSON length comes from
        ``Inference-Header-Content-Length`` or, as SageMaker clients send it, the content type's
        ``json-header-size``: the model server reads both, so the router does too."""
        version = target.version
        signature = self.reads.signature(version)
        # The shared codec (the model server runs the same one): what passes here, loads there.
        json_length = oip.header_length(content_type=content_type, header=json_header_length)
        oip.decode_request(body, json_length=json_length, signature=signature)
        if timings is not None:
            timings.lap("validate")
        forwarded = JSON if json_length is None else f"{BINARY_JSON};json-header-size={json_length}"
        response = self.runtime.invoke(
            endpoint=version.endpoint_name,
            variant=version.variant_name,
            body=body,
            content_type=forwarded,
            deadline=deadline,
            request_id=request_id,
        )
        if timings is not None:
            timings.lap("runtime")
            _fold_model_timings(timings, response.attributes)
        return InferenceResult(
            body=response.body,
            content_type=response.content_type,
            version=_answered_by(response, fallback=version.version),
            alias=target.alias,
            json_header_size=_json_header_size(response.content_type),
        )


def _fold_model_timings(timings: Timings, attributes: Mapping[str, str]) -> None:
    """The model server's own split of the runtime call, when it reported one."""
    for phase in ("queue", "compute"):
        try:
            ms = float(attributes[f"{phase}-ms"])
        except (KeyError, ValueError):
            continue
        if math.isfinite(ms) and ms >= 0:
            timings.add(phase, ms)


def _answered_by(response: RuntimeResponse, *, fallback: int) -> int:
    match = _VARIANT.fullmatch(response.variant or "")
    return int(match.group(1)) if match else fallback


def _json_header_size(content_type: str) -> int | None:
    if not content_type.startswith(BINARY_JSON):
        return None
    match = _HEADER_SIZE.search(content_type)
    return int(match.group(1)) if match else None
