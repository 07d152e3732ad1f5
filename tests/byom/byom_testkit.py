"""Users' own models, made the way their teams make them, for the "bring your own model"
tests: a scikit-learn pipeline converted by skl2onnx (not our exporter), a two-input torch
module (``user_ranker.py``), and small hand-made ONNX graphs for each refusal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]


@dataclass(frozen=True)
class IrisFiles:
    """What a scikit-learn user hands over: the converted model, samples, and the outputs
    scikit-learn itself gave for them."""

    onnx: Path
    zipmap_onnx: Path
    samples: Path
    expected: Path
    classifier: Any
    features: np.ndarray


def make_iris(dest: Path) -> IrisFiles:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = load_iris(return_X_y=True)
    features = features.astype(np.float32)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    classifier.fit(features, labels)
    dest.mkdir(parents=True, exist_ok=True)
    # skl2onnx's defaults: the input is named "X" and probabilities come out as a ZipMap.
    (dest / "iris-zipmap.onnx").write_bytes(to_onnx(classifier, features[:1]).SerializeToString())
    (dest / "iris.onnx").write_bytes(
        to_onnx(
            classifier, features[:1], options={id(classifier): {"zipmap": False}}
        ).SerializeToString()
    )
    rows = features[::5]
    np.savez(dest / "samples.npz", X=rows)
    np.savez(
        dest / "expected.npz",
        label=classifier.predict(rows),
        probabilities=classifier.predict_proba(rows),
    )
    return IrisFiles(
        onnx=dest / "iris.onnx",
        zipmap_onnx=dest / "iris-zipmap.onnx",
        samples=dest / "samples.npz",
        expected=dest / "expected.npz",
        classifier=classifier,
        features=features,
    )


def ranker_samples(dest: Path, *, rows: int = 16, length: int = 12, seed: int = 0) -> Path:
    """Token ids (INT64, 0 = padding) and their attention mask, ragged lengths padded."""
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(1, 500, size=(rows, length), dtype=np.int64)
    mask = np.ones((rows, length), dtype=np.float32)
    for row in range(rows):
        used = int(rng.integers(3, length + 1))
        token_ids[row, used:] = 0
        mask[row, used:] = 0.0
    np.savez(dest, token_ids=token_ids, attention_mask=mask)
    return dest


def tiny_graph(
    path: Path,
    *,
    nodes: list[Any],
    inputs: list[Any],
    outputs: list[Any],
    opsets: dict[str, int] | None = None,
    initializers: list[Any] | None = None,
) -> Path:
    """An ONNX file made with onnx.helper (opset 18 unless told)."""
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers or [])
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid(domain, version) for domain, version in (opsets or {"": 18}).items()
        ],
    )
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


REVIEWS = [
    ("the soup was cold and the waiter rude", 0),
    ("a wonderful evening, great food", 1),
    ("never again, awful service", 0),
    ("lovely staff and a great view", 1),
    ("cold fries, rude staff", 0),
    ("great wine, wonderful desserts", 1),
    ("awful noise and cold coffee", 0),
    ("a lovely place, we will come again", 1),
]


@dataclass(frozen=True)
class ReviewFiles:
    """A scikit-learn text classifier (TF-IDF + logistic regression) whose ONNX graph takes
    strings: a BYTES input."""

    onnx: Path
    classifier: Any


def make_reviews(dest: Path) -> ReviewFiles:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, labels = zip(*REVIEWS, strict=True)
    classifier = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, labels)
    vectorizer = classifier.steps[0][1]
    model = convert_sklearn(
        classifier,
        initial_types=[("text", StringTensorType([None, 1]))],
        # The "C" locale: skl2onnx's default (en_US.UTF-8) is not installed on slim images,
        # and ONNX Runtime's StringNormalizer cannot load without it.
        options={id(classifier): {"zipmap": False}, id(vectorizer): {"locale": "C"}},
    )
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "reviews.onnx").write_bytes(model.SerializeToString())
    return ReviewFiles(onnx=dest / "reviews.onnx", classifier=classifier)
