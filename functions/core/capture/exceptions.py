"""Errors of request capture, shadow traffic and the comparison report."""

from __future__ import annotations

from functions.core.exceptions import InvalidRequest, NotFound


class NoCaptures(NotFound):
    """Nothing was captured for the model/alias in the window asked for."""

    code = "no_captures"


class InvalidCapture(InvalidRequest):
    """A capture file or window that cannot be read as captures (bad ``--since``, a line
    that is not a capture record)."""

    code = "invalid_capture"
