"""The speech frame network as plain torch: features -> (SpecAugment) -> (frame stacking) -> input dropout ->
encoder (-> self-attention) -> (states repeated back to the frame rate) -> per-frame classifier. ``forward(batch)``:
logits (B, T, K) for every input frame; ``loss(logits, batch)``: the classifier's cross-entropy over the labelled
frames. ``FrameClassification`` optimises it, scores and logs; the speed benchmark, the inference API and the export
run it without Lightning.

Batches are the speech data module's: ``features`` (B, T, F), ``mask`` (B, T) bool (True = real frame),
``label_ids`` (B, T) (-100: no label).
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import nn

from seqlab.models.attention import MultiHeadSelfAttention
from seqlab.models.augment import SpecAugment
from seqlab.models.encoders import SequenceEncoder
from seqlab.models.frames import FrameClassifier, FrameStacking


class FrameNetwork(nn.Module):
    """One label per frame. ``augment`` masks features in training mode only (the identity in eval mode);
    ``stacking`` lets the encoder run fewer, wider steps and its states are repeated back to the input frame rate;
    ``attention`` (optional) runs over the encoder's states."""

    def __init__(self, encoder: SequenceEncoder, head: FrameClassifier, augment: Optional[SpecAugment] = None,
                 stacking: Optional[FrameStacking] = None, input_dropout: float = 0.0,
                 attention: Optional[MultiHeadSelfAttention] = None) -> None:
        super().__init__()
        self.augment, self.stacking = augment, stacking
        self.input_dropout = nn.Dropout(input_dropout)
        self.encoder, self.attention, self.head = encoder, attention, head
        self.labels = head.labels

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Logits (B, T, K) for every input frame."""
        features, mask = batch["features"], batch["mask"]  # (B, T, F), (B, T)
        if self.augment is not None:
            features = self.augment(features, mask)
        inputs, inner_mask = self.stacking(features, mask) if self.stacking is not None else (features, mask)
        encoded = self.encoder(self.input_dropout(inputs), inner_mask)  # states (B, T', H)
        if self.attention is not None:
            encoded = self.attention(encoded)
        states = encoded.states
        if self.stacking is not None:
            states = self.stacking.upsample(states, mask.shape[1])  # (B, T, H)
        return self.head(states)

    def loss(self, logits: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The head's cross-entropy of ``logits`` (B, T, K) over the labelled real frames."""
        return self.head.loss(logits, batch["label_ids"], batch["mask"])


def build_frame_network(feature_size: int, labels: Sequence[str], encoder: Callable[[int], SequenceEncoder],
                        head: Callable[[int, list[str]], FrameClassifier],
                        augment: Optional[Callable[[int], SpecAugment]] = None,
                        stacking: Optional[Callable[[int], FrameStacking]] = None, input_dropout: float = 0.0,
                        attention: Optional[Callable[[int], MultiHeadSelfAttention]] = None) -> FrameNetwork:
    """``augment(feature_size)``, ``stacking(feature_size)``, ``encoder(stacking.output_size or feature_size)``,
    ``attention(encoder.output_size)``, ``head(encoder.output_size, labels)``."""
    augmenter = augment(feature_size) if augment is not None else None
    stacker = stacking(feature_size) if stacking is not None else None
    sequence_encoder = encoder(stacker.output_size if stacker is not None else feature_size)
    attender = attention(sequence_encoder.output_size) if attention is not None else None
    return FrameNetwork(sequence_encoder, head(sequence_encoder.output_size, list(labels)), augmenter, stacker,
                        input_dropout, attender)
