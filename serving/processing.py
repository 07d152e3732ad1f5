"""Pre- and post-processing the model server runs around an ONNX graph, declared in the
manifest as data (never code): text in, tensors the graph takes, tensors a client wants out.

The manifest's ``processing`` section, for a sentence-embedding model::

    "processing": {
      "pre": [{"op": "tokenize", "input": "text", "file": "tokenizer.json",
               "sha256": "...", "max_length": 256, "pad_id": 0, "pad_type_id": 0,
               "input_ids": "input_ids", "attention_mask": "attention_mask",
               "token_type_ids": "token_type_ids"}],
      "post": [{"op": "mean_pool", "input": "last_hidden_state", "output": "embedding"},
               {"op": "l2_normalize", "input": "embedding", "output": "embedding"}]
    }

and for a text classifier ``post`` is ``softmax`` (``logits`` -> ``probabilities``) then
``label_map`` (``probabilities`` -> ``label``, the top class's name, BYTES). The manifest's
``signature`` is what a client sees (``text`` in, ``embedding`` out); ``graph_signature`` is the
ONNX graph's own (``input_ids`` ... in, ``last_hidden_state`` out).

Tokenizing runs on a whole batch at once (the dynamic batcher's), so the batch is padded to its
own longest row, never to a fixed length; the attention mask keeps padding out of every row's
result, and pooling averages only real tokens, so a row's embedding does not depend on the
rows it was batched with (up to float rounding). This module is the only reader of the section:
the model server runs it and ``model_build`` checks an artifact with it before publishing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from serving.exceptions import ArtifactError, InvalidTensor

Tensors = dict[str, np.ndarray]

# The longest sequence any tokenize step may declare: BERT-style encoders stop at 512, and
# long-context encoders at a few thousand; anything larger is a typo, not a model.
MAX_SEQUENCE_LENGTH = 8192


def _text(raw: Mapping[str, Any], key: str, *, where: str, optional: bool = False) -> Any:
    value = raw.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ArtifactError(f"manifest processing {where}: {key!r} must be a non-empty string")
    return value


def _int(raw: Mapping[str, Any], key: str, *, where: str, low: int, high: int) -> int:
    value = raw.get(key)
    if type(value) is not int or not low <= value <= high:
        raise ArtifactError(
            f"manifest processing {where}: {key!r} must be an integer in [{low}, {high}], "
            f"got {value!r}"
        )
    return value


@dataclass(frozen=True)
class Tokenize:
    """A BYTES input (one string per row) -> the graph's token id / mask / type id inputs."""

    input: str
    file: str
    sha256: str
    max_length: int
    pad_id: int
    pad_type_id: int
    input_ids: str
    attention_mask: str
    token_type_ids: str | None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Tokenize:
        where = "tokenize"
        file = _text(raw, "file", where=where)
        if PurePosixPath(file).name != file or file in (".", ".."):
            raise ArtifactError(f"manifest processing tokenize: file must be a bare name: {file!r}")
        sha256 = _text(raw, "sha256", where=where)
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ArtifactError("manifest processing tokenize: sha256 must be 64 hex characters")
        return cls(
            input=_text(raw, "input", where=where),
            file=file,
            sha256=sha256,
            max_length=_int(raw, "max_length", where=where, low=2, high=MAX_SEQUENCE_LENGTH),
            pad_id=_int(raw, "pad_id", where=where, low=0, high=2**31 - 1),
            pad_type_id=_int(raw, "pad_type_id", where=where, low=0, high=2**31 - 1),
            input_ids=_text(raw, "input_ids", where=where),
            attention_mask=_text(raw, "attention_mask", where=where),
            token_type_ids=_text(raw, "token_type_ids", where=where, optional=True),
        )

    @property
    def feeds(self) -> tuple[str, ...]:
        names = (self.input_ids, self.attention_mask, self.token_type_ids)
        return tuple(name for name in names if name is not None)


@dataclass(frozen=True)
class PostStep:
    op: str
    input: str
    output: str
    # label_map only: class index -> name.
    labels: tuple[str, ...] = ()


POST_OPS = ("mean_pool", "l2_normalize", "softmax", "label_map")


def _parse_post(raw: Mapping[str, Any]) -> PostStep:
    op = raw.get("op")
    if op not in POST_OPS:
        raise ArtifactError(f"manifest processing: unknown post op {op!r} (known: {POST_OPS})")
    labels: tuple[str, ...] = ()
    if op == "label_map":
        raw_labels = raw.get("labels")
        if (
            not isinstance(raw_labels, list)
            or not raw_labels
            or not all(isinstance(label, str) for label in raw_labels)
        ):
            raise ArtifactError("manifest processing label_map: labels must be a list of strings")
        labels = tuple(raw_labels)
    return PostStep(
        op=op,
        input=_text(raw, "input", where=op),
        output=_text(raw, "output", where=op),
        labels=labels,
    )


@dataclass(frozen=True)
class Processing:
    tokenize: Tokenize
    post: tuple[PostStep, ...]

    @property
    def files(self) -> dict[str, str]:
        """Artifact files the steps read, with their sha256."""
        return {self.tokenize.file: self.tokenize.sha256}

    @classmethod
    def parse(cls, raw: Any) -> Processing:
        if not isinstance(raw, Mapping):
            raise ArtifactError("manifest processing must be an object")
        pre, post = raw.get("pre"), raw.get("post", [])
        if not isinstance(pre, list) or len(pre) != 1 or not isinstance(pre[0], Mapping):
            raise ArtifactError("manifest processing: 'pre' must hold exactly one tokenize step")
        if pre[0].get("op") != "tokenize":
            raise ArtifactError(f"manifest processing: unknown pre op {pre[0].get('op')!r}")
        if not isinstance(post, list) or not all(isinstance(step, Mapping) for step in post):
            raise ArtifactError("manifest processing: 'post' must be a list of steps")
        return cls(tokenize=Tokenize.parse(pre[0]), post=tuple(_parse_post(s) for s in post))

    def check(
        self,
        *,
        inputs: Sequence[str],
        outputs: Sequence[str],
        graph_inputs: Sequence[str],
        graph_outputs: Sequence[str],
    ) -> None:
        """Refuse a section that does not connect the client's signature to the graph's:
        the tokenized input is the only input, it feeds exactly the graph's inputs, and every
        client output comes out of the post steps (or straight from the graph)."""
        tok = self.tokenize
        if list(inputs) != [tok.input]:
            raise ArtifactError(
                f"manifest signature inputs {list(inputs)} must be exactly the tokenized "
                f"input [{tok.input!r}]"
            )
        if sorted(graph_inputs) != sorted(tok.feeds):
            raise ArtifactError(
                f"the tokenizer feeds {sorted(tok.feeds)}, the graph takes {sorted(graph_inputs)}"
            )
        available = set(graph_outputs)
        for step in self.post:
            if step.input not in available:
                raise ArtifactError(
                    f"manifest processing {step.op}: input {step.input!r} is not produced by "
                    f"the graph or an earlier step (have {sorted(available)})"
                )
            available.add(step.output)
        missing = [name for name in outputs if name not in available]
        if missing:
            raise ArtifactError(
                f"manifest signature output {missing[0]!r} is produced by no processing step"
            )


class TextPipeline:
    """A parsed ``Processing`` bound to its tokenizer file: ``encode`` texts into graph feeds,
    ``decode`` graph outputs into the client's outputs."""

    def __init__(self, processing: Processing, *, root: Path) -> None:
        from tokenizers import Tokenizer

        self.processing = processing
        tok = processing.tokenize
        path = root / tok.file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ArtifactError(f"the artifact has no tokenizer file {tok.file}") from exc
        if hashlib.sha256(data).hexdigest() != tok.sha256:
            raise ArtifactError(f"{tok.file} sha256 does not match the manifest")
        try:
            tokenizer = Tokenizer.from_str(data.decode("utf-8"))
        except Exception as exc:  # tokenizers raises plain Exception for a bad file
            raise ArtifactError(f"{tok.file} is not a tokenizers file: {exc}") from exc
        # The manifest decides length and padding, whatever the file's own settings say: a
        # fixed-length pad there (common in exported tokenizer.json files) would make every
        # request pay for the longest possible sentence.
        tokenizer.enable_truncation(max_length=tok.max_length)
        tokenizer.enable_padding(pad_id=tok.pad_id, pad_type_id=tok.pad_type_id)
        self._tokenizer = tokenizer
        self._post: list[Callable[[Tensors, np.ndarray], None]] = [
            _POST_FUNCTIONS[step.op](step) for step in processing.post
        ]

    @property
    def text_input(self) -> str:
        return self.processing.tokenize.input

    def encode(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        """One string per row (a 1-D object array of ``str``) -> padded INT64 feeds."""
        tok = self.processing.tokenize
        texts = inputs[tok.input]
        if texts.ndim != 1:
            raise InvalidTensor(f"input {tok.input!r} must be one string per row (shape [-1])")
        rows = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts.tolist()]
        encodings = self._tokenizer.encode_batch(rows, add_special_tokens=True)
        feeds: Tensors = {
            tok.input_ids: np.array([e.ids for e in encodings], dtype=np.int64),
            tok.attention_mask: np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        if tok.token_type_ids is not None:
            feeds[tok.token_type_ids] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        for name in feeds:
            feeds[name] = feeds[name].reshape(len(rows), -1)
        return feeds

    def run(
        self,
        inputs: Mapping[str, np.ndarray],
        graph: Callable[[Tensors], Tensors],
        *,
        outputs: Sequence[str],
        bucket: bool,
    ) -> Tensors:
        """Tokenize a batch, run ``graph`` on it, post-process; return ``outputs``.

        ``bucket``: instead of one run padded to the batch's longest row, rows sorted by
        length run in groups whose rows are all at least 3/4 as long as the group's longest,
        each padded only to its own longest (right padding: cutting the tail is exact). A
        batch of one long and 31 short sentences then costs about 32 short rows and one long
        one, not 32 long ones. Why 3/4: on a CPU an encoder is compute-bound from one row of a
        few dozen tokens, so stacking rows saves little and every padded token costs: on the
        2-core development machine, mixed batches of 16 sentences took 15 % less time per row
        in groups within 3/4 than within 1/2 (and 45 % less than one run padded to the
        longest)."""
        feeds = self.encode(inputs)
        if not bucket:
            values = self.decode(graph(feeds), feeds)
            return {name: values[name] for name in outputs}
        lengths = feeds[self.processing.tokenize.attention_mask].sum(axis=1)
        order = np.argsort(-lengths, kind="stable")
        results: Tensors = {}
        start = 0
        while start < len(order):
            longest = int(lengths[order[start]])
            end = start + 1
            while end < len(order) and 4 * int(lengths[order[end]]) >= 3 * longest:
                end += 1
            rows = order[start:end]
            part = {name: array[rows, :longest] for name, array in feeds.items()}
            values = self.decode(graph(part), part)
            for name in outputs:
                array = values[name]
                if name not in results:
                    results[name] = np.empty((len(order), *array.shape[1:]), dtype=array.dtype)
                results[name][rows] = array
            start = end
        return results

    def decode(
        self, graph_outputs: Mapping[str, np.ndarray], feeds: Mapping[str, np.ndarray]
    ) -> Tensors:
        values: Tensors = dict(graph_outputs)
        mask = feeds[self.processing.tokenize.attention_mask]
        for step in self._post:
            step(values, mask)
        return values


def _mean_pool(step: PostStep) -> Callable[[Tensors, np.ndarray], None]:
    def run(values: Tensors, mask: np.ndarray) -> None:
        hidden = values[step.input]
        if hidden.ndim != 3 or hidden.shape[:2] != mask.shape:
            raise ArtifactError(
                f"mean_pool: {step.input!r} has shape {list(hidden.shape)}, expected "
                f"[batch, tokens, features] matching the attention mask {list(mask.shape)}"
            )
        weights = mask.astype(np.float32)
        # [batch, 1, tokens] @ [batch, tokens, features]: the masked sum in one BLAS call.
        summed = np.matmul(weights[:, None, :], hidden.astype(np.float32))[:, 0, :]
        counts = np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        values[step.output] = summed / counts

    return run


def _l2_normalize(step: PostStep) -> Callable[[Tensors, np.ndarray], None]:
    def run(values: Tensors, mask: np.ndarray) -> None:
        vectors = values[step.input].astype(np.float32)
        norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
        # The same floor torch.nn.functional.normalize uses, so an all-zero row stays zero.
        values[step.output] = vectors / np.maximum(norms, 1e-12)

    return run


def _softmax(step: PostStep) -> Callable[[Tensors, np.ndarray], None]:
    def run(values: Tensors, mask: np.ndarray) -> None:
        logits = values[step.input].astype(np.float32)
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        values[step.output] = shifted / shifted.sum(axis=-1, keepdims=True)

    return run


def _label_map(step: PostStep) -> Callable[[Tensors, np.ndarray], None]:
    names = np.array(step.labels, dtype=object)

    def run(values: Tensors, mask: np.ndarray) -> None:
        scores = values[step.input]
        if scores.shape[-1] != len(names):
            raise ArtifactError(
                f"label_map: {step.input!r} has {scores.shape[-1]} classes, "
                f"the manifest names {len(names)}"
            )
        values[step.output] = names[scores.argmax(axis=-1)]

    return run


_POST_FUNCTIONS: dict[str, Callable[[PostStep], Callable[[Tensors, np.ndarray], None]]] = {
    "mean_pool": _mean_pool,
    "l2_normalize": _l2_normalize,
    "softmax": _softmax,
    "label_map": _label_map,
}


def load_pipeline(manifest: Mapping[str, Any], *, root: Path) -> TextPipeline | None:
    """The artifact's pipeline, or None for a model that takes and returns plain tensors."""
    raw = manifest.get("processing")
    if raw is None:
        return None
    return TextPipeline(Processing.parse(raw), root=root)
