"""A byte stream → its physical lines, with their numbers and byte offsets.

One physical line is one record, always, so a file is read as a stream of lines and never
held whole, and a job can resume at a byte offset. Line numbers are 1-based; blank lines are
yielded too (the caller skips them: they are not records, but keep their number). A UTF-8 byte
order mark before the first line is dropped.

Its own module because it knows nothing of formats: JSON Lines and CSV files alike are read
through this one reader, and a job resumes by skipping it to a saved offset (``skip_to``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

_READ_CHUNK = 1 << 16
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Line:
    number: int  # 1-based physical line number
    data: bytes | None  # without the line break; None for a line over the length limit
    end: int  # byte offset just past this line's break


class LineReader:
    """Splits a byte stream (anything with ``read(n)``) into lines, tracking byte offsets.

    A line longer than ``max_line_bytes`` is not buffered: it is consumed and yielded with
    ``data=None`` so that one runaway line cannot exhaust memory.
    """

    def __init__(self, stream: BinaryIO, *, max_line_bytes: int) -> None:
        self._stream = stream
        self._max = max_line_bytes
        self._buffer = b""
        self._pos = 0  # next unread byte in _buffer
        self._base = 0  # stream offset of _buffer[0]
        self._number = 0
        self._eof = False
        self._first = True

    @property
    def line_number(self) -> int:
        return self._number

    @property
    def offset(self) -> int:
        """Stream offset of the next unread byte (a line start between lines)."""
        return self._base + self._pos

    def skip_to(self, *, offset: int, line_number: int) -> None:
        """Move to ``offset`` (a line start at or after the current one) without parsing."""
        seekable = getattr(self._stream, "seekable", None)
        if offset > self.offset and callable(seekable) and seekable():
            self._stream.seek(offset)
            self._base, self._buffer, self._pos, self._eof = offset, b"", 0, False
        while self._base + len(self._buffer) < offset and not self._eof:
            # Drop what is buffered and read on; nothing before ``offset`` is kept.
            self._base += len(self._buffer)
            self._buffer, self._pos = b"", 0
            self._fill()
        self._pos = min(len(self._buffer), max(self._pos, offset - self._base))
        self._number = line_number
        self._first = False

    def _fill(self) -> None:
        chunk = self._stream.read(_READ_CHUNK)
        if not chunk:
            self._eof = True
            return
        # Compact only here, once per chunk: slicing per line would copy the buffer per line.
        self._buffer = self._buffer[self._pos :] + chunk
        self._base += self._pos
        self._pos = 0

    def __iter__(self) -> Iterator[Line]:
        return self

    def __next__(self) -> Line:
        oversize = False
        while True:
            newline = self._buffer.find(b"\n", self._pos)
            if newline >= 0:
                data, stop = self._buffer[self._pos : newline], newline + 1
                break
            if self._eof:
                if self._pos >= len(self._buffer) and not oversize:
                    raise StopIteration
                data, stop = self._buffer[self._pos :], len(self._buffer)
                break
            if len(self._buffer) - self._pos > self._max:
                oversize = True
                self._base += len(self._buffer)
                self._buffer, self._pos = b"", 0
            self._fill()
        self._pos = stop
        self._number += 1
        if self._first:
            self._first = False
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        end = self._base + self._pos
        if oversize or len(data) > self._max:
            return Line(number=self._number, data=None, end=end)
        return Line(number=self._number, data=data.rstrip(b"\r"), end=end)
