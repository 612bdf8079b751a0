"""A word's casing class as a trained vector (Collobert et al. 2011; Chiu & Nichols 2016; Reimers & Gurevych 2017),
read from the word's character ids: no input beyond what a character encoder already gets."""

from __future__ import annotations

from enum import IntEnum
from typing import Sequence

import torch
from torch import nn

#: the classes in id order; 0 is padding, the rest in the order ``casing_class`` tests them
CASING_CLASSES = ("padding", "numeric", "mainly_numeric", "all_lower", "all_upper", "initial_upper",
                  "contains_digit", "other")


def casing_class(word: str) -> str:
    """The reference, Reimers & Gurevych's ``getCasing``: the first that holds of numeric (all digits), mainly numeric
    (more than half digits), all lower-case, all upper-case, initial upper-case, contains a digit; else other."""
    if not word:
        return "padding"
    digits = sum(character.isdigit() for character in word)
    if word.isdigit():
        return "numeric"
    if digits / len(word) > 0.5:
        return "mainly_numeric"
    if word.islower():
        return "all_lower"
    if word.isupper():
        return "all_upper"
    if word[0].isupper():
        return "initial_upper"
    return "contains_digit" if digits else "other"


class CharacterKind(IntEnum):
    """What ``casing_class`` needs to know of one character. ``str.islower`` of a word: no upper- or title-case
    character and at least one lower-case one; ``str.isupper`` the same with upper and lower swapped."""

    UNCASED = 0
    DIGIT = 1
    LOWER = 2
    UPPER = 3
    TITLE = 4  # cased, but neither upper nor lower case (``ǅ``)


def character_kind(character: str) -> CharacterKind:
    """A vocabulary entry's kind; entries that are not one character (``<pad>``, ``<unk>``) are uncased."""
    if len(character) != 1:
        return CharacterKind.UNCASED
    if character.isdigit():
        return CharacterKind.DIGIT
    if character.isupper():
        return CharacterKind.UPPER
    if character.islower():
        return CharacterKind.LOWER
    return CharacterKind.TITLE if character.istitle() else CharacterKind.UNCASED


class CasingEmbedding(nn.Module):
    """char ids (B, T, L) (``padding_idx`` = padding) -> (B, T, embedding_dim): each word's ``casing_class`` as a
    trained vector; padding positions (words without characters) get zeros. ``characters``: the character vocabulary
    in id order (linked from the data module). It equals ``casing_class`` of the word as the ids spell it, so a
    character outside the vocabulary counts as uncased and only the first ``max_word_length`` characters count."""

    def __init__(self, characters: Sequence[str], padding_idx: int = 0, embedding_dim: int = 8) -> None:
        super().__init__()
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be at least 1, got {embedding_dim}")
        kinds = torch.tensor([int(character_kind(c)) for c in characters], dtype=torch.int64)
        self.register_buffer("kinds", kinds.index_fill(0, torch.tensor([padding_idx]), -1), persistent=False)
        self.embedding = nn.Embedding(len(CASING_CLASSES), embedding_dim, padding_idx=0)
        self.output_size = embedding_dim

    def classes(self, chars: torch.Tensor) -> torch.Tensor:
        """(B, T, L) char ids -> (B, T) ids into ``CASING_CLASSES``."""
        kinds = self.kinds[chars]  # (B, T, L), -1 on padding
        count = lambda kind: (kinds == kind).sum(-1)  # noqa: E731
        length, digits = (kinds >= 0).sum(-1), count(CharacterKind.DIGIT)
        lower, upper, title = count(CharacterKind.LOWER), count(CharacterKind.UPPER), count(CharacterKind.TITLE)
        tests = torch.stack([
            length == 0,
            digits == length,
            2 * digits > length,
            (lower > 0) & (upper == 0) & (title == 0),
            (upper > 0) & (lower == 0) & (title == 0),
            kinds[..., 0] == CharacterKind.UPPER,
            digits > 0,
            torch.ones_like(length, dtype=torch.bool),
        ], dim=-1)  # (B, T, 8), in CASING_CLASSES order
        return tests.to(torch.uint8).argmax(-1)  # the first test that holds

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.classes(chars))  # (B, T, D)
