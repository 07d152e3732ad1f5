"""Input files → records: line streaming, format detection, JSON Lines and CSV parsing.

One physical line is one record, always, so a file is read as a stream of lines and never
held whole, and a job can resume at a byte offset. Record numbers are 1-based line numbers,
not counting a CSV header; blank lines are skipped (they are not records) but keep their
number, so "record 7" is always line 7 (line 8 of a CSV).

JSON Lines (``.jsonl``, ``.ndjson``): each line is either
  - an Open Inference Protocol request for one sample, ``{"inputs": [...], "id": ...}``,
    checked by the codec the router and the model server run (``functions.core.oip``; the
    batch axis, if the model has one, must be 1), or
  - an object of plain tensors by input name, ``{"input_ids": [...], "attention_mask":
    [...], "id": ...}`` (each as below), for a model with several inputs, or
  - a plain tensor for a model with a single input: a flat list of values (the sample's
    elements in row-major order, when its shape is fixed) or a list nested like one sample
    (with or without the leading batch axis of 1), or a bare string for a one-element text
    (BYTES) input: ``"a review to classify"``.

CSV (``.csv``): a header row, then one sample per row. A column named ``id`` (any case) is
carried to the result as the record's id; every other column is an element of an input, in
header order. For a single-input model every such column belongs to that input, whatever its
name (``pixel_0 … pixel_63``), and their count must equal the sample's element count. A BYTES
(text) input takes a cell as it is, quotes and all per CSV, an empty cell being the empty
string. For a
model with several inputs a column belongs to the input it is named after: ``x`` or
``x_<n>`` / ``x.<n>`` / ``x[<n>]``. A header that does not fit the signature fails the job.

Any other name (or none) is decided by the first non-blank line: one whole JSON object or
array → JSON Lines; comma-separated names that are not numbers → CSV; anything else is an
unknown format, which fails the job with that reason. A ``.gz`` suffix is unpacked on the fly.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, BinaryIO, Protocol

from functions.core import oip
from functions.core.exceptions import InvalidInput, InvalidRequest
from functions.core.oip import Signature, TensorSpec

_READ_CHUNK = 1 << 16
_BOM = b"\xef\xbb\xbf"
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
# Stripped from an input's name to name its outputs ("a.csv" → "a.jsonl").
_STRIP_SUFFIXES = (".gz", ".jsonl", ".ndjson", ".csv", ".json", ".txt")


class InputFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


class UnknownFormat(InvalidRequest):
    code = "unknown_format"


class HeaderMismatch(InvalidRequest):
    """A CSV header that cannot be mapped onto the signature: nothing in the file can score."""

    code = "csv_header_mismatch"


@dataclass(frozen=True)
class Line:
    number: int  # 1-based physical line number
    data: bytes | None  # without the line break; None for a line over the length limit
    end: int  # byte offset just past this line's break


@dataclass(frozen=True)
class Sample:
    """One valid record: per signature input (in signature order), its elements, row-major,
    and its shape without the batch axis (the whole shape for a model without one)."""

    record: int
    tensors: tuple[tuple[list[Any], tuple[int, ...]], ...]
    id: Any = None

    @property
    def batch_key(self) -> tuple[tuple[int, ...], ...]:
        """Samples of one micro-batch must agree on every input's shape."""
        return tuple(shape for _, shape in self.tensors)


class RecordParser(Protocol):
    def parse(self, data: bytes, *, record: int) -> Sample:
        """Raises ``InvalidInput`` / ``InvalidRequest`` with the reason the record is bad."""


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


def output_stem(name: str) -> str:
    """``a/b.csv`` → ``a/b``; the name outputs are written under."""
    stem = name
    for suffix in _STRIP_SUFFIXES:
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
    return stem


def is_gzip(name: str) -> bool:
    return name.lower().endswith(".gz")


def format_from_name(name: str) -> InputFormat | None:
    lowered = name.lower().removesuffix(".gz")
    for suffix, fmt in _SUFFIXES.items():
        if lowered.endswith(suffix):
            return InputFormat(fmt)
    return None


def sniff_format(first_line: bytes) -> InputFormat:
    """The format of a file whose name does not say, from its first non-blank line."""
    try:
        document = oip.loads(first_line, what="the first line")
    except oip.NestedTooDeep:
        # Still JSON Lines: its first record is then refused on its own, not the file.
        return InputFormat.JSONL
    except InvalidRequest:
        document = None
    if isinstance(document, dict | list):
        return InputFormat.JSONL
    try:
        text = first_line.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    fields = [f.strip() for f in next(csv.reader([text]), [])] if text else []
    if len(fields) >= 2 and all(f and not _is_number(f) for f in fields):
        return InputFormat.CSV
    raise UnknownFormat(
        "unknown input format: name the file .jsonl/.ndjson (one JSON request or tensor per "
        "line) or .csv (a header row, then one sample per row); its first line is neither"
    )


def make_parser(
    fmt: InputFormat, *, signature: Signature, header: bytes | None = None
) -> RecordParser:
    if fmt is InputFormat.JSONL:
        return JsonLinesParser(signature=signature)
    if header is None:
        raise HeaderMismatch("the CSV file has no header row")
    return CsvParser(signature=signature, header=header)


def has_batch_axis(signature: Signature) -> bool:
    """Whether samples can be stacked: every input's first axis is dynamic."""
    return all(spec.shape and spec.shape[0] == -1 for spec in signature.inputs)


class JsonLinesParser:
    def __init__(self, *, signature: Signature) -> None:
        self._signature = signature
        self._batched = has_batch_axis(signature)
        self._text_input = signature.inputs[0].datatype == "BYTES"

    def parse(self, data: bytes, *, record: int) -> Sample:
        document = oip.loads(data, what="the line")
        if isinstance(document, dict):
            if "inputs" in document:
                return self._from_request(document, record=record)
            return self._from_named(document, record=record)
        text_input = len(self._signature.inputs) == 1 and self._text_input
        if isinstance(document, list) or (isinstance(document, str) and text_input):
            inputs = self._signature.inputs
            if len(inputs) != 1:
                names = ", ".join(repr(t.name) for t in inputs)
                raise InvalidRequest(
                    f"the model takes {len(inputs)} inputs ({names}): give each line as an "
                    "object of tensors by input name, or an inference request with 'inputs'"
                )
            tensor = self._plain_tensor(document, inputs[0])
            return self._sample({"inputs": [tensor]}, record=record, row_id=None)
        raise InvalidRequest(
            "a line must be a JSON object (an inference request, or tensors by input name), "
            "an array (a tensor) or, for a model taking one text (BYTES) input, a string"
        )

    def _from_request(self, document: dict[str, Any], *, record: int) -> Sample:
        return self._sample(document, record=record, row_id=document.get("id"))

    def _from_named(self, document: dict[str, Any], *, record: int) -> Sample:
        names = [t.name for t in self._signature.inputs]
        given = set(document) - {"id"}
        if given != set(names):
            raise InvalidRequest(
                f"a JSON object line is an inference request with 'inputs', or the model's "
                f"inputs by name ({', '.join(map(repr, names))}; 'id' optional); this one has "
                f"{', '.join(map(repr, sorted(given)[:5])) or 'neither'}"
            )
        tensors = [self._plain_tensor(document[t.name], t) for t in self._signature.inputs]
        request = {"inputs": tensors}
        return self._sample(request, record=record, row_id=document.get("id"))

    def _sample(self, request: dict[str, Any], *, record: int, row_id: Any) -> Sample:
        """One sample from a one-sample request, checked by the shared codec."""
        decoded = oip.decode_document(request, signature=self._signature)
        tensors = []
        for spec in self._signature.inputs:
            tensor = decoded.input(spec.name)
            assert tensor is not None  # the codec checked every input is there
            assert tensor.values is not None  # JSON data, never raw bytes
            shape = tensor.shape
            if self._batched:
                if shape[0] != 1:
                    raise InvalidInput(
                        f"input {spec.name!r} holds {shape[0]} samples: one line is one "
                        "sample (batch axis 1)"
                    )
                shape = shape[1:]
            tensors.append((tensor.values, shape))
        return Sample(record=record, tensors=tuple(tensors), id=row_id)

    def _plain_tensor(self, data: Any, spec: TensorSpec) -> dict[str, Any]:
        """The request tensor a plain value stands for (a lone value, e.g. a text, is a
        one-element tensor)."""
        if not isinstance(data, list):
            data = [data]
        shape = self._full_shape(data, spec)
        nested: Any = data
        if isinstance(data[0], list):
            # Nesting must follow the shape all the way down: add the implied unit axes.
            for _ in range(len(shape) - len(_nesting(data))):
                nested = [nested]
        return {"name": spec.name, "datatype": spec.datatype, "shape": shape, "data": nested}

    def _full_shape(self, data: list[Any], spec: TensorSpec) -> list[int]:
        """The request shape a plain tensor stands for (batch axis included when batched)."""
        dims = _nesting(data)
        if not dims or dims[0] == 0:
            raise InvalidInput(f"input {spec.name!r}: the tensor is empty")
        per_sample = spec.shape[1:] if self._batched else spec.shape
        lead = [1] if self._batched else []
        if len(dims) == 1 and len(per_sample) != 1:
            if any(d == -1 for d in per_sample):
                raise InvalidInput(
                    f"input {spec.name!r} has dynamic axes {spec.shape}: give the tensor "
                    "nested, so that its shape shows"
                )
            return [*lead, *per_sample]
        if len(dims) == len(per_sample):
            return [*lead, *dims]
        missing = len(per_sample) - len(dims)
        if missing > 0 and all(d == 1 for d in per_sample[:missing]):
            # An 8x8 image for a [-1, 1, 8, 8] input: the unit axes it leaves out are implied.
            return [*lead, *([1] * missing), *dims]
        return dims  # with the batch axis already, or a wrong rank the check will name


class CsvParser:
    def __init__(self, *, signature: Signature, header: bytes) -> None:
        self._signature = signature
        self._batched = has_batch_axis(signature)
        try:
            text = header.decode("utf-8")
        except UnicodeDecodeError:
            raise HeaderMismatch("the CSV header is not UTF-8") from None
        columns = [c.strip() for c in next(csv.reader([text]), [])]
        if not columns or not any(columns):
            raise HeaderMismatch("the CSV file has no header row")
        self._width = len(columns)
        self._id_column = next((i for i, c in enumerate(columns) if c.lower() == "id"), None)
        features = [i for i in range(len(columns)) if i != self._id_column]
        self._columns: list[tuple[TensorSpec, list[int], tuple[int, ...]]] = []
        assigned = self._assign(columns, features)
        for spec in signature.inputs:
            indexes = assigned.get(spec.name, [])
            per_sample = tuple(spec.shape[1:] if self._batched else spec.shape)
            if any(d == -1 for d in per_sample):
                raise HeaderMismatch(
                    f"input {spec.name!r} has dynamic axes {spec.shape}: CSV needs a fixed "
                    "shape per sample; use JSON Lines"
                )
            need = math.prod(per_sample)
            if len(indexes) != need:
                raise HeaderMismatch(
                    f"the CSV header has {len(indexes)} columns for input {spec.name!r}, "
                    f"which takes {need} values per sample (shape {spec.shape})"
                )
            self._columns.append((spec, indexes, per_sample))

    def _assign(self, columns: list[str], features: list[int]) -> dict[str, list[int]]:
        inputs = self._signature.inputs
        if len(inputs) == 1:
            return {inputs[0].name: features}
        assigned: dict[str, list[int]] = {}
        # Longest name first, so that input "x_2" claims "x_2_0" before input "x" does.
        names = sorted((t.name for t in inputs), key=len, reverse=True)
        for index in features:
            column = columns[index]
            owner = next((n for n in names if _belongs(column, n)), None)
            if owner is None:
                raise HeaderMismatch(
                    f"CSV column {column!r} belongs to no input (the model takes "
                    f"{', '.join(repr(t.name) for t in inputs)})"
                )
            assigned.setdefault(owner, []).append(index)
        return assigned

    def parse(self, data: bytes, *, record: int) -> Sample:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("the row is not UTF-8") from None
        try:
            fields = next(csv.reader([text]), [])
        except csv.Error as exc:
            raise InvalidRequest(f"not a CSV row: {exc}") from None
        if len(fields) != self._width:
            raise InvalidRequest(f"the row has {len(fields)} fields, the header {self._width}")
        tensors = []
        request = []
        for spec, indexes, per_sample in self._columns:
            values = [_cell(fields[i], spec) for i in indexes]
            lead = [1] if self._batched else []
            request.append(
                {
                    "name": spec.name,
                    "datatype": spec.datatype,
                    "shape": [*lead, *per_sample],
                    "data": values,
                }
            )
            tensors.append((values, per_sample))
        oip.decode_document({"inputs": request}, signature=self._signature)
        row_id = fields[self._id_column].strip() if self._id_column is not None else None
        return Sample(record=record, tensors=tuple(tensors), id=row_id)


def _belongs(column: str, name: str) -> bool:
    if column == name:
        return True
    rest = column[len(name) :] if column.startswith(name) else ""
    return rest[:1] in ("_", ".", "[") and len(rest) > 1


def _cell(text: str, spec: TensorSpec) -> Any:
    datatype = spec.datatype
    if datatype == "BYTES":
        return text  # text is text: spaces and emptiness are the writer's to choose
    value = text.strip()
    if not value:
        raise InvalidInput(f"input {spec.name!r}: an empty cell")
    if datatype == "BOOL":
        lowered = value.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise InvalidInput(f"input {spec.name!r}: {value!r} is not true/false")
    try:
        return int(value)
    except ValueError:
        pass
    if not datatype.startswith("FP"):
        raise InvalidInput(f"input {spec.name!r}: {value!r} is not an integer")
    try:
        number = float(value)
    except ValueError:
        raise InvalidInput(f"input {spec.name!r}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise InvalidInput(f"input {spec.name!r}: {value!r} is not a finite number")
    return number


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _nesting(data: Any) -> list[int]:
    """The shape a nested list claims, read along its first elements."""
    dims = []
    node = data
    while isinstance(node, list):
        dims.append(len(node))
        if not node:
            break
        node = node[0]
    return dims
