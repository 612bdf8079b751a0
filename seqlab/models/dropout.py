"""Dropout with cheap masks: the same distribution as ``nn.Dropout``, drawn from packed random bits.

On CPU ``nn.Dropout`` draws one Bernoulli sample per element (``bernoulli_``); at NER sizes that costs as much as
a good part of the LSTM step. Here an element needs only ``b`` random bits where ``p * 2**b`` is an integer
(``p = 0.5``: one bit, so one 64-bit draw covers 64 elements, unpacked with a few uint8 operations); any other
``p`` uses 31 bits per element, i.e. ``p`` is rounded to a multiple of 2**-31 (``torch.rand`` has a 2**-24 grid).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import nn

from seqlab import SeqlabError

_SMALL_BITS = (1, 2, 4)  # fields unpacked from bytes
_WIDE_BITS = 31  # fields of one int32 each


def _bits_for(p: float) -> int:
    """Fewest bits b in (1, 2, 4) with p * 2**b an integer; else 31."""
    for bits in _SMALL_BITS:
        if float(p * (1 << bits)).is_integer():
            return bits
    return _WIDE_BITS


def keep_mask(shape: Sequence[int], p: float, dtype: torch.dtype = torch.float32,
              device: Optional[torch.device] = None) -> torch.Tensor:
    """Tensor of ``shape`` and ``dtype``: each element independently 0 (dropped) with probability ``p`` (rounded
    to a multiple of 2**-31), else 1. Uses ``device``'s default generator, so ``torch.manual_seed`` applies."""
    count = 1
    for size in shape:
        count *= int(size)
    bits = _bits_for(p)
    threshold = round(p * (1 << bits))  # a field < threshold is dropped: probability threshold / 2**bits
    fields_per_draw = 64 // bits if bits in _SMALL_BITS else 2
    draws = -(-count // fields_per_draw)
    raw = torch.empty(draws, dtype=torch.int64, device=device).random_(-(2**63), None)  # 64 random bits each
    if bits in _SMALL_BITS:
        shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=device).unsqueeze(1)  # (8 / b, 1)
        fields = (raw.view(torch.uint8) >> shifts) & ((1 << bits) - 1)  # (8 / b, 8 * draws), each uniform < 2**b
        keep = (fields.reshape(-1)[:count] + ((1 << bits) - threshold)) >> bits  # 1 iff field >= threshold
    else:
        fields = raw.view(torch.int32)[:count] & 0x7FFFFFFF  # (count,) uniform < 2**31
        keep = 1 + ((fields - threshold) >> 31)  # arithmetic shift: 1 iff field >= threshold
    return keep.to(dtype).reshape(tuple(shape))


class Dropout(nn.Module):
    """Drop-in for ``nn.Dropout`` (training: zero each element with probability ``p`` and scale the rest by
    ``1 / (1 - p)``; eval: identity) with masks from :func:`keep_mask`. Any shape."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise SeqlabError(f"a dropout probability must be between 0 and 1, got {p}")
        self.p = p

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return inputs
        if self.p == 1.0:
            return inputs * 0.0
        scale = keep_mask(self.mask_shape(inputs), self.p, inputs.dtype, inputs.device).mul_(1.0 / (1.0 - self.p))
        return inputs * scale

    def mask_shape(self, inputs: torch.Tensor) -> tuple[int, ...]:
        """The shape of the mask drawn for ``inputs``, broadcast against them: one draw per element."""
        return tuple(inputs.shape)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SequenceDropout(Dropout):
    """Variational (locked) dropout on sequences (Gal & Ghahramani 2016; Reimers & Gurevych 2017): while training,
    inputs (B, T, D) get one mask (B, 1, D) per sequence, the same units dropped at every step; inputs (B, D), as a
    sequence summary, get a mask (B, D) like ``Dropout``. Eval: identity. The mask does not depend on T, so extra
    padding leaves the real steps' outputs unchanged under the same random state."""

    def mask_shape(self, inputs: torch.Tensor) -> tuple[int, ...]:
        if inputs.dim() == 3:
            return (inputs.shape[0], 1, inputs.shape[2])
        return tuple(inputs.shape)


DropoutSpec = Union[float, Dropout]
"""A dropout option: a probability (elementwise ``Dropout``) or a dropout module, e.g. ``SequenceDropout(0.33)``."""


def as_dropout(spec: DropoutSpec) -> Dropout:
    """The module a ``DropoutSpec`` names: ``Dropout(spec)`` for a probability, else ``spec`` itself."""
    return spec if isinstance(spec, Dropout) else Dropout(float(spec))
