"""Which format an input file is in, and the record parser that reads it.

A ``.jsonl``/``.ndjson`` name is JSON Lines (``jsonl_records``), ``.csv`` is CSV
(``csv_records``). Any other name (or none) is decided by the first non-blank line: one whole
JSON object or array → JSON Lines; comma-separated names that are not numbers → CSV; anything
else is an unknown format, which fails the job with that reason. A ``.gz`` suffix is unpacked
on the fly (``is_gzip``), and outputs are named after the input without its suffixes
(``output_stem``).

Record numbers are 1-based line numbers (``lines``), not counting a CSV header; blank lines
are skipped (they are not records) but keep their number, so "record 7" is always line 7.

Its own module: the one place that maps a file onto a parser, apart from each parser's rules.
"""

from __future__ import annotations

import csv
from enum import StrEnum

from functions.batch.csv_records import CsvParser, HeaderMismatch
from functions.batch.jsonl_records import JsonLinesParser
from functions.batch.samples import RecordParser
from functions.core import oip
from functions.core.exceptions import InvalidRequest
from functions.core.oip import Signature

_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
# Stripped from an input's name to name its outputs ("a.csv" → "a.jsonl").
_STRIP_SUFFIXES = (".gz", ".jsonl", ".ndjson", ".csv", ".json", ".txt")


class InputFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


class UnknownFormat(InvalidRequest):
    code = "unknown_format"


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


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
