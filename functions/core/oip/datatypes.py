"""The Open Inference Protocol datatypes: element size, wire format and value range.

One table for the router, batch scoring, publishing and the model server; the model server
maps the same names to numpy dtypes at its edge (``serving.signature.NUMPY_DTYPES``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["float", "int", "bool", "bytes"]


@dataclass(frozen=True)
class Datatype:
    name: str
    kind: Kind
    # Bytes per element in the binary extension; BYTES elements are length-prefixed instead.
    size: int
    # ``struct`` code of one element (little-endian on the wire); "" for BYTES.
    code: str
    # Integers: the inclusive range. Floats: the largest finite magnitude (above it the value
    # would become inf inside the model).
    low: float = 0
    high: float = 0


def _int(name: str, size: int, code: str, *, signed: bool) -> Datatype:
    bits = size * 8
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return Datatype(name=name, kind="int", size=size, code=code, low=low, high=high)


DATATYPES: dict[str, Datatype] = {
    d.name: d
    for d in (
        Datatype(name="BOOL", kind="bool", size=1, code="?"),
        _int("UINT8", 1, "B", signed=False),
        _int("UINT16", 2, "H", signed=False),
        _int("UINT32", 4, "I", signed=False),
        _int("UINT64", 8, "Q", signed=False),
        _int("INT8", 1, "b", signed=True),
        _int("INT16", 2, "h", signed=True),
        _int("INT32", 4, "i", signed=True),
        _int("INT64", 8, "q", signed=True),
        Datatype(name="FP16", kind="float", size=2, code="e", high=65504.0),
        Datatype(name="FP32", kind="float", size=4, code="f", high=3.4028234663852886e38),
        Datatype(name="FP64", kind="float", size=8, code="d", high=1.7976931348623157e308),
        # UTF-8 text. In JSON each element is a string; in the binary extension each is a
        # 4-byte little-endian length followed by that many bytes.
        Datatype(name="BYTES", kind="bytes", size=0, code=""),
    )
}

# Byte size of one element of each fixed-size datatype.
DATATYPE_SIZES: dict[str, int] = {n: d.size for n, d in DATATYPES.items() if d.kind != "bytes"}
