"""SpecAugment over padded feature batches, with torchaudio's masking transforms; active in training mode only."""

from __future__ import annotations

import torch
from torch import nn

from seqlab.torchaudio_compat import import_torchaudio

torchaudio = import_torchaudio()


class SpecAugment(nn.Module):
    """Frequency and time masking (Park et al. 2019) for (B, T, F) features: ``freq_masks`` bands of up to
    ``freq_mask_width`` features and ``time_masks`` spans of up to ``time_mask_width`` frames (and at most
    ``max_time_ratio`` of the batch's frames) set to ``mask_value`` (0: the mean after CMVN), each example
    masked independently (``iid_masks``). In eval mode (``model.eval()``) it returns its input unchanged.
    ``input_size`` is the feature size (the task passes it; the masks need no parameters)."""

    def __init__(self, input_size: int = 0, freq_masks: int = 2, freq_mask_width: int = 8, time_masks: int = 2,
                 time_mask_width: int = 20, max_time_ratio: float = 0.2, mask_value: float = 0.0) -> None:
        super().__init__()
        self.output_size = input_size
        self.mask_value = mask_value
        self.freq = nn.ModuleList(torchaudio.transforms.FrequencyMasking(freq_mask_width, iid_masks=True)
                                  for _ in range(freq_masks))
        self.time = nn.ModuleList(torchaudio.transforms.TimeMasking(time_mask_width, iid_masks=True,
                                                                    p=max_time_ratio)
                                  for _ in range(time_masks))

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> (B, T, F); padding stays 0."""
        if not self.training:
            return features
        spectrogram = features.transpose(1, 2)  # (B, F, T): torchaudio's (..., freq, time)
        for masking in (*self.freq, *self.time):
            spectrogram = masking(spectrogram, self.mask_value)
        return spectrogram.transpose(1, 2) * mask.unsqueeze(-1)
