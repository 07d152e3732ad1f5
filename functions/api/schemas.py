"""Request bodies of the control plane (unknown fields refused, so typos do not pass silently)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from functions.api.openapi import INFER_REQUEST_EXAMPLE
from functions.core.naming import (
    ALIAS_NAME_PATTERN,
    MAX_VERSION,
    MODEL_SCOPE_PATTERN,
    TENANT_NAME_PATTERN,
)
from functions.core.oip.datatypes import DATATYPES

# A version in a path: a number past MAX_VERSION (or below 1) can never name a version, so it
# is a bad request (400), not a lookup that overflows the registry.
VersionPath = Annotated[
    int, Path(ge=1, le=MAX_VERSION, description="A version number, 1 to 2**63-1.")
]
VersionNumber = Annotated[int, Field(ge=1, le=MAX_VERSION)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterVersion(_Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"artifact_key": "uploads/digits/model.tar.gz"}]}
    )
    # A key in the data area's uploads, e.g. "uploads/digits/model.tar.gz".
    artifact_key: str = Field(min_length=1, max_length=1024, pattern=r"^uploads/")
    # Point this alias at the new version too (a model's first version always gets "default").
    alias: str | None = Field(default=None, pattern=ALIAS_NAME_PATTERN)


class SetAlias(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"version": 1, "canary_version": 2, "canary_weight": 10},
                {"shadow_version": 2, "shadow_percent": 100, "capture_percent": 100},
            ]
        }
    )
    # Without a version the alias stays where it is and only the shadow/capture settings
    # given change (each one left out keeps its value).
    version: VersionNumber | None = None
    canary_version: VersionNumber | None = None
    canary_weight: int = Field(default=0, ge=0, le=100)
    # Shadow traffic: this percent of requests also goes to shadow_version after the caller's
    # answer (null: no shadow); capture_percent of requests are written to captures/.
    shadow_version: VersionNumber | None = None
    shadow_percent: int | None = Field(default=None, ge=0, le=100)
    capture_percent: int | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _moves_or_sets_traffic(self) -> SetAlias:
        if self.version is None and not self.traffic_fields():
            raise ValueError(
                "give a version to move the alias, or shadow_version / shadow_percent / "
                "capture_percent to change its traffic settings"
            )
        if self.version is None and self.model_fields_set & {"canary_version", "canary_weight"}:
            raise ValueError("a canary needs the alias's version")
        return self

    def traffic_fields(self) -> set[str]:
        return self.model_fields_set & {"shadow_version", "shadow_percent", "capture_percent"}


class Decide(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "parity and latency ok"}]})
    reason: str = Field(default="", max_length=1000)


ModelScope = Annotated[str, Field(pattern=MODEL_SCOPE_PATTERN)]


class CreateKey(_Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "team-a", "models": ["digits"], "admin": False}]}
    )
    # Shown in listings; anything printable but blank.
    name: str = Field(min_length=1, max_length=128, pattern=r"\S")
    # At most the creating key's own models ("*" only from a key that has "*").
    models: list[ModelScope] = Field(min_length=1)
    admin: bool = False
    # The creating key's own tenant when omitted; no other is allowed.
    tenant: str | None = Field(default=None, pattern=TENANT_NAME_PATTERN)


# The inference body, for the document only: the inference routes read the body themselves
# (``functions.core.tensors``, which also checks it against the version's signature).
class RequestTensor(BaseModel):
    name: str = Field(min_length=1)
    datatype: str = Field(json_schema_extra={"enum": list[JsonValue](sorted(DATATYPES))})
    shape: list[Annotated[int, Field(ge=0)]]
    data: Any = Field(default=None, description="Row-major values (absent in binary form).")
    parameters: dict[str, Any] | None = None


class RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [INFER_REQUEST_EXAMPLE]})
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestTensor] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


# Every request body above, for the OpenAPI document (``functions.api.openapi``).
BODIES: tuple[type[BaseModel], ...] = (RegisterVersion, SetAlias, CreateKey, InferenceRequest)
