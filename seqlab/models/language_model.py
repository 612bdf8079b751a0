"""An auxiliary language-modelling objective for taggers (Rei 2017, "Semi-supervised Multitask Learning for Sequence
Labeling"): the forward half of a bidirectional encoder's states predicts the next word, the backward half the
previous word. It needs no data beyond the tagged sentences and is used in training only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqlab import SeqlabError


class BidirectionalLanguageModel(nn.Module):
    """Next-word and previous-word prediction from the two halves of bidirectional states (B, T, 2H).

    Each direction has its own ``tanh`` layer of ``hidden_size`` units and its own softmax over the ``max_words``
    first word ids (vocabularies are ordered by frequency, specials first); rarer words are predicted as the
    ``unk_index`` class. The softmax's cost grows with ``max_words``: on CPU, Rei's 7500 doubles the time of a
    training step of the CoNLL GloVe config; 2000 covers 75 % of CoNLL-2003's training tokens and adds about a third
    to a full run. ``loss`` is ``weight`` x (next-word + previous-word negative log-likelihood), each summed over the
    sentence's predictable positions and averaged over sentences, the reduction of ``CRFTagger.loss``, so
    ``weight`` is Rei's gamma (0.1). The encoder must be causal per half: the forward state at t sees words <= t only
    and the backward state words >= t only (a one-layer bidirectional RNN; ``SequenceEncoder.causal_halves``).
    """

    def __init__(self, input_size: int, vocab_size: int, hidden_size: int = 50, max_words: int = 2000,
                 weight: float = 0.1, unk_index: int = 1) -> None:
        super().__init__()
        if input_size % 2:
            raise SeqlabError(f"BidirectionalLanguageModel needs states of two equal halves, got size {input_size}")
        if weight <= 0:
            raise SeqlabError(f"BidirectionalLanguageModel weight must be positive, got {weight}")
        self.classes = min(max_words, vocab_size)
        if not 0 <= unk_index < self.classes:
            raise SeqlabError(f"BidirectionalLanguageModel unk_index {unk_index} is outside its {self.classes} classes")
        self.unk_index, self.weight = unk_index, weight
        half = input_size // 2
        self.next_word = nn.Sequential(nn.Linear(half, hidden_size), nn.Tanh(), nn.Linear(hidden_size, self.classes))
        self.previous_word = nn.Sequential(nn.Linear(half, hidden_size), nn.Tanh(),
                                           nn.Linear(hidden_size, self.classes))

    def targets(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token_ids (B, T) -> class ids (B, T): ids past the softmax become ``unk_index``."""
        return torch.where(token_ids < self.classes, token_ids, torch.full_like(token_ids, self.unk_index))

    def loss(self, states: torch.Tensor, token_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """states (B, T, 2H), forward half first; token_ids (B, T); mask (B, T) bool, True = real -> scalar."""
        half = states.shape[2] // 2
        targets = self.targets(token_ids)
        has_next = mask[:, 1:]  # (B, T - 1): position t has a word t + 1
        next_nll = self._summed_nll(self.next_word, states[:, :-1, :half], targets[:, 1:], has_next)
        previous_nll = self._summed_nll(self.previous_word, states[:, 1:, half:], targets[:, :-1], has_next)
        return self.weight * (next_nll + previous_nll) / mask.shape[0]

    @staticmethod
    def _summed_nll(layer: nn.Module, states: torch.Tensor, targets: torch.Tensor, keep: torch.Tensor
                    ) -> torch.Tensor:
        """Summed negative log-likelihood of ``targets`` at the ``keep`` positions only (padding is never scored
        nor projected onto the vocabulary)."""
        logits = layer(states[keep])  # (N, classes)
        return F.cross_entropy(logits.float(), targets[keep], reduction="sum")
