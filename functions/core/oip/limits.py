"""The caps every Open Inference Protocol decoder applies to an untrusted body.

Its own module because all three layers read them (``framing`` the JSON nesting depth,
``decode`` the element count, ``values`` the size of a BYTES element) and the router, batch
scoring and the model server must share one set: a request one accepts, another must not refuse.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    # Deep enough for any real request (envelope + a rank-32 tensor), far below recursion.
    max_depth: int = 64
    # Per tensor; the body size bounds it anyway, this refuses absurd shapes up front.
    max_elements: int = 2**31 - 1
    # Per BYTES element, when the tensor's spec sets no ``max_bytes`` of its own.
    max_bytes_element: int = 1024 * 1024


DEFAULT_LIMITS = Limits()
