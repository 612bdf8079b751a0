"""Recurrent sequence encoders over padded, batch-first inputs."""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import nn

from seqlab import SeqlabError
from seqlab.models.cells import LSTMCell, RecurrentCell, RecurrentLayer, WeightDropLSTM
from seqlab.models.dropout import DropoutSpec, as_dropout


class EncoderOutput(NamedTuple):
    """states: (B, T, H_out) per-position states, zero on padding; mask: (B, T) bool, True = real position;
    final: (B, H_out) summary of each sequence (last forward state ++ first backward state)."""

    states: torch.Tensor
    mask: torch.Tensor
    final: torch.Tensor


class SequenceEncoder(nn.Module):
    """Interface: ``forward(inputs (B, T, input_size), mask (B, T)) -> EncoderOutput``; ``output_size`` is H_out.
    ``causal_halves``: the first half of each state at t depends on inputs <= t only and the second half on inputs
    >= t only (a one-layer bidirectional RNN), which a ``BidirectionalLanguageModel`` needs."""

    output_size: int
    causal_halves: bool = False

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:  # pragma: no cover - interface
        raise NotImplementedError


def reversal_index(lengths: torch.Tensor, time: int) -> torch.Tensor:
    """Flat row index (B * T,) that reverses each sequence's first ``lengths[b]`` steps of a (B * T, D) view and
    leaves padding rows in place. A permutation that is its own inverse."""
    steps = torch.arange(time, device=lengths.device)
    index = lengths.unsqueeze(1) - 1 - steps  # (B, T)
    index = torch.where(index >= 0, index, steps)
    return (index + time * torch.arange(lengths.shape[0], device=lengths.device).unsqueeze(1)).reshape(-1)


class _PermuteRows(torch.autograd.Function):
    """rows (N, D) -> rows[index] for an involutive permutation ``index``; the backward pass applies the same
    permutation to the gradient (a row copy, where ``gather``'s backward would scatter-add into zeros)."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        return rows.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (index,) = ctx.saved_tensors
        return grad.index_select(0, index), None


def _reverse(inputs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, T, D) reversed within lengths by ``index = reversal_index(lengths, T)``. Traced (for export), a plain
    ``index_select``: the same values, and no Python autograd function in the graph."""
    batch, time, size = inputs.shape
    rows = inputs.reshape(batch * time, size)
    reversed_rows = rows.index_select(0, index) if torch.jit.is_tracing() else _PermuteRows.apply(rows, index)
    return reversed_rows.view(batch, time, size)


def reverse_within_lengths(inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence's first ``lengths[b]`` steps, padding left in place: (B, T, D) -> (B, T, D).
    Applying it twice gives the input back."""
    return _reverse(inputs, reversal_index(lengths, inputs.shape[1]))


def _check_layers(encoder: SequenceEncoder, num_layers: int) -> None:
    if num_layers < 1:
        raise SeqlabError(f"{type(encoder).__name__}: num_layers must be at least 1, got {num_layers}")


class _BidirectionalRNNEncoder(SequenceEncoder):
    """A bidirectional RNN built from two unidirectional ones per layer. The backward RNN reads every sequence
    reversed within its own length, so padding only ever follows real steps and never changes their states: the
    same results as packed sequences, on the fast dense (oneDNN/cuDNN) kernels."""

    rnn_class: type[nn.RNNBase]

    def __init__(self, input_size: int, hidden_size: int = 256, num_layers: int = 1, dropout: DropoutSpec = 0.0
                 ) -> None:
        """hidden_size is per direction: ``output_size == 2 * hidden_size``. ``dropout`` (a probability or a module
        such as ``SequenceDropout``) applies between layers and to the output states."""
        super().__init__()
        _check_layers(self, num_layers)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = 2 * hidden_size
        sizes = [input_size] + [2 * hidden_size] * (num_layers - 1)
        self.forward_layers = nn.ModuleList(self.rnn_class(size, hidden_size, batch_first=True) for size in sizes)
        self.backward_layers = nn.ModuleList(self.rnn_class(size, hidden_size, batch_first=True) for size in sizes)
        self.dropout = as_dropout(dropout)
        self.causal_halves = num_layers == 1

    @staticmethod
    def _lengths(mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(dim=1)
        if bool((lengths == 0).any()):
            raise ValueError("an empty sequence reached the encoder; empty inputs must be rejected by the data module")
        return lengths

    def _layer(self, depth: int, states: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward states (B, T, H) and backward states in reversed order (B, T, H): row b, step t of the latter
        is the backward state at position ``lengths[b] - 1 - t``."""
        if depth:
            states = self.dropout(states)
        forward_states = self.forward_layers[depth](states)[0]  # (B, T, H)
        reversed_backward = self.backward_layers[depth](_reverse(states, index))[0]  # (B, T, H)
        return forward_states, reversed_backward

    def _lower_layers(self, inputs: torch.Tensor, mask: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Inputs of the last layer: (B, T, input_size or 2H)."""
        states = inputs
        if len(self.forward_layers) > 1:
            real = mask.unsqueeze(2).to(inputs.dtype)  # (B, T, 1)
            for depth in range(len(self.forward_layers) - 1):
                forward_states, reversed_backward = self._layer(depth, states, index)
                states = torch.cat([forward_states, _reverse(reversed_backward, index)], dim=-1) * real  # (B, T, 2H)
        return states

    def _last_layer(self, inputs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Forward states (B, T, H), backward states reversed within lengths (B, T, H), the reversal index
        (B * T,) and the flat row of each sequence's last real step (B,) in a (B * T, H) view."""
        lengths = self._lengths(mask)
        batch, time = mask.shape
        index = reversal_index(lengths, time)
        states = self._lower_layers(inputs, mask, index)
        forward_states, reversed_backward = self._layer(len(self.forward_layers) - 1, states, index)
        last_rows = torch.arange(batch, device=mask.device) * time + lengths - 1  # (B,)
        return forward_states, reversed_backward, index, last_rows

    @staticmethod
    def _final(forward_states: torch.Tensor, reversed_backward: torch.Tensor, last_rows: torch.Tensor
               ) -> torch.Tensor:
        """Last forward state ++ first backward state (the backward RNN's state after the whole sequence, found at
        the last real step of its reversed run): (B, 2H)."""
        hidden = forward_states.shape[2]
        return torch.cat([
            forward_states.reshape(-1, hidden).index_select(0, last_rows),
            reversed_backward.reshape(-1, hidden).index_select(0, last_rows),
        ], dim=-1)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        forward_states, reversed_backward, index, last_rows = self._last_layer(inputs, mask)
        real = mask.unsqueeze(2).to(inputs.dtype)  # (B, T, 1)
        states = torch.cat([forward_states, _reverse(reversed_backward, index)], dim=-1) * real  # (B, T, 2H)
        final = self._final(forward_states, reversed_backward, last_rows)  # (B, 2H)
        return EncoderOutput(self.dropout(states), mask, self.dropout(final))

    def final_states(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``forward(inputs, mask).final`` (B, 2H) without building the per-position states of the last layer (no
        output reversal, concatenation or masking): for encoders used only for their summary (character words)."""
        forward_states, reversed_backward, _, last_rows = self._last_layer(inputs, mask)
        return self.dropout(self._final(forward_states, reversed_backward, last_rows))


class BiLSTMEncoder(_BidirectionalRNNEncoder):
    """Bidirectional LSTM over variable-length batches (exact under padding)."""

    rnn_class = nn.LSTM


class BiGRUEncoder(_BidirectionalRNNEncoder):
    """Bidirectional GRU over variable-length batches (exact under padding)."""

    rnn_class = nn.GRU


class WeightDropBiLSTMEncoder(BiLSTMEncoder):
    """``BiLSTMEncoder`` whose LSTMs drop elements of their recurrent matrices W_hh while training (DropConnect,
    Merity et al. 2018; ``weight_dropout`` = probability, one draw per forward call): regularises the recurrence on
    the fused nn.LSTM kernel. The same state_dict keys as BiLSTMEncoder; eval: the same outputs."""

    rnn_class = WeightDropLSTM

    def __init__(self, input_size: int, hidden_size: int = 256, num_layers: int = 1, dropout: DropoutSpec = 0.0,
                 weight_dropout: float = 0.5) -> None:
        super().__init__(input_size, hidden_size, num_layers, dropout)
        for rnn in [*self.forward_layers, *self.backward_layers]:
            rnn.weight_dropout = weight_dropout


class RecurrentEncoder(SequenceEncoder):
    """Stacked recurrent layers of any cell of ``seqlab.models.cells`` (peephole, CIFG, variational LSTM, GRU,
    ConvLSTM), run by the cells' step loop with masks: exact under padding, like the nn.LSTM encoders, at the price
    of a Python loop over steps (benchmarks/cell_speed.py).

    ``cell(input_size, hidden_size)`` builds each direction's cell; ``bidirectional`` adds a backward layer per layer
    (outputs concatenated, forward first), else the encoder is unidirectional (as Keras' LSTM). ``dropout`` applies
    between layers and to the output states. ``output_size`` = directions x the cell's output size (hidden_size for
    the LSTMs and the GRU). ``final`` (B, output_size): each direction's state after its whole sequence (the forward
    state at the last real step, the backward state at the first).
    """

    def __init__(self, input_size: int, hidden_size: int = 256, num_layers: int = 1, dropout: DropoutSpec = 0.0,
                 cell: Callable[[int, int], RecurrentCell] = LSTMCell, bidirectional: bool = True) -> None:
        super().__init__()
        _check_layers(self, num_layers)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.layers = nn.ModuleList()
        size = input_size
        for _ in range(num_layers):
            directions = nn.ModuleList(RecurrentLayer(cell(size, hidden_size), reverse=reverse)
                                       for reverse in ((False, True) if bidirectional else (False,)))
            self.layers.append(directions)
            size = sum(layer.output_size for layer in directions)
        self.output_size = size
        self.dropout = as_dropout(dropout)
        self.causal_halves = bidirectional and num_layers == 1

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        _BidirectionalRNNEncoder._lengths(mask)  # rejects empty sequences
        real = mask.unsqueeze(2).to(inputs.dtype)  # (B, T, 1)
        states = inputs
        for depth, directions in enumerate(self.layers):
            if depth:
                states = self.dropout(states)
            runs = [layer(states, mask) for layer in directions]  # ((B, T, O), final state) per direction
            states = torch.cat([outputs for outputs, _ in runs], dim=-1) * real  # (B, T, directions * O)
        final = torch.cat([layer.cell.output(state) for layer, (_, state) in zip(directions, runs)], dim=-1)
        return EncoderOutput(self.dropout(states), mask, self.dropout(final))

    def final_states(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``forward(inputs, mask).final`` (B, output_size), the summary character encoders use."""
        return self.forward(inputs, mask).final
