"""Reading an Open Inference Protocol body off the wire: its content types, where the JSON part
of a binary-extension body ends, and parsing that JSON from untrusted bytes.

Its own module because requests and responses (``decode``, ``response``) are framed alike and
the encoder (``encode``) writes the same content types: this is the one place that says how
the bytes of a body split into a JSON document and its tensor data, below any tensor rules.

- JSON nesting deeper than ``max_depth`` is refused before ``json`` recurses into it;
- JSON cannot spell NaN or Infinity, so ``loads`` does not accept them either;
- the JSON length (``Inference-Header-Content-Length``, or SageMaker's ``json-header-size``
  content-type parameter) must fit the bytes that really follow.

Statuses: 400 ``invalid_request`` (``ProtocolError``, ``NestedTooDeep``).
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any, NoReturn

from functions.core.oip.exceptions import NestedTooDeep, ProtocolError
from functions.core.oip.limits import DEFAULT_LIMITS

JSON_CONTENT_TYPE = "application/json"
# SageMaker strips custom headers, so its binary form carries the JSON length in the type.
BINARY_CONTENT_TYPE = "application/vnd.sagemaker-triton.binary+json"
HEADER_LENGTH = "inference-header-content-length"
# The binary extension's BYTES element: a 4-byte little-endian length, then that many bytes.
BYTES_LENGTH = struct.Struct("<I")

# A JSON string, escapes included (unrolled so that long strings cost no backtracking).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# Keeps only brackets and braces, and spells both as brackets.
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def header_length(*, content_type: str | None, header: str | None) -> int | None:
    """Where the JSON part of a binary request ends (``Inference-Header-Content-Length``, or
    SageMaker's ``json-header-size`` content-type parameter), or None for a JSON body.

    The header wins when both are present; SageMaker clients can only use the content type.
    """
    raw = header
    if raw is None and content_type:
        media, *params = (p.strip() for p in content_type.split(";"))
        if media.lower() == BINARY_CONTENT_TYPE:
            for param in params:
                key, _, value = param.partition("=")
                if key.strip().lower() == "json-header-size":
                    raw = value.strip().strip('"')
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise ProtocolError(
            f"Inference-Header-Content-Length must be an integer (a byte count), got {raw!r}"
        )
    return int(raw)


def loads(
    data: bytes, *, max_depth: int = DEFAULT_LIMITS.max_depth, what: str = "the request body"
) -> Any:
    """``json.loads`` for untrusted bytes: UTF-8 only, no NaN/Infinity, nesting at most
    ``max_depth`` deep (checked without recursing, before the parser recurses)."""
    if data.count(b"[") + data.count(b"{") > max_depth:
        _check_depth(data, max_depth=max_depth, what=what)
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:  # belt and braces: _check_depth should have refused it
        raise NestedTooDeep(f"{what} nests JSON more than {max_depth} levels deep") from None
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{what} is not valid JSON: it is not UTF-8 ({exc.reason})") from None
    except ValueError as exc:
        raise ProtocolError(f"{what} is not valid JSON: {exc}") from None


def _check_depth(data: bytes, *, max_depth: int, what: str) -> None:
    # Brackets inside strings do not nest; drop the strings, keep only brackets, then peel
    # innermost "[]" pairs one level per pass (C speed): whatever is left after ``max_depth``
    # passes is nested deeper than that.
    skeleton = _JSON_STRING.sub(b"", data) if b'"' in data else data
    skeleton = skeleton.translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(max_depth):
        peeled = skeleton.replace(b"[]", b"")
        if len(peeled) == len(skeleton):
            break
        skeleton = peeled
    if skeleton and b"[]" in skeleton:
        raise NestedTooDeep(f"{what} nests JSON more than {max_depth} levels deep")


def _reject_constant(token: str) -> NoReturn:
    raise ValueError(f"{token} is not valid JSON; send finite numbers")


def split_body(body: bytes, json_length: int | None) -> tuple[bytes, memoryview | None]:
    """The JSON part and the binary part (None for a plain JSON body)."""
    if json_length is None:
        return body, None
    if not 0 < json_length <= len(body):
        raise ProtocolError(
            f"Inference-Header-Content-Length {json_length} does not fit a {len(body)}-byte body"
        )
    view = memoryview(body)
    return bytes(view[:json_length]), view[json_length:]
