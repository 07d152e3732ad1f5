"""A user's own torch code, as a team would have it on PYTHONPATH: a two-input text model
(token ids, an INT64 tensor into an embedding, and an FP32 attention mask) over a variable
sequence length, returning class logits and a pooled embedding.

``modelway package --torch user_ranker:build`` imports this file; nothing in it knows about
modelway.
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB = 500
CLASSES = 3


class Ranker(nn.Module):
    def __init__(self, *, vocab: int = VOCAB, width: int = 32, classes: int = CLASSES) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width, padding_idx=0)
        self.mix = nn.Sequential(nn.Linear(width, width), nn.GELU())
        self.head = nn.Linear(width, classes)

    def forward(
        self, token_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        hidden = self.mix(self.embed(token_ids)) * attention_mask.unsqueeze(-1)
        pooled = hidden.sum(dim=1) / attention_mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        return {"logits": self.head(pooled), "embedding": pooled}


def build() -> Ranker:
    """The trained model, as the team's own loader would return it (here: fixed weights)."""
    torch.manual_seed(1234)
    return Ranker().eval()
