"""Decoding a model server's Open Inference Protocol answer (clients, batch scoring, capture).

Its own module because a response is read by different rules from a request: nothing checks it
against a signature, and float outputs may be NaN or infinite (the encoder spells them
"NaN"/"Infinity"/"-Infinity", which JSON cannot carry as numbers). Each output tensor is still
read by the request decoder's one tensor reader (``decode.decode_tensor``), so the two agree on
shapes, datatypes and the binary extension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from functions.core.oip.datatypes import DATATYPES
from functions.core.oip.decode import Tensor, decode_tensor
from functions.core.oip.exceptions import ProtocolError
from functions.core.oip.framing import loads, split_body
from functions.core.oip.limits import DEFAULT_LIMITS, Limits


@dataclass(frozen=True)
class InferResponse:
    model_name: str | None
    model_version: str | None
    id: str | None
    outputs: tuple[Tensor, ...]

    def output(self, name: str) -> Tensor | None:
        return next((t for t in self.outputs if t.name == name), None)


_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def decode_response(
    body: bytes, *, json_length: int | None = None, limits: Limits = DEFAULT_LIMITS
) -> InferResponse:
    """Decode a model server's answer (clients, batch scoring). Float outputs may carry the
    strings "NaN"/"Infinity"/"-Infinity", the encoder's spelling of non-finite results."""
    header, binary = split_body(body, json_length)
    document = loads(header, max_depth=limits.max_depth, what="the response")
    if not isinstance(document, dict) or not isinstance(document.get("outputs"), list):
        raise ProtocolError("the response is not an inference response (no 'outputs' array)")
    view = memoryview(binary) if binary is not None else None
    outputs: list[Tensor] = []
    offset = 0
    for index, raw in enumerate(document["outputs"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise ProtocolError(f"outputs[{index}] has no 'name'")
        data = raw.get("data")
        datatype = DATATYPES.get(raw.get("datatype"))  # type: ignore[arg-type]
        if datatype is not None and datatype.kind == "float" and isinstance(data, list):
            raw = {**raw, "data": _finite_or_spelled(data)}
        tensor, offset = decode_tensor(
            raw, None, binary=view, offset=offset, limits=limits, finite=False
        )
        outputs.append(tensor)
    if view is not None and offset != len(view):
        raise ProtocolError(
            f"the binary data is {len(view)} bytes but the outputs declare {offset}"
        )
    model_version = document.get("model_version")
    return InferResponse(
        model_name=document.get("model_name"),
        model_version=str(model_version) if model_version is not None else None,
        id=document.get("id") if isinstance(document.get("id"), str) else None,
        outputs=tuple(outputs),
    )


def _finite_or_spelled(data: list[Any]) -> list[Any]:
    if not any(type(v) is str or type(v) is list for v in data):
        return data
    return [
        _finite_or_spelled(v) if type(v) is list else _NON_FINITE.get(v, v) if type(v) is str else v
        for v in data
    ]
