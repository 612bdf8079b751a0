"""CasingEmbedding: each word's casing class read from its char ids, against the reference ``casing_class`` (Reimers
& Gurevych's ``getCasing``) on every character and on random words; padding; gradients; the embedder around it."""

import random
import string

import pytest
import torch

from seqlab import SeqlabError
from seqlab.models import (BiLSTMEncoder, CASING_CLASSES, CasingEmbedding, CharBiLSTM, TokenEmbedder, WordEmbedding,
                           casing_class)
from seqlab.models.networks import build_body

SPECIALS = ["<pad>", "<unk>"]
#: characters of every kind: ASCII and accented letters, digits of several scripts, a title-case letter, symbols
POOL = list("aZbYéÉßΣσ0123456789٣²ǅǈªº-'.,&/ ") + ["\u0130", "\u2160", "\u24b6"]
VOCABULARY = SPECIALS + sorted(set(POOL) | set(string.ascii_letters))


def char_ids(words: list[list[str]], characters: list[str], width: int = 0) -> torch.Tensor:
    """Sentences of words -> (B, T, L) char ids over ``characters``, 0 = padding; unknown characters -> 1."""
    index = {c: i for i, c in enumerate(characters)}
    time = max(len(sentence) for sentence in words)
    length = max(width, max(len(word) for sentence in words for word in sentence))
    ids = torch.zeros(len(words), time, length, dtype=torch.int64)
    for b, sentence in enumerate(words):
        for t, word in enumerate(sentence):
            ids[b, t, :len(word)] = torch.tensor([index.get(c, 1) for c in word])
    return ids


def test_every_character_alone_is_classed_as_the_reference_classes_it():
    characters = SPECIALS + [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    classes = CasingEmbedding(characters).classes(torch.arange(2, len(characters)).view(-1, 1, 1)).view(-1)
    expected = torch.tensor([CASING_CLASSES.index(casing_class(c)) for c in characters[2:]])
    assert torch.equal(classes, expected)
    # one character is all of a word: a digit, a lower- or upper-case letter, or other (title case among them)
    assert {CASING_CLASSES[i] for i in expected.tolist()} == {"numeric", "all_lower", "all_upper", "other"}


def test_random_words_are_classed_as_the_reference_classes_them():
    rng = random.Random(0)
    characters = VOCABULARY
    sentences = [["".join(rng.choices(POOL, k=rng.randint(1, 9))) for _ in range(rng.randint(1, 12))]
                 for _ in range(300)]
    classes = CasingEmbedding(characters).classes(char_ids(sentences, characters))
    for b, sentence in enumerate(sentences):
        assert [CASING_CLASSES[i] for i in classes[b, :len(sentence)]] == [casing_class(w) for w in sentence]
        assert (classes[b, len(sentence):] == 0).all()  # padding positions
    found = {casing_class(w) for sentence in sentences for w in sentence}
    assert found == set(CASING_CLASSES[1:])


@pytest.mark.parametrize("word, expected", [
    ("EU", "all_upper"), ("German", "initial_upper"), ("call", "all_lower"), ("1996", "numeric"),
    ("1990s", "mainly_numeric"), ("3-0", "mainly_numeric"), ("F1", "all_upper"), ("mp3", "all_lower"),
    ("iPhone", "other"), ("-", "other"), ("x-1-y", "all_lower"), ("'s", "all_lower"), ("+1.5", "contains_digit"),
])
def test_familiar_words(word, expected):
    characters = SPECIALS + sorted(set(word))
    assert CASING_CLASSES[CasingEmbedding(characters).classes(char_ids([[word]], characters))[0, 0]] == expected
    assert casing_class(word) == expected


def test_a_character_outside_the_vocabulary_counts_as_uncased():
    """What the ids spell: ``Éa`` with ``É`` unknown reads as ``?a``."""
    characters = SPECIALS + list("a?")
    classes = CasingEmbedding(characters).classes(char_ids([["Éa", "?a"]], characters))
    assert CASING_CLASSES[classes[0, 0]] == casing_class("?a") == "all_lower" != casing_class("Éa")


def test_padding_changes_nothing_and_padding_positions_get_zeros():
    torch.manual_seed(0)
    characters = VOCABULARY
    casing = CasingEmbedding(characters, embedding_dim=5)
    sentences = [["EU", "rejects", "1996"], ["Peter"]]
    tight = casing(char_ids(sentences, characters))
    wide = casing(char_ids(sentences + [["a", "b", "c", "d", "e"]], characters, width=20))
    assert torch.equal(wide[:2, :3], tight)
    assert torch.equal(tight[1, 1:], torch.zeros(2, 5))


def test_only_the_classes_used_get_gradients_and_padding_never():
    characters = VOCABULARY
    casing = CasingEmbedding(characters, embedding_dim=3)
    casing(char_ids([["EU", "call", "ǅa"], ["1996"]], characters)).sum().backward()
    touched = {CASING_CLASSES[i] for i in casing.embedding.weight.grad.abs().sum(1).nonzero().view(-1).tolist()}
    assert touched == {"all_upper", "all_lower", "numeric", "other"}  # ǅa: title case is neither upper nor lower


def test_the_embedder_puts_casing_after_the_characters_and_needs_char_ids():
    torch.manual_seed(0)
    characters = VOCABULARY
    words, chars = WordEmbedding(10, 0, embedding_dim=4), CharBiLSTM(len(characters), 0, 3, 2)
    casing = CasingEmbedding(characters, embedding_dim=2)
    embedder = TokenEmbedder(words, chars, 0.0, casing=casing)
    ids = char_ids([["EU", "call"]], characters)
    token_ids, mask = torch.tensor([[2, 3]]), torch.tensor([[True, True]])
    features = embedder(token_ids, mask, ids)
    assert embedder.output_size == 4 + 4 + 2 == features.shape[-1]
    assert torch.equal(features, torch.cat([words(token_ids), chars(ids, mask), casing(ids)], dim=-1))
    with pytest.raises(ValueError, match="char_ids"):
        TokenEmbedder(words, None, 0.0, casing=casing)(token_ids, mask)


def test_a_bad_size_is_refused():
    with pytest.raises(ValueError, match="embedding_dim"):
        CasingEmbedding(SPECIALS, embedding_dim=0)


def test_a_body_with_casing_needs_the_character_vocabulary():
    with pytest.raises(SeqlabError, match="--model.casing reads each word's characters"):
        build_body(10, 0, WordEmbedding, BiLSTMEncoder, casing=CasingEmbedding, characters=None)
    body = build_body(10, 0, WordEmbedding, BiLSTMEncoder, casing=CasingEmbedding, characters=VOCABULARY)
    assert body.embedder.casing.output_size == 8 and body.embedder.reads_chars
