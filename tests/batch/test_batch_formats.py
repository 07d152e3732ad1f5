"""Records from lines: the line reader's offsets, format detection, and the parsing rules for
JSON Lines and CSV against a signature."""

from __future__ import annotations

import io
import json

import pytest

from functions.batch.batching import MicroBatch, split_outputs
from functions.batch.csv_records import CsvParser, HeaderMismatch
from functions.batch.formats import InputFormat, format_from_name, output_stem, sniff_format
from functions.batch.jsonl_records import JsonLinesParser
from functions.batch.lines import LineReader
from functions.core.exceptions import InvalidInput, InvalidRequest, PayloadTooLarge, UpstreamError
from functions.core.oip import Signature

DIGITS = Signature.from_dict(
    {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}],
    }
)
TWO_INPUTS = Signature.from_dict(
    {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [-1, 2]},
            {"name": "x_mask", "datatype": "INT64", "shape": [-1, 2]},
        ],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
    }
)
IMAGE = [[float(r * 8 + c) for c in range(8)] for r in range(8)]
FLAT = [v for line in IMAGE for v in line]


def lines_of(data: bytes, max_line_bytes: int = 100) -> list[tuple[int, bytes | None, int]]:
    reader = LineReader(io.BytesIO(data), max_line_bytes=max_line_bytes)
    return [(line.number, line.data, line.end) for line in reader]


def test_line_reader_tracks_numbers_and_byte_offsets() -> None:
    data = b"\xef\xbb\xbfa\r\nbb\n\nccc"
    assert lines_of(data) == [(1, b"a", 6), (2, b"bb", 9), (3, b"", 10), (4, b"ccc", 13)]


def test_line_reader_does_not_buffer_a_runaway_line() -> None:
    data = b"ok\n" + b"x" * 300_000 + b"\nafter\n"
    assert lines_of(data, max_line_bytes=1000) == [
        (1, b"ok", 3), (2, None, 300_004), (3, b"after", 300_010)
    ]  # fmt: skip


class _Unseekable(io.RawIOBase):
    """Like S3's streaming body: read only."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._inner.read(size)


@pytest.mark.parametrize("seekable", [True, False])
def test_line_reader_resumes_at_an_offset(seekable: bool) -> None:
    data = b"".join(f"line {n}\n".encode() for n in range(1, 20001))
    offset = len(b"".join(f"line {n}\n".encode() for n in range(1, 15001)))
    stream = io.BytesIO(data) if seekable else _Unseekable(data)
    reader = LineReader(stream, max_line_bytes=100)  # type: ignore[arg-type]
    reader.skip_to(offset=offset, line_number=15000)
    first = next(reader)
    assert (first.number, first.data) == (15001, b"line 15001")
    assert sum(1 for _ in reader) == 4999


def test_format_from_name_and_sniffing() -> None:
    assert format_from_name("a.JSONL") is InputFormat.JSONL
    assert format_from_name("a.ndjson.gz") is InputFormat.JSONL
    assert format_from_name("a.csv") is InputFormat.CSV
    assert format_from_name("a.json") is None
    assert sniff_format(b'{"inputs": []}') is InputFormat.JSONL
    assert sniff_format(b"[1, 2]") is InputFormat.JSONL
    assert sniff_format(b"id,pixel_0,pixel_1") is InputFormat.CSV
    for line in (b"[", b"1,2,3", b"hello", b"\xff\xfe"):
        with pytest.raises(InvalidRequest, match="unknown input format"):
            sniff_format(line)
    assert output_stem("dir/a.csv") == "dir/a"
    assert output_stem("a.jsonl.gz") == "a"
    assert output_stem(".csv") == ".csv"


@pytest.mark.parametrize(
    "document",
    [
        FLAT,
        IMAGE,
        [IMAGE],
        [[IMAGE]],
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": FLAT}]},
        {
            "inputs": [
                {"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [[IMAGE]]}
            ]
        },
    ],
    ids=["flat", "8x8", "1x8x8", "1x1x8x8", "request", "request-nested"],
)
def test_jsonl_accepts_one_digit_in_every_natural_form(document: object) -> None:
    sample = JsonLinesParser(signature=DIGITS).parse(json.dumps(document).encode(), record=3)
    assert sample.record == 3
    assert sample.tensors == ((FLAT, (1, 8, 8)),)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"", "not valid JSON"),
        (b"NaN", "not valid JSON"),
        (b"[]", "empty"),
        (b"[1, 2, 3]", "holds 64 elements but data has 3"),
        (b'"x"', "JSON object"),
        (b'{"data": [1]}', "with 'inputs'"),
        (json.dumps([[IMAGE, IMAGE]]).encode(), "does not match"),
        (json.dumps([*FLAT[:-1], True]).encode(), "must be numbers"),
    ],
)
def test_jsonl_refuses_bad_lines_with_a_reason(line: bytes, message: str) -> None:
    with pytest.raises((InvalidInput, InvalidRequest), match=message):
        JsonLinesParser(signature=DIGITS).parse(line, record=1)


def test_plain_tensors_need_a_single_input_model() -> None:
    with pytest.raises(InvalidRequest, match="takes 2 inputs"):
        JsonLinesParser(signature=TWO_INPUTS).parse(b"[1, 2]", record=1)


def test_csv_columns_map_to_inputs_by_name_for_several_inputs() -> None:
    parser = CsvParser(signature=TWO_INPUTS, header=b"x_mask_0,ID,x_0,x_1,x_mask_1")
    sample = parser.parse(b"1,row-9,0.5,2,0", record=1)
    assert sample.id == "row-9"
    assert sample.tensors == (([0.5, 2], (2,)), ([1, 0], (2,)))
    with pytest.raises(InvalidInput, match="not an integer"):
        parser.parse(b"1.5,r,0.5,2,0", record=2)
    with pytest.raises(HeaderMismatch, match="belongs to no input"):
        CsvParser(signature=TWO_INPUTS, header=b"x_0,x_1,z,x_mask_0,x_mask_1")


def test_csv_for_a_single_input_takes_every_column_but_id() -> None:
    header = ",".join(["id", *[f"pixel_{i}" for i in range(64)]]).encode()
    parser = CsvParser(signature=DIGITS, header=header)
    sample = parser.parse(b"7," + ",".join(str(int(v)) for v in FLAT).encode(), record=1)
    assert sample.tensors == ((FLAT, (1, 8, 8)),)
    with pytest.raises(InvalidInput, match="not a finite number"):
        parser.parse(b"7," + b",".join([b"inf"] * 64), record=2)


def sample_for(n: int) -> object:
    return JsonLinesParser(signature=DIGITS).parse(json.dumps([n] * 64).encode(), record=n)


def test_micro_batch_bodies_are_exact_requests_under_the_limit() -> None:
    batch = MicroBatch(signature=DIGITS, max_bytes=2_000, max_records=100)
    added = 0
    while batch.try_add(sample_for(added + 10)):  # type: ignore[arg-type]
        added += 1
    body = batch.body()
    assert len(body) <= 2_000
    # Full: one more record (193 bytes) would pass the limit, give or take the estimate's
    # few bytes of slack on the envelope.
    assert len(body) + 193 > 2_000 - 32
    document = json.loads(body)
    (tensor,) = document["inputs"]
    assert tensor["shape"] == [added, 1, 8, 8]
    assert len(tensor["data"]) == added * 64
    assert tensor["data"][:2] == [10, 10]
    assert tensor["data"][-1] == added + 9
    half = json.loads(batch.body(slice(1, 3)))
    assert half["inputs"][0]["shape"] == [2, 1, 8, 8]
    with pytest.raises(PayloadTooLarge):
        MicroBatch(signature=DIGITS, max_bytes=100, max_records=9).try_add(sample_for(1))  # type: ignore[arg-type]


def test_split_outputs_gives_one_result_per_record_or_refuses_the_response() -> None:
    body = json.dumps(
        {
            "model_version": "3",
            "outputs": [
                {"name": "logits", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3, 4]]},
                {"name": "label", "datatype": "INT64", "shape": [2], "data": [1, 1]},
            ],
        }
    ).encode()
    per_record, version = split_outputs(body=body, count=2, batched=True)
    assert version == "3"
    assert per_record[1] == [
        {"name": "logits", "datatype": "FP32", "shape": [1, 2], "data": [3, 4]},
        {"name": "label", "datatype": "INT64", "shape": [1], "data": [1]},
    ]
    with pytest.raises(UpstreamError, match="2 rows for a batch of 3"):
        split_outputs(body=body, count=3, batched=True)
    with pytest.raises(UpstreamError, match="not an inference response"):
        split_outputs(body=b"<html>", count=1, batched=True)
