"""Recurrent sequence encoders over padded, batch-first inputs."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class EncoderOutput(NamedTuple):
    """states: (B, T, H_out) per-position states, zero on padding; mask: (B, T) bool, True = real position;
    final: (B, H_out) summary of each sequence (last forward state ++ first backward state)."""

    states: torch.Tensor
    mask: torch.Tensor
    final: torch.Tensor


class SequenceEncoder(nn.Module):
    """Interface: ``forward(inputs (B, T, input_size), mask (B, T)) -> EncoderOutput``; ``output_size`` is H_out."""

    output_size: int

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:  # pragma: no cover - interface
        raise NotImplementedError


class _BidirectionalRNNEncoder(SequenceEncoder):
    rnn_class: type[nn.RNNBase]

    def __init__(self, input_size: int, hidden_size: int = 256, num_layers: int = 1, dropout: float = 0.0) -> None:
        """hidden_size is per direction: ``output_size == 2 * hidden_size``. ``dropout`` applies between layers and
        to the output states."""
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = 2 * hidden_size
        self.rnn = self.rnn_class(
            input_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.output_dropout = nn.Dropout(dropout)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        batch, time = mask.shape
        lengths = mask.sum(dim=1)
        if bool((lengths == 0).any()):
            raise ValueError("an empty sequence reached the encoder; empty inputs must be rejected by the data module")
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_states, hidden = self.rnn(packed)
        states, _ = pad_packed_sequence(packed_states, batch_first=True, total_length=time)  # (B, T, 2H)
        h_n = hidden[0] if isinstance(hidden, tuple) else hidden  # (layers * 2, B, H)
        final = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # (B, 2H): forward at last real step, backward at step 0
        return EncoderOutput(self.output_dropout(states), mask, self.output_dropout(final))


class BiLSTMEncoder(_BidirectionalRNNEncoder):
    """Bidirectional LSTM over packed variable-length sequences."""

    rnn_class = nn.LSTM


class BiGRUEncoder(_BidirectionalRNNEncoder):
    """Bidirectional GRU over packed variable-length sequences."""

    rnn_class = nn.GRU
