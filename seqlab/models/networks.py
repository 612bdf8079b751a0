"""Whole trainable networks as plain torch: a body (embedder -> encoder) under one head per task, each with
``forward(batch)`` and ``loss(outputs, batch)``. Tasks (LightningModules) optimise them, compute metrics and log;
benchmarks and the inference API run them without Lightning; multi-task learning puts several heads on one body.

Batches are the data modules' TypedDicts: ``token_ids`` (B, T), ``mask`` (B, T) bool (True = real token),
optionally ``char_ids`` (B, T, L) and a transformer's keys (``word_features`` or ``piece_ids``...); ``tag_ids``
(B, T) for tagging, ``label_ids`` (B,) for classification.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from seqlab import SeqlabError
from seqlab.models.attention import MultiHeadSelfAttention
from seqlab.models.casing import CasingEmbedding
from seqlab.models.dropout import DropoutSpec
from seqlab.models.embeddings import CharEncoder, TokenEmbedder, WordEmbedder
from seqlab.models.encoders import EncoderOutput, SequenceEncoder
from seqlab.models.pooling import PooledOutput, Pooling
from seqlab.models.taggers import TaggerHead
from seqlab.models.transformer_embeddings import TransformerWordEmbedding


class Body(nn.Module):
    """The shared part: token embedder -> sequence encoder. ``forward(batch) -> EncoderOutput`` (states (B, T, H))."""

    def __init__(self, embedder: TokenEmbedder, encoder: SequenceEncoder) -> None:
        super().__init__()
        self.embedder, self.encoder = embedder, encoder
        self.output_size = encoder.output_size

    def forward(self, batch: Mapping[str, torch.Tensor]) -> EncoderOutput:
        return self.encode(self.embed(batch)[0], batch["mask"])

    def embed(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The embedder's parts concatenated, before dropout (B, T, E): what an adversary perturbs; and the parts
        themselves (``TokenEmbedder.parts``), which auxiliary objectives may read."""
        parts = self.embedder.parts(batch["token_ids"], batch["mask"], batch.get("char_ids"), batch)
        return self.embedder.concatenate(parts), parts

    def encode(self, embedded: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        """Dropout on ``embedded`` (B, T, E), then the encoder over it."""
        return self.encoder(self.embedder.dropout(embedded), mask)


class TaggingHead(nn.Module):
    """Per-token tags: optional self-attention over the states, then a softmax or CRF tagger.
    ``forward(encoded) -> emissions (B, T, K)``; ``loss(emissions, batch)`` from ``tag_ids`` and ``mask``."""

    def __init__(self, tagger: TaggerHead, attention: Optional[MultiHeadSelfAttention] = None) -> None:
        super().__init__()
        self.tagger, self.attention = tagger, attention
        self.labels = tagger.labels

    def forward(self, encoded: EncoderOutput) -> torch.Tensor:
        if self.attention is not None:
            encoded = self.attention(encoded)
        return self.tagger(encoded.states)

    def loss(self, emissions: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.tagger.loss(emissions, batch["tag_ids"], batch["mask"])


class ClassifierOutput(NamedTuple):
    """logits (B, K); pooled: the pooling's output (sentence vector, attention weights, penalty)."""

    logits: torch.Tensor
    pooled: PooledOutput


class ClassificationHead(nn.Module):
    """One label per sequence: pooling over the states, then a classifier. ``loss``: cross-entropy (weighted by
    ``class_weights``, one per label) plus the pooling's penalty (self-attentive pooling's ||AA^T - I||^2)."""

    def __init__(self, pooling: Pooling, classifier: nn.Module, labels: Sequence[str],
                 class_weights: Optional[Sequence[float]] = None) -> None:
        super().__init__()
        self.pooling, self.classifier, self.labels = pooling, classifier, list(labels)
        if class_weights is not None:
            if len(class_weights) != len(self.labels):
                raise SeqlabError(f"class_weights has {len(class_weights)} values for {len(self.labels)} labels "
                                  f"({', '.join(self.labels)})")
            if not all(weight >= 0 for weight in class_weights) or not any(weight > 0 for weight in class_weights):
                raise SeqlabError(f"class_weights must be at least 0 and not all 0, got {list(class_weights)}")
        weights = None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float)
        self.register_buffer("class_weights", weights)

    def forward(self, encoded: EncoderOutput) -> ClassifierOutput:
        pooled = self.pooling(encoded)
        return ClassifierOutput(self.classifier(pooled.pooled), pooled)

    def loss(self, output: ClassifierOutput, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        loss = F.cross_entropy(output.logits, batch["label_ids"], weight=self.class_weights)
        return loss if output.pooled.penalty is None else loss + output.pooled.penalty


Head = Union[TaggingHead, ClassificationHead]


class Network(nn.Module):
    """One body under one head: ``forward(batch)`` -> the head's outputs; ``loss(outputs, batch)``."""

    def __init__(self, body: Body, head: Head) -> None:
        super().__init__()
        self.body, self.head = body, head

    def forward(self, batch: Mapping[str, torch.Tensor]):
        return self.head(self.body(batch))

    def loss(self, outputs, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head.loss(outputs, batch)


class MultiTaskNetwork(nn.Module):
    """One body under several named heads: ``forward(batch, task)``, ``loss(outputs, batch, task)``. A task's
    loss reaches the body and its own head only."""

    def __init__(self, body: Body, heads: Mapping[str, Head]) -> None:
        super().__init__()
        self.body, self.heads = body, nn.ModuleDict(dict(heads))

    def forward(self, batch: Mapping[str, torch.Tensor], task: str):
        return self.heads[task](self.body(batch))

    def loss(self, outputs, batch: Mapping[str, torch.Tensor], task: str) -> torch.Tensor:
        return self.heads[task].loss(outputs, batch)


# ----------------------------------------------------------------------------- builders: sizes in, modules out
def build_body(vocab_size: int, padding_idx: int, word_embedding: Optional[Callable[[int, int], WordEmbedder]],
               encoder: Callable[[int], SequenceEncoder], embedding_dropout: DropoutSpec = 0.5,
               char_vocab_size: int = 0, char_encoder: Optional[Callable[[int, int], CharEncoder]] = None,
               transformer: Optional[TransformerWordEmbedding] = None,
               casing: Optional[Callable[[list[str], int], CasingEmbedding]] = None,
               characters: Optional[Sequence[str]] = None) -> Body:
    """``word_embedding(vocab_size, padding_idx)`` (or None with a ``transformer``), ``char_encoder(char_vocab_size,
    padding_idx)``, ``casing(characters, padding_idx)`` (``characters``: the character vocabulary in id order) and the
    transformer's word vectors side by side -> ``encoder(embedder.output_size)``."""
    words = word_embedding(vocab_size, padding_idx) if word_embedding is not None else None
    chars = char_encoder(char_vocab_size, padding_idx) if char_encoder is not None else None
    if casing is not None and not characters:
        raise SeqlabError("--model.casing reads each word's characters, and the data gives no character vocabulary")
    casing_embedding = casing(list(characters), padding_idx) if casing is not None else None
    embedder = TokenEmbedder(words, chars, embedding_dropout, transformer, casing_embedding)
    return Body(embedder, encoder(embedder.output_size))


def build_tagging_head(input_size: int, labels: Sequence[str], head: Callable[[int, list[str]], TaggerHead],
                       attention: Optional[Callable[[int], MultiHeadSelfAttention]] = None) -> TaggingHead:
    """``attention(input_size)`` (optional) and ``head(input_size, labels)``."""
    return TaggingHead(head(input_size, list(labels)), attention(input_size) if attention is not None else None)


def build_classification_head(input_size: int, labels: Sequence[str], pooling: Callable[[int], Pooling],
                              head: Callable[[int, list[str]], nn.Module],
                              class_weights: Optional[Sequence[float]] = None) -> ClassificationHead:
    """``pooling(input_size)``, then ``head(pooling.output_size, labels)``."""
    pool = pooling(input_size)
    return ClassificationHead(pool, head(pool.output_size, list(labels)), labels, class_weights)
