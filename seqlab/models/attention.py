"""Attention layers over encoder states."""

from __future__ import annotations

import torch
from torch import nn

from seqlab.models.encoders import EncoderOutput


class MultiHeadSelfAttention(nn.Module):
    """Residual multi-head self-attention over encoder states, padding keys masked out.

    ``forward(EncoderOutput) -> EncoderOutput`` with the same sizes: (B, T, H) -> (B, T, H). Padding positions stay 0.
    """

    def __init__(self, input_size: int, num_heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        if input_size % num_heads:
            raise ValueError(f"attention input_size {input_size} is not divisible by num_heads {num_heads}")
        self.output_size = input_size
        self.attention = nn.MultiheadAttention(input_size, num_heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(input_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, encoded: EncoderOutput) -> EncoderOutput:
        states, mask = encoded.states, encoded.mask
        attended, _ = self.attention(states, states, states, key_padding_mask=~mask, need_weights=False)  # (B, T, H)
        states = self.norm(states + self.dropout(attended)) * mask.unsqueeze(-1)
        return EncoderOutput(states, mask, encoded.final)
