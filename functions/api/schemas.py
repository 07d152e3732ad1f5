"""Request bodies of the control plane (unknown fields refused, so typos do not pass silently)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterVersion(_Body):
    # A key in the data area, e.g. "uploads/digits/model.tar.gz".
    artifact_key: str = Field(min_length=1, max_length=1024)
    # Point this alias at the new version too (a model's first version always gets "default").
    alias: str | None = None


class SetAlias(_Body):
    version: int = Field(ge=1)
    canary_version: int | None = Field(default=None, ge=1)
    canary_weight: int = Field(default=0, ge=0, le=100)


class CreateKey(_Body):
    name: str = Field(min_length=1, max_length=128)
    models: list[str] = Field(min_length=1)
    admin: bool = False
    tenant: str = Field(default="default", min_length=1, max_length=64)
