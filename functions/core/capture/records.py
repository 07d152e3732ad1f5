"""One captured request: what went in, what came out, who answered, how fast.

A record is one JSON line. ``role`` is ``primary`` (the answer the caller got) or ``shadow``
(the shadow version's answer to the same request, never sent to the caller); the two share
``request_id``, which is how the report pairs them. The caller is named by its key id, never
its secret. Tensors are stored decoded (``{"name","datatype","shape","data"}``) whatever form
they travelled in, so that a reader needs no codec; an input the manifest marks sensitive is
stored as its SHA-256 (``hash``) or not at all (``drop``), see :func:`redact_inputs`.

Building a record decodes the bodies: it runs on the capture writer's thread, never on the
request's.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from functions.core import oip
from functions.core.oip.datatypes import DATATYPES

PREFIX = "captures/"
# A router's capture object holding requests still to be shadowed (on AWS the batch function
# shadows them, ``functions.batch.shadow``) and the object of the shadow's answers beside it.
PENDING_SUFFIX = ".pending.jsonl"
SHADOW_SUFFIX = ".shadow.jsonl"
PRIMARY = "primary"
SHADOW = "shadow"
REPLAY = "replay"


@dataclass(frozen=True)
class CaptureRecord:
    request_id: str
    at: str  # ISO-8601 UTC, when the answer was ready
    model: str
    alias: str
    version: int
    role: str  # PRIMARY | SHADOW | REPLAY
    status: int  # the HTTP status this answer was (or would have been)
    latency_ms: float
    key_id: str | None = None
    code: str | None = None  # the error code of a failed answer
    inputs: list[dict[str, Any]] | None = None
    outputs: list[dict[str, Any]] | None = None
    # The manifest's capture policy for sensitive inputs applied: "hash" | "drop" | None.
    redacted: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def pending_shadow(self) -> int | None:
        """The shadow version still to ask with this request (deferred shadow traffic)."""
        value = self.extra.get("shadow_version")
        return int(value) if isinstance(value, int) else None

    def to_line(self) -> bytes:
        data = asdict(self)
        if not data["extra"]:
            del data["extra"]
        return json.dumps(data, separators=(",", ":"), allow_nan=False).encode() + b"\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaptureRecord:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


def capture_key(*, model: str, alias: str, at: str, name: str) -> str:
    """``captures/{model}/{alias}/{YYYY-MM-DD}/{name}``: one folder per day, so a report over
    a window lists only the days in it and a lifecycle rule can expire old days."""
    return f"{PREFIX}{model}/{alias}/{at[:10]}/{name}"


def prefix_for(*, model: str, alias: str, day: str | None = None) -> str:
    base = f"{PREFIX}{model}/{alias}/"
    return f"{base}{day}/" if day is not None else base


# Tensors ---------------------------------------------------------------------------------
def request_tensors(body: bytes, *, json_length: int | None) -> list[dict[str, Any]]:
    """The request's inputs, decoded (either wire form) into plain JSON tensors."""
    request = oip.decode_request(body, json_length=json_length)
    return [_plain(t) for t in request.inputs]


def response_tensors(body: bytes, *, json_length: int | None) -> list[dict[str, Any]]:
    response = oip.decode_response(body, json_length=json_length)
    return [_plain(t) for t in response.outputs]


def _plain(tensor: oip.Tensor) -> dict[str, Any]:
    if tensor.values is not None:
        data = [_finite(v) for v in tensor.values]
    else:
        assert tensor.raw is not None
        dtype = DATATYPES[tensor.datatype]
        data = [_finite(v) for v in struct.unpack(f"<{tensor.count}{dtype.code}", tensor.raw)]
    return {
        "name": tensor.name,
        "datatype": tensor.datatype,
        "shape": list(tensor.shape),
        "data": data,
    }


def _finite(value: Any) -> Any:
    # JSON has no NaN/Infinity: spelled as the encoder spells them.
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def redact_inputs(
    tensors: Sequence[dict[str, Any]], *, policy: Mapping[str, Any] | None
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Apply the manifest's ``capture`` policy (``{"sensitive": [names] | ["*"], "mode":
    "hash" | "drop"}``): a sensitive input's data becomes its SHA-256 (of its canonical JSON),
    or, with ``drop``, every input is left out. Returns (inputs, mode applied or None)."""
    sensitive = set((policy or {}).get("sensitive") or ())
    if not sensitive:
        return list(tensors), None
    mode = (policy or {}).get("mode", "hash")
    if mode == "drop":
        return None, "drop"
    out = []
    for tensor in tensors:
        if "*" in sensitive or tensor["name"] in sensitive:
            canonical = json.dumps(tensor["data"], separators=(",", ":")).encode()
            tensor = {
                "name": tensor["name"],
                "datatype": tensor["datatype"],
                "shape": tensor["shape"],
                "sha256": hashlib.sha256(canonical).hexdigest(),
            }
        out.append(tensor)
    return out, "hash"
