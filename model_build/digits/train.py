"""Train ``DigitsNet``: a few seconds of Adam on ~1,400 images, on CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.core import progress

if TYPE_CHECKING:
    import numpy as np

    from model_build.digits.net import DigitsNet

SEED = 0
EPOCHS = 30
BATCH_SIZE = 64
LEARNING_RATE = 2e-3


def train(*, images: np.ndarray, labels: np.ndarray, seed: int = SEED) -> DigitsNet:
    """A trained model in eval mode. Call it under ``deterministic(seed=...)`` for repeatable
    weights; the shuffling here draws from its own generator seeded with ``seed``."""
    import torch
    from torch import nn

    from model_build.digits.net import DigitsNet

    torch.manual_seed(seed)
    model = DigitsNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.from_numpy(images)
    y = torch.from_numpy(labels)
    shuffle = torch.Generator().manual_seed(seed)

    model.train()
    for epoch in range(EPOCHS):
        progress.report("training", done=epoch, total=EPOCHS)
        order = torch.randperm(len(x), generator=shuffle)
        for start in range(0, len(x), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            optimizer.zero_grad()
            logits, _ = model(x[batch])
            loss_fn(logits, y[batch]).backward()
            optimizer.step()
        scheduler.step()
    progress.report("training", done=EPOCHS, total=EPOCHS)
    model.eval()
    return model


def accuracy(*, model: DigitsNet, images: np.ndarray, labels: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        _, predicted = model(torch.from_numpy(images))
    return float((predicted.numpy() == labels).mean())
