"""A Hugging Face encoder read from a local directory, and its eager-torch reference outputs.

Never a download: the hub's offline switches are set before ``transformers`` is imported (it
reads them at import time) and every load says ``local_files_only``; a directory missing a
file is refused by name rather than "helpfully" fetched.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_build.hf.exceptions import HfModelError

if TYPE_CHECKING:
    import numpy as np
    import torch

FEATURE_EXTRACTION = "feature-extraction"
TEXT_CLASSIFICATION = "text-classification"
TASKS = (FEATURE_EXTRACTION, TEXT_CLASSIFICATION)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILE = "tokenizer.json"
# What the graph takes, in this order when the model's forward accepts it.
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
REFERENCE_BATCH = 32


def offline() -> None:
    """No hub access from this process, whatever the caller's environment says."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


@dataclass
class HfSource:
    directory: Path
    task: str
    config: dict[str, Any]
    max_length: int
    # The graph's inputs (a subset of TOKEN_INPUTS the model's forward takes).
    inputs: tuple[str, ...]
    pad_id: int
    pad_type_id: int
    labels: list[str] = field(default_factory=list)
    hidden_size: int = 0
    # The loaded torch module (eager): the parity reference, then the export's source.
    model: Any = field(default=None, repr=False)
    tokenizer: Any = field(default=None, repr=False)

    @property
    def tokenizer_path(self) -> Path:
        return self.directory / TOKENIZER_FILE


def read_source(directory: Path, *, task: str, max_length: int | None = None) -> HfSource:
    """Check the directory holds a usable encoder for ``task``; read what packaging needs."""
    if task not in TASKS:
        raise HfModelError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    directory = Path(directory)
    if not directory.is_dir():
        raise HfModelError(f"no model directory at {directory}")
    for required in ("config.json", TOKENIZER_FILE):
        if not (directory / required).is_file():
            raise HfModelError(
                f"{directory} has no {required} (a Hugging Face model directory needs "
                f"config.json, {TOKENIZER_FILE} and {' or '.join(WEIGHT_FILES)})"
            )
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        raise HfModelError(f"{directory} has no weights ({' or '.join(WEIGHT_FILES)})")
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HfModelError(f"{directory / 'config.json'} is not readable JSON: {exc}") from exc

    model: Any = load_model(directory, task=task)
    accepted = inspect.signature(model.forward).parameters
    inputs = tuple(name for name in TOKEN_INPUTS if name in accepted)
    if "input_ids" not in inputs or "attention_mask" not in inputs:
        raise HfModelError(
            f"{type(model).__name__}.forward does not take input_ids and attention_mask; "
            "only encoders that do can be packaged"
        )
    tokenizer = load_tokenizer(directory)
    limit = _max_length(directory, config=config, tokenizer=tokenizer)
    if max_length is not None:
        if not 2 <= max_length <= limit:
            raise HfModelError(f"max_length must be between 2 and {limit}, got {max_length}")
        limit = max_length
    labels: list[str] = []
    if task == TEXT_CLASSIFICATION:
        id2label = model.config.id2label or {}
        labels = [str(id2label.get(i, f"LABEL_{i}")) for i in range(model.config.num_labels)]
    return HfSource(
        directory=directory,
        task=task,
        config=config,
        max_length=limit,
        inputs=inputs,
        pad_id=int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
        pad_type_id=int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
        labels=labels,
        hidden_size=int(model.config.hidden_size),
        model=model,
        tokenizer=tokenizer,
    )


def _max_length(directory: Path, *, config: dict[str, Any], tokenizer: Any) -> int:
    """The sequence bound the model was trained for: sentence-transformers' own setting when
    the directory has one, else the tokenizer's, never beyond the position embeddings."""
    positions = int(config.get("max_position_embeddings") or 512)
    st_config = directory / "sentence_bert_config.json"
    if st_config.is_file():
        try:
            value = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            value = None
        if isinstance(value, int) and value > 1:
            return min(value, positions)
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 1 < declared < 1_000_000:
        return min(declared, positions)
    return positions


def load_model(directory: Path, *, task: str) -> torch.nn.Module:
    offline()
    import transformers

    cls = (
        transformers.AutoModelForSequenceClassification
        if task == TEXT_CLASSIFICATION
        else transformers.AutoModel
    )
    try:
        model = cls.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise HfModelError(f"transformers cannot load {directory}: {exc}") from exc
    model.eval()
    return model


def load_tokenizer(directory: Path) -> Any:
    offline()
    import transformers

    try:
        return transformers.AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise HfModelError(f"transformers cannot load the tokenizer in {directory}: {exc}") from exc


def reference_outputs(source: HfSource, sentences: Sequence[str]) -> np.ndarray:
    """What the model computes in eager torch, the way its own library runs it: the
    tokenizer ``transformers`` builds from the directory (truncation at the bound, padding to
    the batch's longest), then sentence-transformers' mean pooling and L2 normalisation
    (feature extraction) or a softmax over the logits (text classification).

    Run it before exporting: the exporter may leave the module changed."""
    import numpy as np
    import torch

    model, tokenizer = source.model, source.tokenizer
    results = []
    with torch.no_grad():
        for start in range(0, len(sentences), REFERENCE_BATCH):
            chunk = list(sentences[start : start + REFERENCE_BATCH])
            encoded = tokenizer(
                chunk,
                padding=True,
                truncation=True,
                max_length=source.max_length,
                return_tensors="pt",
            )
            feeds = {name: encoded[name] for name in source.inputs if name in encoded}
            output = model(**feeds)
            if source.task == TEXT_CLASSIFICATION:
                results.append(torch.softmax(output.logits, dim=-1).numpy())
                continue
            mask = feeds["attention_mask"].unsqueeze(-1).to(output.last_hidden_state.dtype)
            pooled = (output.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            results.append(torch.nn.functional.normalize(pooled, p=2, dim=1).numpy())
    return np.concatenate(results, axis=0).astype(np.float32)
