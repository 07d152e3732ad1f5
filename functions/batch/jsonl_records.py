"""JSON Lines records (``.jsonl``, ``.ndjson``) → samples, one line each.

Each line is either
  - an Open Inference Protocol request for one sample, ``{"inputs": [...], "id": ...}``,
    checked by the codec the router and the model server run (``functions.core.oip``; the
    batch axis, if the model has one, must be 1), or
  - an object of plain tensors by input name, ``{"input_ids": [...], "attention_mask":
    [...], "id": ...}`` (each as below), for a model with several inputs, or
  - a plain tensor for a model with a single input: a flat list of values (the sample's
    elements in row-major order, when its shape is fixed) or a list nested like one sample
    (with or without the leading batch axis of 1), or a bare string for a one-element text
    (BYTES) input: ``"a review to classify"``.

Its own module: one format's rules, beside ``csv_records``; ``formats`` picks between them.
"""

from __future__ import annotations

from typing import Any

from functions.batch.samples import Sample, has_batch_axis
from functions.core import oip
from functions.core.exceptions import InvalidInput, InvalidRequest
from functions.core.oip import Signature, TensorSpec


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
