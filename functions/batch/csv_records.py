"""CSV records (``.csv``) → samples: a header row, then one sample per row.

A column named ``id`` (any case) is carried to the result as the record's id; every other
column is an element of an input, in header order. For a single-input model every such column
belongs to that input, whatever its name (``pixel_0 … pixel_63``), and their count must equal
the sample's element count. A BYTES (text) input takes a cell as it is, quotes and all per
CSV, an empty cell being the empty string. For a model with several inputs a column belongs to
the input it is named after: ``x`` or ``x_<n>`` / ``x.<n>`` / ``x[<n>]``. A header that does
not fit the signature fails the job. Record numbers do not count the header row, so "record 7"
is line 8 of a CSV.

Its own module: one format's rules, beside ``jsonl_records``; ``formats`` picks between them.
"""

from __future__ import annotations

import csv
import math
from typing import Any

from functions.batch.samples import Sample, has_batch_axis
from functions.core import oip
from functions.core.exceptions import InvalidInput, InvalidRequest
from functions.core.oip import Signature, TensorSpec


class HeaderMismatch(InvalidRequest):
    """A CSV header that cannot be mapped onto the signature: nothing in the file can score."""

    code = "csv_header_mismatch"


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
