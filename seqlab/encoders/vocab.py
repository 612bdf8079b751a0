"""Token vocabularies fitted on training data; serialisable into checkpoints."""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Optional, Sequence

_DIGITS = re.compile(r"\d")


class Vocabulary:
    """Maps tokens to ids. Specials come first: with ``specials=("<pad>", "<unk>")``, PAD = 0 and UNK = 1.

    ``lowercase`` and ``normalize_digits`` (every digit to ``0``) apply to lookups and to fitting alike.
    A vocabulary without an UNK special (a label set) raises KeyError on unknown tokens.
    """

    PAD = "<pad>"
    UNK = "<unk>"

    def __init__(
        self,
        tokens: Sequence[str],
        specials: Sequence[str] = (PAD, UNK),
        lowercase: bool = False,
        normalize_digits: bool = False,
    ) -> None:
        self.specials = list(specials)
        self.lowercase = lowercase
        self.normalize_digits = normalize_digits
        self.itos: list[str] = list(self.specials) + [t for t in tokens if t not in self.specials]
        self.stoi: dict[str, int] = {token: index for index, token in enumerate(self.itos)}
        self.unk_index: Optional[int] = self.stoi.get(self.UNK)
        self.pad_index: Optional[int] = self.stoi.get(self.PAD)

    @classmethod
    def fit(
        cls,
        sequences: Iterable[Iterable[str]],
        min_freq: int = 1,
        max_size: Optional[int] = None,
        specials: Sequence[str] = (PAD, UNK),
        lowercase: bool = False,
        normalize_digits: bool = False,
    ) -> "Vocabulary":
        """Most frequent first, ties in first-seen order (deterministic)."""
        probe = cls([], specials, lowercase, normalize_digits)
        counts: Counter[str] = Counter()
        for sequence in sequences:
            counts.update(probe.normalize(token) for token in sequence)
        kept = [t for t, c in sorted(counts.items(), key=lambda item: -item[1]) if c >= min_freq]
        if max_size is not None:
            kept = kept[:max_size]
        return cls(kept, specials, lowercase, normalize_digits)

    def normalize(self, token: str) -> str:
        if self.lowercase:
            token = token.lower()
        if self.normalize_digits:
            token = _DIGITS.sub("0", token)
        return token

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return self.normalize(token) in self.stoi

    def index(self, token: str) -> int:
        token = self.normalize(token)
        if self.unk_index is None:
            return self.stoi[token]
        return self.stoi.get(token, self.unk_index)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.index(t) for t in tokens]

    def add(self, token: str) -> int:
        """The id of ``token`` (normalised), appended after the others when new."""
        token = self.normalize(token)
        if token not in self.stoi:
            self.stoi[token] = len(self.itos)
            self.itos.append(token)
        return self.stoi[token]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    def state_dict(self) -> dict:
        return {
            "itos": list(self.itos),
            "specials": list(self.specials),
            "lowercase": self.lowercase,
            "normalize_digits": self.normalize_digits,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> "Vocabulary":
        specials = state["specials"]
        return cls(state["itos"][len(specials):], specials, state["lowercase"], state["normalize_digits"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.state_dict() == other.state_dict()

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, specials={self.specials})"
