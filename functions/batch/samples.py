"""What a record parser yields: one valid ``Sample`` per record, and the parser's protocol.

Its own module because both parsers (``jsonl_records``, ``csv_records``), format detection
(``formats``), micro-batching (``batching``) and the job runner share these names, while the
parsers must not depend on format detection (which picks among them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from functions.core.oip import Signature


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


def has_batch_axis(signature: Signature) -> bool:
    """Whether samples can be stacked: every input's first axis is dynamic."""
    return all(spec.shape and spec.shape[0] == -1 for spec in signature.inputs)
