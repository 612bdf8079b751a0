"""Word features from one character BiLSTM that reads the whole sentence (Akbik et al. 2018, "Contextual String
Embeddings"; Liu et al. 2018, "Empower Sequence Labeling with Task-Aware Neural Language Model"): a word's features
depend on its characters and on the characters of the words around it, where ``CharBiLSTM`` reads each word alone.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from seqlab.models.embeddings import CharEncoder
from seqlab.models.encoders import BiLSTMEncoder, SequenceEncoder


def stream_layout(char_mask: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where each sentence's characters go in its stream ``[sep] w_1 [sep] w_2 [sep] ... w_n [sep]``.

    char_mask (B, T, L) bool, True = a real character of a real token; mask (B, T) bool, True = real token ->
    ``starts`` (B, T): the stream position of each word's first character (a word of length n fills
    ``starts .. starts + n - 1``, its separator after it is at ``starts + n`` and the one before it at
    ``starts - 1``); ``ends`` (B, T): the separator after each word; ``stream_lengths`` (B,).
    Values at padding tokens are those of a zero-length word after the last one and are not used.
    """
    slots = torch.where(mask, char_mask.sum(2) + 1, 0)  # (B, T): a word's characters and its separator after it
    ends = slots.cumsum(1)  # (B, T): the stream begins with a separator at 0
    starts = ends - slots + 1
    return starts, ends, ends[:, -1] + 1


class SentenceCharBiLSTM(CharEncoder):
    """Character BiLSTM over the sentence as one stream of characters, a learned separator before, between and
    after the words: char ids (B, T, L), mask (B, T) -> (B, T, 2H).

    A word's features are the forward state at the separator after it (it has read the sentence up to and including
    the word) and the backward state at the separator before it (the word and all that follows), as Akbik et al.
    take theirs. Over a one-layer BiLSTM the halves are causal (``causal_halves``): the forward half at word t
    depends on words <= t only and the backward half on words >= t only, so a ``BidirectionalLanguageModel`` can
    read them (``TokenTagging(char_language_model=...)``, the character-level language model of Liu et al.).
    ``encoder(embedding_dim, hidden_size)`` runs over the stream: the nn.LSTM ``BiLSTMEncoder`` or e.g. a
    ``RecurrentEncoder`` with another cell. Padding tokens get 0.
    """

    def __init__(
        self, char_vocab_size: int, padding_idx: int = 0, embedding_dim: int = 25, hidden_size: int = 50,
        encoder: Callable[[int, int], SequenceEncoder] = BiLSTMEncoder,
    ) -> None:
        super().__init__(char_vocab_size, padding_idx, embedding_dim)
        self.separator = nn.Parameter(torch.empty(embedding_dim).normal_())  # as nn.Embedding initialises its rows
        self.lstm = encoder(embedding_dim, hidden_size)
        self.output_size = self.lstm.output_size
        self.reads_one_word = False
        self.causal_halves = self.lstm.causal_halves

    def streams(self, chars: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                         torch.Tensor]:
        """The embedded character streams (B, S, E), their mask (B, S), and each word's ``starts`` and ``ends``
        (B, T) as ``stream_layout`` gives them. S is the longest stream of the batch (traced: the longest any batch
        of this shape can have, T x (L + 1) + 1, so one graph serves every batch)."""
        batch, time, length = chars.shape
        char_mask = (chars != self.padding_idx) & mask.unsqueeze(2)  # (B, T, L)
        starts, ends, stream_lengths = stream_layout(char_mask, mask)
        width = time * (length + 1) + 1 if torch.jit.is_tracing() else int(stream_lengths.max())
        positions = starts.unsqueeze(2) + torch.arange(length, device=chars.device)  # (B, T, L)
        positions = torch.where(char_mask, positions, torch.full_like(positions, width))  # the rest: a dropped column
        sources = 1 + torch.arange(batch * time * length, device=chars.device).view(batch, time, length)
        rows = torch.zeros(batch, width + 1, dtype=torch.int64, device=chars.device)  # 0: the separator's row
        rows = rows.scatter(1, positions.view(batch, -1), sources.view(batch, -1))[:, :width]  # (B, S)
        table = torch.cat([self.separator.unsqueeze(0), self.embedding(chars).view(batch * time * length, -1)])
        stream_mask = torch.arange(width, device=chars.device) < stream_lengths.unsqueeze(1)  # (B, S)
        return table[rows], stream_mask, starts, ends  # (B, S, E)

    def forward(self, chars: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        embedded, stream_mask, starts, ends = self.streams(chars, mask)
        states = self.lstm(embedded, stream_mask).states  # (B, S, 2H)
        half = self.output_size // 2
        after = states[..., :half].gather(1, ends.unsqueeze(2).expand(-1, -1, half))  # (B, T, H)
        before = states[..., half:].gather(1, (starts - 1).unsqueeze(2).expand(-1, -1, half))  # (B, T, H)
        return torch.cat([after, before], dim=2).masked_fill(~mask.unsqueeze(2), 0.0)  # (B, T, 2H)
