"""The translation network as plain torch: source embedder -> encoder -> (bridge, attention) LSTM decoder.
``forward(batch)``: the teacher-forced decoder output; ``loss(output, batch)``: label-smoothed cross-entropy;
``translate(batch, search)``: greedy or beam search. ``Seq2SeqTranslation`` optimises it, scores and logs; the speed
benchmarks and the inference API run it without Lightning.

Batches are the translation data module's: ``source_ids`` (B, S), ``source_mask`` (B, S) bool (True = real piece),
``target_ids`` (B, T + 2) (BOS y_1 .. y_T EOS, padded).
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from seqlab import SeqlabError
from seqlab.models.decoders import DecoderOutput, Hypotheses, LSTMDecoder, SearchStrategy
from seqlab.models.dropout import DropoutSpec
from seqlab.models.embeddings import TokenEmbedder, WordEmbedder
from seqlab.models.encoders import EncoderOutput, SequenceEncoder


class Seq2SeqNetwork(nn.Module):
    """An encoder-decoder: ``embedder`` (source pieces) -> ``encoder`` -> ``decoder``. The decoder's padding index is
    the target's; ``bos_index`` starts every output, ``eos_index`` ends it; ``label_smoothing`` is the loss's."""

    def __init__(self, embedder: TokenEmbedder, encoder: SequenceEncoder, decoder: LSTMDecoder, bos_index: int,
                 eos_index: int, label_smoothing: float = 0.1) -> None:
        super().__init__()
        self.embedder, self.encoder, self.decoder = embedder, encoder, decoder
        self.bos_index, self.eos_index = bos_index, eos_index
        self.target_padding_idx = decoder.padding_idx
        if not 0.0 <= label_smoothing <= 1.0:  # torch's cross-entropy refuses it on the first batch
            raise SeqlabError(f"label_smoothing must be between 0 and 1, got {label_smoothing}")
        self.label_smoothing = label_smoothing

    @property
    def word_embedder(self) -> WordEmbedder:
        """The source word embedding (pretrained vectors start it; an open vocabulary appends rows to it)."""
        return self.embedder.words

    def encode(self, batch: Mapping[str, torch.Tensor]) -> EncoderOutput:
        embedded = self.embedder(batch["source_ids"], batch["source_mask"])  # (B, S, E)
        return self.encoder(embedded, batch["source_mask"])  # states (B, S, M)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> DecoderOutput:
        """Teacher forcing: logits (B, T + 1, V) for ``target_ids[:, 1:]`` (y_1 .. y_T EOS) and the attention
        (B, T + 1, S), or None without attention."""
        return self.decoder(batch["target_ids"][:, :-1], self.encode(batch))

    def loss(self, output: DecoderOutput, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Label-smoothed cross-entropy per target token after BOS (EOS included), padding ignored."""
        gold = batch["target_ids"][:, 1:]  # (B, T + 1): y_1 .. y_T EOS, padded
        logits = output.logits  # (B, T + 1, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), gold.reshape(-1),
                               ignore_index=self.target_padding_idx, label_smoothing=self.label_smoothing)

    def translate(self, batch: Mapping[str, torch.Tensor], search: SearchStrategy,
                  return_attention: bool = False) -> Hypotheses:
        """The ``search``'s hypotheses for the batch's sources (``source_ids`` and ``source_mask`` only)."""
        return search(self.decoder, self.encode(batch), self.bos_index, self.eos_index, return_attention)


def build_seq2seq_network(source_vocab_size: int, source_padding_idx: int, target_vocab_size: int,
                          target_padding_idx: int, bos_index: int, eos_index: int,
                          source_embedding: Callable[[int, int], WordEmbedder],
                          encoder: Callable[[int], SequenceEncoder], decoder: Callable[[int, int, int], LSTMDecoder],
                          embedding_dropout: DropoutSpec = 0.3, label_smoothing: float = 0.1) -> Seq2SeqNetwork:
    """``source_embedding(source_vocab_size, source_padding_idx)`` -> ``encoder(embedder.output_size)`` ->
    ``decoder(target_vocab_size, target_padding_idx, encoder.output_size)``."""
    embedder = TokenEmbedder(source_embedding(source_vocab_size, source_padding_idx), None, embedding_dropout)
    sequence_encoder = encoder(embedder.output_size)
    return Seq2SeqNetwork(embedder, sequence_encoder,
                          decoder(target_vocab_size, target_padding_idx, sequence_encoder.output_size),
                          bos_index, eos_index, label_smoothing)
