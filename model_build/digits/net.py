"""The digits classifier: a small CNN whose graph takes raw pixels and returns the label too."""

from __future__ import annotations

import torch
from torch import nn

INPUT_NAME = "input"
OUTPUT_NAMES = ("logits", "label")
NUM_CLASSES = 10
# load_digits pixels are integers 0..16.
PIXEL_MAX = 16.0


class DigitsNet(nn.Module):
    """[n, 1, 8, 8] raw pixels → (logits [n, 10], label [n] int64).

    Scaling and argmax live in the graph so a client can send the pixels it has and read the
    digit back without knowing either convention.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 → 4x4
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, NUM_CLASSES),
        )

    # The parameter's name is the graph's input name (INPUT_NAME), which clients send.
    def forward(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.classifier(self.features(input / PIXEL_MAX))
        return logits, torch.argmax(logits, dim=1)
