"""scikit-learn's bundled 8x8 digits (no download), split once, the same way every build."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

TEST_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass(frozen=True)
class DigitsSplit:
    # Images are float32 [n, 1, 8, 8] with the raw pixel values 0..16, exactly what a caller
    # sends: the model normalizes inside its graph.
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def load_split() -> DigitsSplit:
    """Stratified train/test split: every digit is held out in proportion."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32)[:, None, :, :]
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    return DigitsSplit(
        train_images=np.ascontiguousarray(train_x),
        train_labels=np.ascontiguousarray(train_y),
        test_images=np.ascontiguousarray(test_x),
        test_labels=np.ascontiguousarray(test_y),
    )


def load_sample(*, index: int = 0) -> tuple[list[float], int]:
    """One held-out image as a client would send it (64 raw pixel values 0..16, row-major,
    for shape [1, 1, 8, 8]) and its true digit."""
    split = load_split()
    return split.test_images[index].reshape(-1).tolist(), int(split.test_labels[index])
