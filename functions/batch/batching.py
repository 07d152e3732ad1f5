"""Micro-batches: many samples stacked into one Open Inference Protocol request, and the
response split back into one result per sample.

Each sample's data is serialised once, as it is added, so the size of the request body is
known exactly (not estimated) and a batch is closed before it would pass the endpoint's
payload limit (SageMaker real-time endpoints take 6 MB) or the record cap.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from functions.batch.samples import Sample, has_batch_axis
from functions.core.exceptions import PayloadTooLarge, UpstreamError
from functions.core.oip import Signature

_COMPACT = (",", ":")


@dataclass
class MicroBatch:
    signature: Signature
    max_bytes: int
    max_records: int
    samples: list[Sample] = field(default_factory=list)
    # Per input: the JSON text of each sample's elements, without the brackets.
    _fragments: list[list[str]] = field(default_factory=list)
    _data_bytes: int = 0
    _envelope_base: int = 0

    def __post_init__(self) -> None:
        self.batched = has_batch_axis(self.signature)
        if not self.batched:
            # Without a batch axis samples cannot be stacked: one request per sample.
            self.max_records = 1
        self._fragments = [[] for _ in self.signature.inputs]

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def body_bytes(self) -> int:
        return self._envelope_bytes(len(self.samples)) + self._data_bytes

    def _envelope_bytes(self, count: int) -> int:
        """Everything but the data (names, shapes, brackets, commas); an upper bound."""
        inputs = len(self.signature.inputs)
        return self._envelope_base + (len(str(count)) + max(0, count - 1)) * inputs

    def _shape(self, count: int, per_sample: tuple[int, ...]) -> list[int]:
        return [count, *per_sample] if self.batched else list(per_sample)

    def try_add(self, sample: Sample) -> bool:
        """Add ``sample`` unless it would pass a limit or mix shapes (then the batch should be
        sent first). Raises ``PayloadTooLarge`` for a sample that alone passes the limit."""
        if self.samples and (
            len(self.samples) >= self.max_records or sample.batch_key != self.samples[0].batch_key
        ):
            return False
        texts = [_fragment(values) for values, _ in sample.tensors]
        added = sum(map(len, texts))
        if not self.samples:
            self._envelope_base = _envelope(self.signature, sample, self._shape)
            size = self._envelope_bytes(1) + added
            if size > self.max_bytes:
                raise PayloadTooLarge(
                    f"the record alone makes a {size}-byte request, over the endpoint's "
                    f"{self.max_bytes}-byte limit"
                )
        elif self._envelope_bytes(len(self.samples) + 1) + self._data_bytes + added > (
            self.max_bytes
        ):
            return False
        for index, text in enumerate(texts):
            self._fragments[index].append(text)
        self._data_bytes += added
        self.samples.append(sample)
        return True

    def clear(self) -> None:
        self.samples = []
        self._fragments = [[] for _ in self.signature.inputs]
        self._data_bytes = 0

    def body(self, window: slice | None = None) -> bytes:
        """The request for all samples, or for a window of them (to split a batch)."""
        window = window or slice(0, len(self.samples))
        chosen = self.samples[window]
        count = len(chosen)
        parts = []
        for index, spec in enumerate(self.signature.inputs):
            shape = self._shape(count, chosen[0].tensors[index][1])
            head = json.dumps(
                {"name": spec.name, "datatype": spec.datatype, "shape": shape},
                separators=_COMPACT,
            )
            data = ",".join(self._fragments[index][window])
            parts.append(f'{head[:-1]},"data":[{data}]}}')
        return ('{"inputs":[' + ",".join(parts) + "]}").encode("ascii")


def _envelope(signature: Signature, sample: Sample, shape: Any) -> int:
    """The bytes of a one-sample request without its data, plus slack for the separators."""
    size = len('{"inputs":[]}')
    for index, spec in enumerate(signature.inputs):
        head = {
            "name": spec.name,
            "datatype": spec.datatype,
            "shape": shape(1, sample.tensors[index][1]),
        }
        size += len(json.dumps(head, separators=_COMPACT)) + len(',"data":[]') + 1
    return size + 16


def _fragment(values: list[Any]) -> str:
    # ensure_ascii (the default) keeps len(text) equal to its size in bytes.
    return json.dumps(values, separators=_COMPACT)[1:-1]


def split_outputs(
    *, body: bytes, count: int, batched: bool
) -> tuple[list[list[dict[str, Any]]], str | None]:
    """One list of output tensors per sample (each shaped like a one-sample response), and
    the model version the response names. Raises ``UpstreamError`` for a response that does
    not hold ``count`` results."""
    try:
        document = json.loads(body)
        outputs = document["outputs"]
        if not isinstance(outputs, list) or not outputs:
            raise TypeError("no outputs")
    except (ValueError, KeyError, TypeError) as exc:
        raise UpstreamError(f"the model's response is not an inference response: {exc}") from None
    per_sample: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    for output in outputs:
        name, datatype, shape = output.get("name"), output.get("datatype"), output.get("shape")
        data = _flat(output.get("data"))
        if not isinstance(shape, list) or not shape or math.prod(shape) != len(data):
            raise UpstreamError(f"output {name!r}: shape {shape} does not match its data")
        if not batched:
            per_sample[0].append({"name": name, "datatype": datatype, "shape": shape, "data": data})
            continue
        if shape[0] != count:
            raise UpstreamError(
                f"output {name!r} has {shape[0]} rows for a batch of {count} records"
            )
        step = len(data) // count
        one = [1, *shape[1:]]
        for index in range(count):
            per_sample[index].append(
                {
                    "name": name,
                    "datatype": datatype,
                    "shape": one,
                    "data": data[index * step : (index + 1) * step],
                }
            )
    return per_sample, _version_of(document)


def _version_of(document: dict[str, Any]) -> str | None:
    version = document.get("model_version")
    return str(version) if version is not None else None


def _flat(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return []
    if data and isinstance(data[0], list):
        out: list[Any] = []
        for item in data:
            out.extend(_flat(item))
        return out
    return data
