"""Sequence classification heads: one pooled vector per sequence (B, H) -> label logits (B, K)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class MLPClassifier(nn.Module):
    """Linear -> ReLU -> Dropout -> Linear over a pooled sentence vector: (B, input_size) -> logits (B, K),
    K = ``len(labels)`` = ``output_size``."""

    def __init__(self, input_size: int, labels: Sequence[str], hidden_size: int = 128, dropout: float = 0.5) -> None:
        super().__init__()
        self.labels = list(labels)
        self.output_size = len(self.labels)
        self.layers = nn.Sequential(
            nn.Linear(input_size, hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, self.output_size),
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.layers(pooled)  # (B, K)
