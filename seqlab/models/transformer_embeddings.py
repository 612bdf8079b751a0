"""Word vectors from a ``transformers`` encoder: sub-word pieces pooled into words, and a learned scalar mix of the last
N layers (Peters et al. 2018; Flair's ``TransformerWordEmbeddings``). Frozen, the per-word features of those layers are
computed once by the data module (``seqlab.encoders.transformer``, with the functions below); fine-tuned, the model
runs the transformer itself. Never opens a file: a fine-tuned transformer is built from its config and receives its
weights (from the data module, through a link, or from the checkpoint)."""

from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import nn


def pool_pieces(states: torch.Tensor, word_index: torch.Tensor, num_words: int) -> torch.Tensor:
    """The mean of each word's pieces: states (B, P, ...) and word_index (B, P), the word each piece counts for
    (-1: none, for special tokens, padding and pieces the pooling skips) -> (B, num_words, ...). A word without a
    piece (cut off by the transformer's length limit) gets zeros."""
    batch, pieces = word_index.shape
    flat = states.reshape(batch, pieces, -1)  # (B, P, F)
    slot = (word_index + 1).clamp(min=0)  # (B, P): 0 collects what no word takes
    sums = flat.new_zeros(batch, num_words + 1, flat.shape[2])
    sums = sums.scatter_add(1, slot.unsqueeze(2).expand_as(flat), flat)  # (B, 1 + T, F)
    counts = flat.new_zeros(batch, num_words + 1).scatter_add(1, slot, flat.new_ones(batch, pieces))  # (B, 1 + T)
    pooled = sums[:, 1:] / counts[:, 1:].clamp(min=1).unsqueeze(2)  # (B, T, F)
    return pooled.reshape(batch, num_words, *states.shape[2:])


class PiecePooling:
    """How a word's vector comes from its pieces: ``word_index(word_ids)`` says which pieces count for which word
    (word_ids (B, P): each piece's word, -1 for special tokens and padding, a word's pieces side by side, as a
    tokenizer's word ids are), and the word is their mean (``pool_pieces``)."""

    def word_index(self, word_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, states: torch.Tensor, word_ids: torch.Tensor, num_words: int) -> torch.Tensor:
        """states (B, P, ...) -> words (B, num_words, ...)."""
        return pool_pieces(states, self.word_index(word_ids), num_words)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class FirstPiecePooling(PiecePooling):
    """A word is its first piece (as BERT tags words, Devlin et al. 2019)."""

    def word_index(self, word_ids: torch.Tensor) -> torch.Tensor:
        previous = torch.cat([word_ids.new_full((word_ids.shape[0], 1), -1), word_ids[:, :-1]], dim=1)  # (B, P)
        first = (word_ids >= 0) & (word_ids != previous)
        return torch.where(first, word_ids, torch.full_like(word_ids, -1))


class MeanPiecePooling(PiecePooling):
    """A word is the mean of all its pieces."""

    def word_index(self, word_ids: torch.Tensor) -> torch.Tensor:
        return word_ids.clamp(min=-1)


def layer_states(transformer: nn.Module, piece_ids: torch.Tensor, piece_mask: torch.Tensor, layers: int
                 ) -> torch.Tensor:
    """The last ``layers`` hidden states of a transformers encoder: piece_ids (B, P), piece_mask (B, P) bool
    -> (B, P, N, H), oldest layer first."""
    output = transformer(input_ids=piece_ids, attention_mask=piece_mask.long(), output_hidden_states=True)
    return torch.stack(output.hidden_states[-layers:], dim=2)  # (B, P, N, H)


def transformer_from_config(config: dict) -> nn.Module:
    """A transformers encoder (``AutoModel``) built from its config dict, randomly initialised, without the pooler
    (the [CLS] head that word features never use, whose parameters would get no gradient)."""
    from seqlab.torchaudio_compat import import_torchaudio

    import_torchaudio()  # transformers imports torchaudio; where its C++ extension cannot load, seqlab's way
    from transformers import AutoConfig, AutoModel

    module = AutoModel.from_config(AutoConfig.for_model(**config))
    if getattr(module, "pooler", None) is not None:
        module.pooler = None
    return module


class ScalarMix(nn.Module):
    """A learned mix of N layers: (..., N, H) -> (..., H), ``gamma * sum_n softmax(w)_n h_n`` (ELMo's scalar mix;
    w starts at 0, so the layers start equally weighted, gamma at 1)."""

    def __init__(self, layers: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(layers))
        self.gamma = nn.Parameter(torch.ones(()))

    def forward(self, layers: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.einsum("...nh,n->...h", layers, self.weights.softmax(0))


class TransformerWordEmbedding(nn.Module):
    """Word vectors (B, T, H) from a transformers encoder's last ``layers`` layers, mixed by a ``ScalarMix``.

    Frozen (no ``transformer``): ``forward(inputs, mask)`` reads ``inputs["word_features"]`` (B, T, N, H), computed
    and cached by the data module; only the mix is learnt. Fine-tuned (``transformer``, a transformers model): it
    runs the transformer on ``piece_ids`` (B, P) with ``piece_mask`` (B, P) and pools the pieces into words through
    ``word_index`` (B, P) (see ``pool_pieces``); the transformer is trained too (the task gives its parameters their
    own learning rate). ``build`` makes one from the data module's linked description.
    """

    def __init__(self, layers: int, hidden_size: int, transformer: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.layers = layers
        self.output_size = hidden_size
        self.mix = ScalarMix(layers)
        self.transformer = transformer

    @classmethod
    def build(cls, description: Mapping, weights: Optional[Mapping[str, torch.Tensor]] = None
              ) -> "TransformerWordEmbedding":
        """From a data module's ``transformer_spec``: ``layers``, ``hidden_size`` and, to fine-tune, ``config`` (the
        transformer's config dict), with the pretrained ``weights`` (a state dict; none when a checkpoint's weights
        follow)."""
        transformer = None
        if description.get("config") is not None:
            transformer = transformer_from_config(dict(description["config"]))
            if weights is not None:
                transformer.load_state_dict(dict(weights))
        return cls(int(description["layers"]), int(description["hidden_size"]), transformer)

    def word_features(self, inputs: Mapping[str, torch.Tensor], num_words: int) -> torch.Tensor:
        """(B, T, N, H): cached (frozen) or computed by the transformer (fine-tuned)."""
        if self.transformer is None:
            if "word_features" not in inputs:
                raise ValueError("this embedding mixes frozen transformer features but the batch has no word_features")
            return inputs["word_features"]
        if "piece_ids" not in inputs:
            raise ValueError("this embedding fine-tunes a transformer but the batch has no piece_ids")
        states = layer_states(self.transformer, inputs["piece_ids"], inputs["piece_mask"], self.layers)  # (B, P, N, H)
        return pool_pieces(states, inputs["word_index"], num_words)

    def forward(self, inputs: Mapping[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """inputs: the batch (its transformer keys); mask (B, T) -> (B, T, H), 0 on padding."""
        mixed = self.mix(self.word_features(inputs, mask.shape[1]))  # (B, T, H)
        return mixed.masked_fill(~mask.unsqueeze(2), 0.0)
