"""Attention layers over encoder states."""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from seqlab import SeqlabError
from seqlab.models.encoders import EncoderOutput


class MultiHeadSelfAttention(nn.Module):
    """Residual multi-head self-attention over encoder states, padding keys masked out.

    ``forward(EncoderOutput) -> EncoderOutput`` with the same sizes: (B, T, H) -> (B, T, H). Padding positions stay 0.
    """

    def __init__(self, input_size: int, num_heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        if input_size % num_heads:
            raise SeqlabError(f"MultiHeadSelfAttention: its input_size {input_size} (the encoder's output size) is not "
                              f"divisible by num_heads {num_heads}")
        self.output_size = input_size
        self.attention = nn.MultiheadAttention(input_size, num_heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(input_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, encoded: EncoderOutput) -> EncoderOutput:
        states, mask = encoded.states, encoded.mask
        if torch.jit.is_tracing():
            attended = self.traceable_attention(states, mask)
        else:  # (B, T, H)
            attended, _ = self.attention(states, states, states, key_padding_mask=~mask, need_weights=False)
        states = self.norm(states + self.dropout(attended)) * mask.unsqueeze(-1)
        return EncoderOutput(states, mask, encoded.final)

    def traceable_attention(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``self.attention(states, states, states, key_padding_mask=~mask)`` in ops whose shapes follow the input,
        so that a traced graph (TorchScript, ONNX) holds for any length: the graph traced through
        ``nn.MultiheadAttention`` fixes the example's length. (B, T, H) -> (B, T, H); the same values."""
        attention = self.attention
        heads = attention.num_heads
        projected = F.linear(states, attention.in_proj_weight, attention.in_proj_bias)  # (B, T, 3H)
        query, key, value = (part.unflatten(-1, (heads, -1)).transpose(1, 2)  # (B, heads, T, H / heads)
                             for part in projected.chunk(3, dim=-1))
        context = F.scaled_dot_product_attention(query, key, value, attn_mask=mask[:, None, None, :],
                                                 dropout_p=attention.dropout if self.training else 0.0)
        return attention.out_proj(context.transpose(1, 2).flatten(2))  # (B, T, H)


class AttentionOutput(NamedTuple):
    """context: (B, M) or (B, T, M) weighted sum of the memory; weights: (B, S) or (B, T, S), 0 on padding and
    summing to 1 over each row's real source positions."""

    context: torch.Tensor
    weights: torch.Tensor


class DecoderAttention(nn.Module):
    """Interface of encoder-decoder attention: ``forward(query, memory, mask, keys=None) -> AttentionOutput``.

    query (B, Q) for one decoder step, or (B, T, Q) for T steps at once; memory (B, S, M) encoder states; mask
    (B, S) bool, True = real source token; keys: ``prepare(memory)``, the memory's projection computed once per
    sentence and reused at every step (computed when not given). Subclasses implement ``prepare`` and ``score``;
    ``output_size`` is M (the context size)."""

    def __init__(self, query_size: int, memory_size: int) -> None:
        super().__init__()
        self.query_size = query_size
        self.memory_size = memory_size
        self.output_size = memory_size

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        return memory

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """query (B, T, Q), keys (B, S, K) -> scores (B, T, S)."""
        raise NotImplementedError

    def forward(self, query: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor,
                keys: Optional[torch.Tensor] = None) -> AttentionOutput:
        single = query.dim() == 2
        queries = query.unsqueeze(1) if single else query  # (B, T, Q)
        keys = self.prepare(memory) if keys is None else keys
        scores = self.score(queries, keys).float().masked_fill(~mask.unsqueeze(1), float("-inf"))  # (B, T, S)
        weights = torch.softmax(scores, dim=-1)  # float32 under autocast too; exactly 0 where the mask is False
        context = torch.bmm(weights.to(memory.dtype), memory)  # (B, T, M)
        if single:
            return AttentionOutput(context.squeeze(1), weights.squeeze(1))
        return AttentionOutput(context, weights)


class AdditiveAttention(DecoderAttention):
    """Bahdanau et al. (2015): score(q, m) = v^T tanh(W_q q + W_m m)."""

    def __init__(self, query_size: int, memory_size: int, attention_size: int = 256) -> None:
        super().__init__(query_size, memory_size)
        self.memory_projection = nn.Linear(memory_size, attention_size, bias=False)
        self.query_projection = nn.Linear(query_size, attention_size)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        return self.memory_projection(memory)  # (B, S, A)

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.query_projection(query).unsqueeze(2) + keys.unsqueeze(1))  # (B, T, S, A)
        return self.v(hidden).squeeze(-1)  # (B, T, S)


class DotAttention(DecoderAttention):
    """Luong et al. (2015) "dot": score(q, m) = q^T m; needs query_size == memory_size. ``scaled`` divides by
    sqrt(size)."""

    def __init__(self, query_size: int, memory_size: int, scaled: bool = False) -> None:
        super().__init__(query_size, memory_size)
        if query_size != memory_size:
            raise SeqlabError(f"DotAttention needs equal query and memory sizes, got {query_size} and {memory_size} "
                              "(use GeneralAttention, or a decoder hidden_size equal to the encoder output size)")
        self.scale = memory_size ** -0.5 if scaled else 1.0

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(query, keys.transpose(1, 2)) * self.scale  # (B, T, S)


class GeneralAttention(DecoderAttention):
    """Luong et al. (2015) "general": score(q, m) = q^T W m (the memory side projected once per sentence)."""

    def __init__(self, query_size: int, memory_size: int) -> None:
        super().__init__(query_size, memory_size)
        self.memory_projection = nn.Linear(memory_size, query_size, bias=False)

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        return self.memory_projection(memory)  # (B, S, Q)

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)
