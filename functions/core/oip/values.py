"""What a valid element of each Open Inference Protocol datatype is, sent as JSON or as bytes.

Its own module because it is the rule per element, apart from the shape of a request
(``decode``): the router, batch scoring and the model server all check values here, requests
and responses alike (``finite=False`` for a model's answer, which may be NaN or infinite).

- floating-point inputs must be finite in JSON *and* binary form: JSON cannot spell NaN or
  Infinity, so the binary form does not get to either (one rule; a NaN input is a client bug);
- numbers must fit their datatype, BOOL is true/false (bytes 0 or 1 in binary);
- BYTES elements are UTF-8, each at most ``TensorSpec.max_bytes`` (else ``Limits``) long, and
  binary BYTES length prefixes must fit the bytes that really follow.

Statuses: 422 ``invalid_tensor`` (``TensorError``), 413 ``payload_too_large``
(``TensorTooLarge``) for an element beyond the limits.
"""

from __future__ import annotations

import array
import math
import struct
import sys
from typing import Any

from functions.core.oip.datatypes import Datatype
from functions.core.oip.exceptions import TensorError, TensorTooLarge
from functions.core.oip.framing import BYTES_LENGTH
from functions.core.oip.limits import DEFAULT_LIMITS, Limits

_BOOL_BYTES = b"\x00\x01"
_NUMBER_TYPES = frozenset((int, float))


def check_values(
    values: list[Any],
    dtype: Datatype,
    *,
    where: str,
    max_bytes: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    finite: bool = True,
) -> None:
    """Raise unless every element of ``values`` is a valid ``dtype`` value (the JSON form).
    ``finite=False`` (responses only) lets floats be NaN or infinite."""
    if not values:
        return
    types = set(map(type, values))
    if list in types:
        raise TensorError(f"{where}: data is nested deeper than shape")
    kind = dtype.kind
    if kind == "float":
        if not types <= _NUMBER_TYPES:
            bad = next(v for v in values if type(v) not in _NUMBER_TYPES)
            raise TensorError(f"{where}: {dtype.name} data must be numbers, got {short_repr(bad)}")
        if not finite:
            return
        if float in types and not all(map(math.isfinite, values)):
            raise TensorError(f"{where}: {dtype.name} data must be finite numbers")
        if max(values) > dtype.high or min(values) < -dtype.high:
            raise TensorError(f"{where}: a value is out of range for {dtype.name}")
    elif kind == "int":
        if types != {int}:
            bad = next(v for v in values if type(v) is not int)
            raise TensorError(f"{where}: {dtype.name} data must be integers, got {short_repr(bad)}")
        if min(values) < dtype.low or max(values) > dtype.high:
            raise TensorError(f"{where}: a value is out of range for {dtype.name}")
    elif kind == "bool":
        if types != {bool}:
            bad = next(v for v in values if type(v) is not bool)
            raise TensorError(f"{where}: BOOL data must be true/false, got {short_repr(bad)}")
    else:
        if types != {str}:
            bad = next(v for v in values if type(v) is not str)
            raise TensorError(f"{where}: BYTES data must be strings, got {short_repr(bad)}")
        _check_strings(values, where=where, max_bytes=max_bytes, limits=limits)


def _check_strings(values: list[str], *, where: str, max_bytes: int | None, limits: Limits) -> None:
    longest = max(map(len, values))
    # A character is at most 4 UTF-8 bytes: only texts that could be over a cap are encoded.
    for cap, error in ((max_bytes, TensorError), (limits.max_bytes_element, TensorTooLarge)):
        if cap is not None and longest * 4 > cap:
            for index, text in enumerate(values):
                if len(text) * 4 > cap and len(_utf8(text, where=where)) > cap:
                    raise error(
                        f"{where}: element {index} is {len(_utf8(text, where=where))} bytes "
                        f"of UTF-8, more than the {cap} allowed"
                    )
    # Lone surrogates ("\ud800") parse from JSON but are not text: refuse them here rather
    # than as an encoding error inside the model server.
    if not all(map(str.isascii, values)):
        for text in values:
            _utf8(text, where=where)


def _utf8(text: str, *, where: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise TensorError(f"{where}: BYTES data must be valid UTF-8 text") from None


def binary_strings(
    chunk: memoryview, count: int, *, where: str, max_bytes: int | None, limits: Limits
) -> list[str]:
    """BYTES elements are each a 4-byte length then that many bytes; they must fill ``chunk``."""
    if count * BYTES_LENGTH.size > len(chunk):
        raise TensorError(f"{where}: binary BYTES data holds fewer than {count} items")
    cap = min(max_bytes or limits.max_bytes_element, limits.max_bytes_element)
    values: list[str] = []
    position = 0
    for index in range(count):
        if position + BYTES_LENGTH.size > len(chunk):
            raise TensorError(f"{where}: binary BYTES data holds fewer than {count} items")
        (length,) = BYTES_LENGTH.unpack_from(chunk, position)
        position += BYTES_LENGTH.size
        if position + length > len(chunk):
            raise TensorError(
                f"{where}: binary BYTES element {index} claims {length} bytes, past the end of "
                "its data"
            )
        if length > cap:
            error = TensorError if max_bytes is not None and length > max_bytes else TensorTooLarge
            raise error(f"{where}: element {index} is {length} bytes, more than the {cap} allowed")
        try:
            values.append(str(chunk[position : position + length], "utf-8"))
        except UnicodeDecodeError:
            raise TensorError(f"{where}: BYTES element {index} is not valid UTF-8") from None
        position += length
    if position != len(chunk):
        raise TensorError(f"{where}: binary BYTES data does not hold exactly {count} elements")
    return values


def check_binary(chunk: memoryview, dtype: Datatype, *, where: str) -> None:
    if dtype.kind == "bool":
        if bytes(chunk).translate(None, _BOOL_BYTES):
            raise TensorError(f"{where}: binary BOOL data must be bytes 0 or 1")
        return
    if dtype.kind != "float":
        return  # every bit pattern is a valid integer
    # NaN and infinities have every exponent bit set. The top byte of each little-endian value
    # holds the sign and the exponent's high bits: a value whose top byte shows them all set
    # is rare (FP32 >= 2**127, FP64 >= 2**1023), so only then are the values looked at.
    top = bytes(chunk)[dtype.size - 1 :: dtype.size]  # a strided memoryview copies slowly
    if not top.translate(None, _NOT_EXPONENT_TOP[dtype.size]):
        return
    if dtype.size == 2:
        finite = all(map(math.isfinite, (v for (v,) in struct.iter_unpack("<e", chunk))))
    else:
        values = array.array(dtype.code)
        values.frombytes(chunk)
        if sys.byteorder == "big":
            values.byteswap()
        finite = all(map(math.isfinite, values))
    if not finite:
        raise TensorError(f"{where}: {dtype.name} data must be finite numbers")


# Per float size: the top bytes that cannot belong to a NaN or an infinity.
_NOT_EXPONENT_TOP = {
    2: bytes(b for b in range(256) if b & 0x7C != 0x7C),  # FP16: 5 exponent bits
    4: bytes(b for b in range(256) if b & 0x7F != 0x7F),  # FP32, FP64: the top 7 of 8 / 11
    8: bytes(b for b in range(256) if b & 0x7F != 0x7F),
}


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
