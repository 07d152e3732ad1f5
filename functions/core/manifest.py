"""The artifact manifest (``modelway.json``) and the tensor signature it carries.

Pydantic over the codec's rules (``functions.core.oip``): publishing reads it to refuse bad
artifacts before anything is stored; the router and the model server read the same signature
with the codec itself.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from functions.core import oip
from functions.core.oip.datatypes import DATATYPE_SIZES

MANIFEST_NAME = "modelway.json"
MODEL_FILE_NAME = "model.onnx"
ARTIFACT_NAME = "model.tar.gz"

__all__ = ["DATATYPE_SIZES", "Manifest", "ParityReport", "Signature", "TensorSpec"]


class TensorSpec(BaseModel):
    """One tensor of the signature, as the manifest stores it. The rules (datatypes, shapes,
    bounds) are ``functions.core.oip.signature``'s: the model server and the router read the
    same manifest with that module, so a manifest that validates here is one they accept."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    datatype: str
    # -1 marks a dynamic axis (the batch axis, at least).
    shape: list[int]
    # Optional bounds on dynamic axes (-1: unbounded), e.g. at most 256 tokens.
    min_shape: list[int] | None = None
    max_shape: list[int] | None = None
    # BYTES only: the longest element, in UTF-8 bytes.
    max_bytes: int | None = None
    # Names of dynamic axes (the graph's dim_param): same name, same size across inputs.
    dim_names: list[str | None] | None = None

    @model_validator(mode="after")
    def _follows_the_codec_rules(self) -> TensorSpec:
        self.to_codec()
        return self

    def to_codec(self) -> oip.TensorSpec:
        try:
            return oip.TensorSpec.from_dict(self.model_dump())
        except oip.SignatureError as exc:
            raise ValueError(str(exc)) from None

    @model_serializer(mode="wrap")
    def _omit_unset_options(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Manifests without bounds stay byte for byte what they were before bounds existed.
        data: dict[str, Any] = handler(self)
        for key in ("min_shape", "max_shape", "max_bytes", "dim_names"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class Signature(BaseModel):
    model_config = ConfigDict(frozen=True)

    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _follows_the_codec_rules(self) -> Signature:
        self.to_codec()
        return self

    def to_codec(self) -> oip.Signature:
        """The codec's (dependency-free) form, which requests are checked against."""
        try:
            return oip.Signature(
                inputs=tuple(t.to_codec() for t in self.inputs),
                outputs=tuple(t.to_codec() for t in self.outputs),
            )
        except oip.SignatureError as exc:
            raise ValueError(str(exc)) from None

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)


class ParityReport(BaseModel):
    """The original framework (``reference``) vs ONNX Runtime on real inputs.

    ``reference`` is ``torch`` (eager torch), ``expected`` (outputs the user's own framework
    gave, packaged with an ONNX file), or ``none``: an ONNX file packaged without expected
    outputs ran on ``samples`` rows, and nothing was compared (``max_abs_diff`` is null).
    """

    # Room for figures a kind of model adds (cosine similarity for embeddings, ...).
    model_config = ConfigDict(extra="allow")

    samples: int = Field(gt=0)
    max_abs_diff: float | None = None
    argmax_agreement: float | None = None
    tolerance: float
    passed: bool
    reference: str = "torch"
    # Max abs diff per compared output.
    outputs: dict[str, float] = Field(default_factory=dict)


class CapturePolicy(BaseModel):
    """Inputs request capture must not keep as they came (personal data, secrets)."""

    model_config = ConfigDict(frozen=True)

    sensitive: list[str] = Field(min_length=1)
    mode: Literal["hash", "drop"] = "hash"


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
    # Text models: the ONNX graph's own tensors (``signature`` is then what a client sees,
    # e.g. BYTES in) and the pre/post-processing the model server runs around the graph,
    # as data (read by ``serving.processing``; files it names travel in the archive).
    graph_signature: Signature | None = None
    processing: dict[str, Any] | None = None
    # A compressed artifact (INT8, FP16): method, sizes, latency and cosine against FP32.
    quantization: dict[str, Any] | None = None
    # Build-time statistics of the inputs (per feature: decile edges and bin fractions), the
    # baseline of the drift report (``functions.core.capture.drift``).
    reference: dict[str, Any] | None = None
    # What request capture may keep of the inputs: ``{"sensitive": [input names] | ["*"],
    # "mode": "hash" | "drop"}`` (``functions.core.capture.records.redact_inputs``).
    capture: CapturePolicy | None = None

    def to_json_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude_none=False)
        # Absent, not null, when unused: a plain model's manifest stays what it always was.
        for key in _OPTIONAL_SECTIONS:
            if data.get(key) is None:
                data.pop(key, None)
        return data


_OPTIONAL_SECTIONS = ("graph_signature", "processing", "quantization", "reference", "capture")
