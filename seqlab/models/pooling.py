"""Sentence poolings: encoder states (B, T, H) -> one vector per sequence (B, output_size), padding ignored."""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn

from seqlab.models.encoders import EncoderOutput
from seqlab.models.precision import float32_region


class PooledOutput(NamedTuple):
    """pooled: (B, output_size); weights: attention over tokens, (B, T) for one hop or (B, r, T) for r hops, summing
    to 1 over real tokens and exactly 0 on padding, None for non-attention poolings; penalty: scalar regularizer,
    already multiplied by the pooling's own weight, to add to the loss, None when the pooling has none."""

    pooled: torch.Tensor
    weights: Optional[torch.Tensor]
    penalty: Optional[torch.Tensor]


class Pooling(nn.Module):
    """Interface: constructed as ``cls(input_size, **options)``; ``forward(EncoderOutput) -> PooledOutput``;
    ``output_size`` is the size of ``pooled``."""

    output_size: int

    def forward(self, encoded: EncoderOutput) -> PooledOutput:  # pragma: no cover - interface
        raise NotImplementedError


def real_states(encoded: EncoderOutput) -> torch.Tensor:
    """States with padding set to 0, whatever it held (even inf or NaN): (B, T, H)."""
    return encoded.states.masked_fill(~encoded.mask.unsqueeze(-1), 0.0)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim, restricted to ``mask`` (broadcast to ``scores``): exactly 0 where mask is False.
    In float32 whatever the dtype of the scores (autocast's bfloat16 would round the weights to 3 digits)."""
    return scores.float().masked_fill(~mask, float("-inf")).softmax(dim=-1)


def frobenius_penalty(weights: torch.Tensor) -> torch.Tensor:
    """Lin et al. (2017) redundancy penalty ||A A^T - I||_F^2 per sequence: weights (B, r, T) -> (B,).
    0 when the r hops attend to disjoint single tokens; grows as hops overlap. In float32, also under autocast."""
    with float32_region(weights):
        gram = weights.float() @ weights.float().transpose(1, 2)  # (B, r, r)
    identity = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    return (gram - identity).pow(2).sum(dim=(1, 2))


class LastStatePooling(Pooling):
    """The encoder's own summary ``encoded.final`` (last forward state ++ first backward state): (B, H)."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.output_size = input_size

    def forward(self, encoded: EncoderOutput) -> PooledOutput:
        return PooledOutput(encoded.final, None, None)


class MeanPooling(Pooling):
    """Mean of the states over real tokens: (B, T, H) -> (B, H)."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.output_size = input_size

    def forward(self, encoded: EncoderOutput) -> PooledOutput:
        lengths = encoded.mask.sum(dim=1, keepdim=True)  # (B, 1)
        return PooledOutput(real_states(encoded).sum(dim=1) / lengths, None, None)


class MaxPooling(Pooling):
    """Elementwise max of the states over real tokens (padding never wins): (B, T, H) -> (B, H)."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.output_size = input_size

    def forward(self, encoded: EncoderOutput) -> PooledOutput:
        states = encoded.states.masked_fill(~encoded.mask.unsqueeze(-1), float("-inf"))
        return PooledOutput(states.amax(dim=1), None, None)


class AttentionPooling(Pooling):
    """Additive (Bahdanau-style) attention: a = softmax_t(v^T tanh(W h_t + b)) over real tokens, pooled = sum_t a_t h_t.
    (B, T, H) -> (B, H), weights (B, T)."""

    def __init__(self, input_size: int, attention_size: int = 128) -> None:
        super().__init__()
        self.output_size = input_size
        self.projection = nn.Linear(input_size, attention_size)
        self.score = nn.Linear(attention_size, 1, bias=False)

    def forward(self, encoded: EncoderOutput) -> PooledOutput:
        states = real_states(encoded)
        scores = self.score(torch.tanh(self.projection(states))).squeeze(-1)  # (B, T)
        weights = masked_softmax(scores, encoded.mask)  # (B, T)
        pooled = (weights.unsqueeze(1).to(states.dtype) @ states).squeeze(1)  # (B, 1, T) @ (B, T, H) -> (B, H)
        return PooledOutput(pooled, weights, None)


class SelfAttentivePooling(Pooling):
    """Structured self-attention (Lin et al. 2017): A = softmax(W_s2 tanh(W_s1 H^T)) with r hops over real tokens,
    M = A H, pooled = M flattened. (B, T, H) -> (B, r * H), weights A (B, r, T), penalty
    ``penalty_weight * mean_B ||A A^T - I||_F^2``."""

    def __init__(
        self, input_size: int, attention_size: int = 350, hops: int = 4, penalty_weight: float = 1.0
    ) -> None:
        super().__init__()
        self.output_size = hops * input_size
        self.penalty_weight = penalty_weight
        self.w_s1 = nn.Linear(input_size, attention_size, bias=False)
        self.w_s2 = nn.Linear(attention_size, hops, bias=False)

    def forward(self, encoded: EncoderOutput) -> PooledOutput:
        states = real_states(encoded)
        scores = self.w_s2(torch.tanh(self.w_s1(states))).transpose(1, 2)  # (B, T, r) -> (B, r, T)
        weights = masked_softmax(scores, encoded.mask.unsqueeze(1))  # (B, r, T)
        embedding = weights.to(states.dtype) @ states  # (B, r, H)
        penalty = self.penalty_weight * frobenius_penalty(weights).mean()
        return PooledOutput(embedding.flatten(1), weights, penalty)  # pooled (B, r * H)
