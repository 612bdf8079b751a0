"""The LSTM family as cell classes, run by one shared step loop (plain torch).

A cell computes one time step from a *precomputed input projection*: ``project`` maps a whole batch (B, T, D) to
(B, T, G) in one matrix product (or convolution), so that the loop adds only the recurrent part per step.
``RecurrentLayer`` runs any cell over a batch in one direction, forward or backward, with a bool mask (B, T),
True = real: on a padding step the state is kept, so a backward run over trailing padding starts from the zero state
at each sequence's last real step, and outputs at real steps do not depend on how much padding follows. A cell's
per-sequence randomness (variational dropout masks) is explicit *noise*, drawn once per batch of sequences and passed
to ``project`` and every ``step``; a decoder that runs one step per call keeps it in its state (``LSTMCellStack``).

Cells: ``LSTMCell`` (nn.LSTM's equations, gate order and parameter names, so nn.LSTM weights copy in),
``PeepholeLSTMCell`` (Gers & Schmidhuber 2000), ``CIFGLSTMCell`` (coupled input-forget gate, Greff et al. 2017),
``LayerNormLSTMCell`` (Ba et al. 2016),
``VariationalLSTMCell`` (one dropout mask per sequence on x and on h_{t-1}, Gal & Ghahramani 2016, Keras'
``dropout`` / ``recurrent_dropout``), ``GRUCell`` (nn.GRU's equations) and ``ConvLSTMCell`` (Shi et al. 2015, over
channels x frequency bins of a spectrogram frame). ``WeightDropLSTM`` is not a cell: nn.LSTM with DropConnect on its
recurrent matrices (Merity et al. 2018), which keeps the fused kernel.

The loop runs eagerly. benchmarks/cell_speed.py measures it against the same loop with each cell's step compiled by
``torch.compile`` and against nn.LSTM: on torch 2.13 CPU at NER sizes the compiled steps were slower than the eager
ones for every cell (the recurrent matrix products dominate a step; the compiled step recompiles for new batch sizes),
and in a first measurement a TorchScript-scripted loop was slower still. Eager, the cells train at 0.7 to 0.95 of
nn.LSTM's tokens/s there.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from seqlab import SeqlabError
from seqlab.models.dropout import Dropout, keep_mask

#: a cell's state between steps: tensors whose first dim is the batch, the output ``h`` first
State = tuple[torch.Tensor, ...]
#: a cell's per-sequence random draws (B, ...), the same at every step: () for a cell without any
Noise = tuple[torch.Tensor, ...]


class RecurrentCell(nn.Module):
    """Interface of a cell run by ``RecurrentLayer``; built as ``cls(input_size, hidden_size, **options)``.

    - ``draw_noise(batch, like) -> Noise``: per-sequence random draws for one batch of sequences (training only;
      () by default);
    - ``project(inputs (B, T, input_size), noise) -> (B, T, G)``: the input's part of every step, all steps at once;
    - ``initial_state(batch, like) -> State``: zeros, of ``like``'s dtype and device;
    - ``step(projected_t (B, G), state, noise) -> State``: one step;
    - ``output(state) -> (B, output_size)``: what the layer emits per step (``h``, flattened).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = hidden_size

    def draw_noise(self, batch: int, like: torch.Tensor) -> Noise:
        return ()

    def project(self, inputs: torch.Tensor, noise: Noise = ()) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def initial_state(self, batch: int, like: torch.Tensor) -> State:  # pragma: no cover - interface
        raise NotImplementedError

    def step(self, projected_t: torch.Tensor, state: State, noise: Noise = ()) -> State:  # pragma: no cover
        raise NotImplementedError

    def output(self, state: State) -> torch.Tensor:
        return state[0].flatten(1)


class RecurrentLayer(nn.Module):
    """One direction of a recurrent layer: inputs (B, T, D), mask (B, T) -> outputs (B, T, output_size) and the final
    state. ``reverse`` runs from the last step to the first. The state is kept on padding steps (mask False), so each
    output at a real step, and the final state, equal those of the sequence alone; outputs at padding steps repeat
    the kept state (the encoder zeroes them). ``state`` (default zeros) and ``noise`` (default: drawn by the cell)
    let a caller continue a run or share one draw over several calls."""

    def __init__(self, cell: RecurrentCell, reverse: bool = False) -> None:
        super().__init__()
        self.cell = cell
        self.reverse = reverse
        self.output_size = cell.output_size

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor, state: Optional[State] = None,
                noise: Optional[Noise] = None) -> tuple[torch.Tensor, State]:
        batch, time = mask.shape
        noise = self.cell.draw_noise(batch, inputs) if noise is None else noise
        projected = self.cell.project(inputs, noise)  # (B, T, G)
        state = self.cell.initial_state(batch, projected) if state is None else state
        projected = projected.transpose(0, 1).contiguous()  # (T, B, G): each step's slice contiguous
        every_real = mask.all(dim=0).tolist()  # steps with no padding in the batch: nothing to keep
        keep = mask.view(batch, time, *([1] * (state[0].dim() - 1)))  # (B, T, 1[, 1]) broadcasts over a state
        outputs: list[Optional[torch.Tensor]] = [None] * time
        for t in (range(time - 1, -1, -1) if self.reverse else range(time)):
            new = self.cell.step(projected[t], state, noise)
            state = new if every_real[t] else tuple(torch.where(keep[:, t], n, o) for n, o in zip(new, state))
            outputs[t] = self.cell.output(state)
        return torch.stack(outputs, dim=1), state  # (B, T, output_size)


# --------------------------------------------------------------------------- the LSTM family
class LSTMGates(NamedTuple):
    """One LSTM step's values, each (B, H): the gates after their nonlinearity (candidate = g_t, tanh), the new
    cell state c_t and the new output h_t."""

    input: torch.Tensor
    forget: torch.Tensor
    candidate: torch.Tensor
    output: torch.Tensor
    cell: torch.Tensor
    hidden: torch.Tensor


class LSTMCell(RecurrentCell):
    """nn.LSTM's cell: i, f, g, o = sigma, sigma, tanh, sigma of (W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), split in
    that order; c_t = f * c_{t-1} + i * g; h_t = o * tanh(c_t). State (h, c), each (B, H). The parameters carry
    nn.LSTM's names and shapes (weight_ih (4H, D), weight_hh (4H, H), bias_ih, bias_hh (4H,)) and its init.
    ``recurrent_input(h_{t-1}, noise)`` is what the gates see of h_{t-1} (``VariationalLSTMCell`` masks it)."""

    gate_count = 4

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        gates = self.gate_count * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(gates))
        self.bias_hh = nn.Parameter(torch.empty(gates))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters(recurse=False):  # the cell's own tensors (not a submodule's norm gains)
            nn.init.uniform_(parameter, -bound, bound)

    def project(self, inputs: torch.Tensor, noise: Noise = ()) -> torch.Tensor:
        return F.linear(inputs, self.weight_ih, self.bias_ih + self.bias_hh)  # (B, T, G * H)

    def initial_state(self, batch: int, like: torch.Tensor) -> State:
        zeros = like.new_zeros(batch, self.hidden_size)
        return zeros, zeros

    def recurrent_input(self, hidden: torch.Tensor, noise: Noise) -> torch.Tensor:
        return hidden

    def recurrence(self, projected_t: torch.Tensor, hidden: torch.Tensor, noise: Noise) -> torch.Tensor:
        """Gate pre-activations (B, G * H): the projected input plus W_hh h_{t-1}."""
        return torch.addmm(projected_t, self.recurrent_input(hidden, noise), self.weight_hh.t())

    def gates(self, projected_t: torch.Tensor, state: State, noise: Noise = ()) -> LSTMGates:
        hidden, cell = state
        pre = self.recurrence(projected_t, hidden, noise)  # (B, 4H)
        input_gate, forget, _, output = pre.sigmoid().chunk(4, dim=1)
        candidate = pre[:, 2 * self.hidden_size:3 * self.hidden_size].tanh()
        cell = forget * cell + input_gate * candidate
        return LSTMGates(input_gate, forget, candidate, output, cell, output * self.squash(cell))

    def squash(self, cell: torch.Tensor) -> torch.Tensor:
        """The cell state as the output gate sees it: tanh(c)."""
        return cell.tanh()

    def step(self, projected_t: torch.Tensor, state: State, noise: Noise = ()) -> State:
        gates = self.gates(projected_t, state, noise)
        return gates.hidden, gates.cell


class PeepholeLSTMCell(LSTMCell):
    """LSTM with peephole connections (Gers & Schmidhuber 2000): the gates also see the cell state through diagonal
    weights, i and f the previous one, o the new one: i = sigma(.. + p_i * c_{t-1}), f = sigma(.. + p_f * c_{t-1}),
    o = sigma(.. + p_o * c_t). With p_i = p_f = p_o = 0 it is ``LSTMCell``. Peepholes (H,) each, nn.LSTM's init."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.peephole_input = nn.Parameter(torch.empty(hidden_size))
        self.peephole_forget = nn.Parameter(torch.empty(hidden_size))
        self.peephole_output = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def gates(self, projected_t: torch.Tensor, state: State, noise: Noise = ()) -> LSTMGates:
        hidden, cell = state
        pre_input, pre_forget, pre_candidate, pre_output = self.recurrence(
            projected_t, hidden, noise).chunk(4, dim=1)  # (B, H) each
        input_gate = torch.sigmoid(pre_input + self.peephole_input * cell)
        forget = torch.sigmoid(pre_forget + self.peephole_forget * cell)
        candidate = pre_candidate.tanh()
        cell = forget * cell + input_gate * candidate
        output = torch.sigmoid(pre_output + self.peephole_output * cell)
        return LSTMGates(input_gate, forget, candidate, output, cell, output * cell.tanh())


class CIFGLSTMCell(LSTMCell):
    """Coupled input and forget gate (Greff et al. 2017): f = 1 - i, so three gate blocks i, g, o (weights (3H, .)):
    c_t = (1 - i) * c_{t-1} + i * g, the cell's new content replaces what it forgets."""

    gate_count = 3

    def gates(self, projected_t: torch.Tensor, state: State, noise: Noise = ()) -> LSTMGates:
        hidden, cell = state
        pre = self.recurrence(projected_t, hidden, noise)  # (B, 3H)
        size = self.hidden_size
        input_gate = pre[:, :size].sigmoid()
        candidate = pre[:, size:2 * size].tanh()
        output = pre[:, 2 * size:].sigmoid()
        forget = 1.0 - input_gate
        cell = cell + input_gate * (candidate - cell)  # = (1 - i) * c + i * g
        return LSTMGates(input_gate, forget, candidate, output, cell, output * cell.tanh())


class LayerNormLSTMCell(LSTMCell):
    """Layer-normalised LSTM (Ba et al. 2016): the input and the recurrent contributions to the gate pre-activations
    are normalised separately over their 4H units, and the cell state before its tanh:
    i, f, g, o = split(LN_x(W_ih x_t) + LN_h(W_hh h_{t-1}) + b); c_t = f * c_{t-1} + i * g;
    h_t = o * tanh(LN_c(c_t)). The norms have gains (init 1) and no offsets (b, the LSTM bias, stands for them);
    LN_x is computed for all steps at once in ``project``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.input_norm = nn.LayerNorm(4 * hidden_size, bias=False)
        self.hidden_norm = nn.LayerNorm(4 * hidden_size, bias=False)
        self.cell_norm = nn.LayerNorm(hidden_size, bias=False)

    def project(self, inputs: torch.Tensor, noise: Noise = ()) -> torch.Tensor:
        return self.input_norm(F.linear(inputs, self.weight_ih)) + (self.bias_ih + self.bias_hh)  # (B, T, 4H)

    def recurrence(self, projected_t: torch.Tensor, hidden: torch.Tensor, noise: Noise) -> torch.Tensor:
        return projected_t + self.hidden_norm(self.recurrent_input(hidden, noise) @ self.weight_hh.t())

    def squash(self, cell: torch.Tensor) -> torch.Tensor:
        return self.cell_norm(cell).tanh()


class VariationalLSTMCell(LSTMCell):
    """``LSTMCell`` with variational dropout (Gal & Ghahramani 2016; Keras' LSTM ``dropout`` and
    ``recurrent_dropout``): while training, one mask per sequence, the same at every step, drops units of the input
    x_t (``input_dropout``) and of h_{t-1} where it enters the gates (``recurrent_dropout``); kept units are scaled
    by 1 / (1 - p). Eval: ``LSTMCell``. Noise: (input mask (B, D), recurrent mask (B, H)), drawn anew for every
    batch of sequences."""

    def __init__(self, input_size: int, hidden_size: int, recurrent_dropout: float = 0.0,
                 input_dropout: float = 0.0) -> None:
        super().__init__(input_size, hidden_size)
        for name, p in (("recurrent_dropout", recurrent_dropout), ("input_dropout", input_dropout)):
            if not 0.0 <= p < 1.0:
                raise SeqlabError(f"VariationalLSTMCell {name} must be in [0, 1), got {p}")
        self.recurrent_dropout = recurrent_dropout
        self.input_dropout = input_dropout

    @staticmethod
    def sequence_mask(batch: int, size: int, p: float, like: torch.Tensor) -> torch.Tensor:
        """(B, size): per sequence, each unit 0 with probability p, else 1 / (1 - p) (all ones for p = 0)."""
        if p == 0:
            return like.new_ones(batch, size)
        return keep_mask((batch, size), p, like.dtype, like.device).mul_(1.0 / (1.0 - p))

    def draw_noise(self, batch: int, like: torch.Tensor) -> Noise:
        if not (self.training and (self.input_dropout > 0 or self.recurrent_dropout > 0)):
            return ()
        return (self.sequence_mask(batch, self.input_size, self.input_dropout, like),
                self.sequence_mask(batch, self.hidden_size, self.recurrent_dropout, like))

    def project(self, inputs: torch.Tensor, noise: Noise = ()) -> torch.Tensor:
        if noise and self.input_dropout > 0:
            inputs = inputs * noise[0].unsqueeze(1)  # (B, T, D), one mask for every step
        return super().project(inputs)

    def recurrent_input(self, hidden: torch.Tensor, noise: Noise) -> torch.Tensor:
        return hidden * noise[1] if noise and self.recurrent_dropout > 0 else hidden


class LSTMCellStack(nn.Module):
    """Layers of an LSTM-family cell called like a batch-first nn.LSTM: ``forward(inputs (N, T, I), (h_0, c_0) each
    (L, N, H), noise) -> (outputs (N, T, H), (h_n, c_n))``, with ``dropout`` between layers as nn.LSTM's. For a
    decoder that runs one step per call: ``draw_noise(N, like)`` gives every layer's per-sequence draws, to keep with
    its state and pass to each call over the same sequences (without ``noise``, each call draws its own)."""

    def __init__(self, cell: Callable[[int, int], RecurrentCell], input_size: int, hidden_size: int,
                 num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        sizes = [input_size] + [hidden_size] * (num_layers - 1)
        self.layers = nn.ModuleList(RecurrentLayer(cell(size, hidden_size)) for size in sizes)
        kind = type(self.layers[0].cell).__name__
        if not isinstance(self.layers[0].cell, LSTMCell):
            raise SeqlabError(f"a {kind} has no LSTM state (h, c): the decoder's cell must be an LSTM-family cell "
                              "(LSTMCell, PeepholeLSTMCell, CIFGLSTMCell, LayerNormLSTMCell, VariationalLSTMCell)")
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = Dropout(dropout)

    def draw_noise(self, batch: int, like: torch.Tensor) -> tuple[Noise, ...]:
        return tuple(layer.cell.draw_noise(batch, like) for layer in self.layers)

    def forward(self, inputs: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor],
                noise: Optional[tuple[Noise, ...]] = None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        hidden, cell = hx  # (L, N, H) each
        mask = torch.ones(inputs.shape[:2], dtype=torch.bool, device=inputs.device)  # (N, T): no padding
        outputs, finals = inputs, []
        for depth, layer in enumerate(self.layers):
            if depth:
                outputs = self.dropout(outputs)
            outputs, state = layer(outputs, mask, (hidden[depth], cell[depth]), None if noise is None else noise[depth])
            finals.append(state)
        return outputs, (torch.stack([h for h, _ in finals]), torch.stack([c for _, c in finals]))  # (N, T, H)


# --------------------------------------------------------------------------- GRU
class GRUCell(RecurrentCell):
    """nn.GRU's cell: r, z = sigma(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z}), n = tanh(W_in x + b_in +
    r * (W_hn h + b_hn)), h_t = (1 - z) * n + z * h_{t-1}. State (h,). nn.GRU's parameter names, shapes and init."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def project(self, inputs: torch.Tensor, noise: Noise = ()) -> torch.Tensor:
        return F.linear(inputs, self.weight_ih, self.bias_ih)  # (B, T, 3H)

    def initial_state(self, batch: int, like: torch.Tensor) -> State:
        return (like.new_zeros(batch, self.hidden_size),)

    def step(self, projected_t: torch.Tensor, state: State, noise: Noise = ()) -> State:
        (hidden,) = state
        recurrent = torch.addmm(self.bias_hh, hidden, self.weight_hh.t())  # (B, 3H)
        size = self.hidden_size
        reset_update = (projected_t[:, :2 * size] + recurrent[:, :2 * size]).sigmoid()
        reset, update = reset_update.chunk(2, dim=1)
        new = torch.tanh(projected_t[:, 2 * size:] + reset * recurrent[:, 2 * size:])
        return (new + update * (hidden - new),)


# --------------------------------------------------------------------------- ConvLSTM
class ConvLSTMCell(RecurrentCell):
    """Convolutional LSTM (Shi et al. 2015) over spectrogram frames: the state is ``hidden_size`` channels x
    ``frequency_bins`` bins, and the gates are 1-d convolutions along frequency (``kernel_size`` bins, zero-padded to
    keep the bins) of the input frame and of h_{t-1} instead of full matrix products, so a unit sees only nearby
    frequencies. Without the paper's peephole terms. An input frame of ``input_size`` features is read as
    ``input_size / frequency_bins`` channels of ``frequency_bins`` bins, channel-major (a bidirectional layer's output
    is that again, 2 x hidden_size channels); ``output_size`` = hidden_size * frequency_bins. State (h, c), each
    (B, C, F)."""

    def __init__(self, input_size: int, hidden_size: int, frequency_bins: int = 40, kernel_size: int = 5) -> None:
        super().__init__(input_size, hidden_size)
        if frequency_bins < 1 or input_size % frequency_bins:
            raise SeqlabError(f"ConvLSTMCell frequency_bins={frequency_bins} does not divide the input size "
                              f"{input_size} (channels x frequency bins per frame)")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise SeqlabError(f"ConvLSTMCell kernel_size must be odd (the output keeps the input's bins), got "
                              f"{kernel_size}")
        self.frequency_bins = frequency_bins
        self.in_channels = input_size // frequency_bins
        self.output_size = hidden_size * frequency_bins
        self.input_conv = nn.Conv1d(self.in_channels, 4 * hidden_size, kernel_size, padding=kernel_size // 2)
        self.hidden_conv = nn.Conv1d(hidden_size, 4 * hidden_size, kernel_size, padding=kernel_size // 2,
                                     bias=False)

    def project(self, inputs: torch.Tensor, noise: Noise = ()) -> torch.Tensor:
        batch, time, _ = inputs.shape
        frames = inputs.reshape(batch * time, self.in_channels, self.frequency_bins)  # (B * T, C_in, F)
        return self.input_conv(frames).view(batch, time, -1)  # (B, T, 4C * F)

    def initial_state(self, batch: int, like: torch.Tensor) -> State:
        zeros = like.new_zeros(batch, self.hidden_size, self.frequency_bins)
        return zeros, zeros

    def step(self, projected_t: torch.Tensor, state: State, noise: Noise = ()) -> State:
        hidden, cell = state  # (B, C, F) each
        pre = projected_t.view(hidden.shape[0], 4 * self.hidden_size, self.frequency_bins) + self.hidden_conv(hidden)
        input_gate, forget, candidate, output = pre.chunk(4, dim=1)  # (B, C, F) each
        cell = forget.sigmoid() * cell + input_gate.sigmoid() * candidate.tanh()
        return output.sigmoid() * cell.tanh(), cell


# --------------------------------------------------------------------------- the fused kernel with DropConnect
class WeightDropLSTM(nn.LSTM):
    """nn.LSTM with DropConnect on the recurrent matrices (Merity et al. 2018, AWD-LSTM): while training, each
    forward call drops elements of every ``weight_hh_l*`` with probability ``weight_dropout`` (scaling the rest by
    1 / (1 - p)), one draw for all steps and sequences of the call, and runs nn.LSTM's fused kernel with them. Eval:
    nn.LSTM. Same parameters and state_dict keys as nn.LSTM."""

    def __init__(self, *args, weight_dropout: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 <= weight_dropout < 1.0:
            raise SeqlabError(f"WeightDropLSTM weight_dropout must be in [0, 1), got {weight_dropout}")
        self.weight_dropout = weight_dropout

    def forward(self, inputs, hx=None):
        if not (self.training and self.weight_dropout > 0):
            return super().forward(inputs, hx)
        weights = self._flat_weights
        self._flat_weights = [self.drop_connect(w) if name.startswith("weight_hh") else w
                              for name, w in zip(self._flat_weights_names, weights)]
        try:
            return super().forward(inputs, hx)
        finally:
            self._flat_weights = weights

    def drop_connect(self, weight: torch.Tensor) -> torch.Tensor:
        """``weight`` with each element 0 with probability p, else scaled by 1 / (1 - p): F.dropout's distribution,
        with the packed-bit masks of ``seqlab.models.dropout`` (F.dropout's per-element Bernoulli draws cost about a
        tenth of an NER-sized training step per matrix on CPU)."""
        p = self.weight_dropout
        return weight * keep_mask(weight.shape, p, weight.dtype, weight.device).mul_(1.0 / (1.0 - p))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, weight_dropout={self.weight_dropout}"
