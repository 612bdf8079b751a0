"""Parts for frame-level models over acoustic features: frame stacking, a context-window MLP encoder (the baseline),
and a per-frame classifier head."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seqlab import SeqlabError
from seqlab.models.encoders import EncoderOutput, SequenceEncoder

IGNORE_INDEX = -100


def sliding_windows(frames: torch.Tensor, width: int, stride: int, count: int) -> torch.Tensor:
    """The first ``count`` windows of ``width`` consecutive frames, one every ``stride`` frames, each window's frames
    side by side, oldest first: (B, N, F) -> (B, count, width * F), for N >= (count - 1) * stride + width. A view
    (``unfold``); traced (for export), concatenated slices: ONNX has no unfold over a length known at run time."""
    if torch.jit.is_tracing():
        return torch.cat([frames[:, offset::stride][:, :count] for offset in range(width)], dim=2)
    batch, _, size = frames.shape
    return frames.unfold(1, width, stride)[:, :count].transpose(2, 3).reshape(batch, count, width * size)


class FrameStacking(nn.Module):
    """Concatenates ``stack`` consecutive frames and keeps every ``stride``-th: (B, T, F) -> (B, ceil(T / stride),
    stack * F), frames past each sequence's end read as zeros. An encoder then runs ``stride`` times fewer steps;
    ``upsample`` repeats its states back to the input frame rate, so every input frame still gets an output."""

    def __init__(self, input_size: int, stack: int = 3, stride: int | None = None) -> None:
        super().__init__()
        self.stack = stack
        self.stride = stride or stack
        if self.stack < 1 or self.stride < 1:
            raise SeqlabError(f"FrameStacking: stack ({stack}) and stride ({stride}) must be at least 1")
        self.output_size = input_size * stack

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, T, F), mask (B, T) -> stacked (B, T', stack * F), mask (B, T') with T' = ceil(T / stride)."""
        batch, time, size = features.shape
        steps = (time + self.stride - 1) // self.stride  # ceil; non-negative operands: the same in a traced graph
        padded = steps * self.stride + max(self.stack - self.stride, 0)
        features = F.pad(features * mask.unsqueeze(-1), (0, 0, 0, padded - time))  # (B, padded, F)
        stacked = sliding_windows(features, self.stack, self.stride, steps)  # (B, T', stack * F)
        lengths = (mask.sum(1) + self.stride - 1) // self.stride  # (B,)
        return stacked, torch.arange(steps, device=mask.device).unsqueeze(0) < lengths.unsqueeze(1)

    def upsample(self, states: torch.Tensor, time: int) -> torch.Tensor:
        """(B, T', H) -> (B, time, H): each state repeated for the ``stride`` input frames it stands for."""
        return states.repeat_interleave(self.stride, dim=1)[:, :time]


class ContextWindowMLP(SequenceEncoder):
    """Frame-wise MLP over a window of +-``context`` frames (zeros beyond the sequence): (B, T, F) -> (B, T, H).

    The classic hybrid-ASR baseline: each frame sees ``2 * context + 1`` frames of features and nothing else.
    ``num_layers`` blocks Linear -> LayerNorm -> ReLU -> Dropout of ``hidden_size``. ``final`` is the mean state.
    """

    def __init__(self, input_size: int, context: int = 5, hidden_size: int = 512, num_layers: int = 2,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.context = context
        self.output_size = hidden_size
        layers: list[nn.Module] = []
        size = input_size * (2 * context + 1)
        for _ in range(num_layers):
            layers += [nn.Linear(size, hidden_size), nn.LayerNorm(hidden_size), nn.ReLU(), nn.Dropout(dropout)]
            size = hidden_size
        self.layers = nn.Sequential(*layers)

    def windows(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> (B, T, (2k + 1) * F): frames t - k .. t + k of each position, oldest first."""
        padded = F.pad(inputs * mask.unsqueeze(-1), (0, 0, self.context, self.context))  # (B, T + 2k, F)
        return sliding_windows(padded, 2 * self.context + 1, 1, inputs.shape[1])

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        real = mask.unsqueeze(-1).to(inputs.dtype)  # (B, T, 1)
        states = self.layers(self.windows(inputs, mask)) * real  # (B, T, H)
        final = states.sum(1) / real.sum(1).clamp_min(1.0)  # (B, H)
        return EncoderOutput(states, mask, final)


class FrameClassifier(nn.Module):
    """Per-frame softmax classifier: (B, T, H) -> logits (B, T, K), optionally through one hidden layer.

    ``loss`` is the cross-entropy averaged over the labelled frames of the batch (label -100 and padding ignored),
    with optional label smoothing; ``decode`` takes the argmax (0 on padding).
    """

    def __init__(self, input_size: int, labels: Sequence[str], hidden_size: int = 0, dropout: float = 0.0,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.labels = list(labels)
        self.num_labels = len(self.labels)
        if not 0.0 <= label_smoothing <= 1.0:  # torch's cross-entropy refuses it on the first batch
            raise SeqlabError(f"label_smoothing must be between 0 and 1, got {label_smoothing}")
        self.label_smoothing = label_smoothing
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden_size:
            layers += [nn.Linear(input_size, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
            input_size = hidden_size
        layers.append(nn.Linear(input_size, self.num_labels))
        self.layers = nn.Sequential(*layers)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.layers(states)  # (B, T, K)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        targets = labels.masked_fill(~mask, IGNORE_INDEX).reshape(-1)  # (B * T,)
        if not bool((targets != IGNORE_INDEX).any()):
            return logits.sum() * 0.0  # no labelled frame: a zero that keeps the graph
        return F.cross_entropy(logits.reshape(-1, self.num_labels), targets, ignore_index=IGNORE_INDEX,
                               label_smoothing=self.label_smoothing)

    def decode(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Label ids (B, T), 0 on padding."""
        return logits.argmax(dim=-1).masked_fill(~mask, 0)
