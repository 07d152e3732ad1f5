"""The artifact manifest (``modelway.json``) and the tensor signature it carries.

Pure pydantic: the router validates requests against it without numpy, and publishing reads
it to refuse bad artifacts before anything is stored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MANIFEST_NAME = "modelway.json"
MODEL_FILE_NAME = "model.onnx"
ARTIFACT_NAME = "model.tar.gz"

# Open Inference Protocol datatypes, with the byte size of one element (BYTES is variable).
DATATYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "UINT8": 1,
    "UINT16": 2,
    "UINT32": 4,
    "UINT64": 8,
    "INT8": 1,
    "INT16": 2,
    "INT32": 4,
    "INT64": 8,
    "FP16": 2,
    "FP32": 4,
    "FP64": 8,
}


class TensorSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    datatype: str
    # -1 marks a dynamic axis (the batch axis, at least).
    shape: list[int]

    @field_validator("datatype")
    @classmethod
    def _known_datatype(cls, value: str) -> str:
        if value not in DATATYPE_SIZES and value != "BYTES":
            raise ValueError(f"unknown datatype {value!r}")
        return value

    @field_validator("shape")
    @classmethod
    def _valid_shape(cls, value: list[int]) -> list[int]:
        if any(d < -1 or d == 0 for d in value):
            raise ValueError(f"shape dimensions must be positive or -1, got {value}")
        return value


class Signature(BaseModel):
    model_config = ConfigDict(frozen=True)

    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)


class ParityReport(BaseModel):
    """torch vs ONNX Runtime on held-out inputs."""

    samples: int = Field(gt=0)
    max_abs_diff: float
    argmax_agreement: float
    tolerance: float
    passed: bool


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    format_version: int = 1
    name: str
    # Assigned by the registry at publish time; a freshly built artifact has none.
    version: int | None = None
    model_file: str = MODEL_FILE_NAME
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature: Signature
    frameworks: dict[str, str] = Field(default_factory=dict)
    parity: ParityReport
    metrics: dict[str, float] = Field(default_factory=dict)
    latency_ms: dict[str, float] = Field(default_factory=dict)
    labels: list[str] | None = None
    description: str = ""
    created_at: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=False)
