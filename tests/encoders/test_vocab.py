"""Vocabulary: fitting order, caps, specials, normalisation, encode/decode and checkpoint round trips."""

import pickle

import pytest

from seqlab.encoders import Vocabulary

CORPUS = [
    ["b", "a", "c", "a"],
    ["c", "d", "a", "e"],
    ["e", "f", "c"],
]
# counts: a=3, c=3, e=2, b=1, d=1, f=1; first seen: b, a, c, d, e, f


def test_specials_come_first_pad_0_unk_1():
    vocab = Vocabulary.fit(CORPUS)
    assert vocab.itos[:2] == [Vocabulary.PAD, Vocabulary.UNK]
    assert vocab.pad_index == 0 and vocab.index(Vocabulary.PAD) == 0
    assert vocab.unk_index == 1 and vocab.index(Vocabulary.UNK) == 1


def test_fit_orders_by_frequency_then_first_seen():
    vocab = Vocabulary.fit(CORPUS)
    # a and c tie at 3 (a seen first), e has 2, then b, d, f tie at 1 in first-seen order
    assert vocab.itos == ["<pad>", "<unk>", "a", "c", "e", "b", "d", "f"]
    assert [vocab.index(t) for t in "acebdf"] == [2, 3, 4, 5, 6, 7]
    assert len(vocab) == 8


def test_fit_ties_are_deterministic_and_follow_first_occurrence():
    # Same multiset of tokens in a different order: the tie is broken by first occurrence, not by hash or alphabet.
    forward = Vocabulary.fit([["y", "x", "z"], ["z", "x", "y"]])
    backward = Vocabulary.fit([["z", "x", "y"], ["y", "x", "z"]])
    assert forward.itos[2:] == ["y", "x", "z"]
    assert backward.itos[2:] == ["z", "x", "y"]
    # and fitting twice gives the same vocabulary
    assert Vocabulary.fit(CORPUS) == Vocabulary.fit(CORPUS)


def test_fit_accepts_a_one_shot_generator():
    vocab = Vocabulary.fit(iter([iter(s) for s in CORPUS]))
    assert vocab.itos[2:] == ["a", "c", "e", "b", "d", "f"]


def test_min_freq_drops_rare_tokens_to_unk():
    vocab = Vocabulary.fit(CORPUS, min_freq=2)
    assert vocab.itos == ["<pad>", "<unk>", "a", "c", "e"]
    assert vocab.index("b") == vocab.unk_index == 1
    assert "b" not in vocab and "e" in vocab


def test_max_size_keeps_the_most_frequent_and_does_not_count_specials():
    vocab = Vocabulary.fit(CORPUS, max_size=3)
    assert vocab.itos == ["<pad>", "<unk>", "a", "c", "e"]
    assert len(vocab) == 3 + 2
    both = Vocabulary.fit(CORPUS, min_freq=3, max_size=10)
    assert both.itos[2:] == ["a", "c"]


def test_lowercase_applies_to_fit_and_lookup():
    vocab = Vocabulary.fit([["The", "the", "THE", "Cat"]], lowercase=True)
    assert vocab.itos[2:] == ["the", "cat"]  # one entry, counted 3 times
    assert vocab.index("tHe") == vocab.index("the") == 2
    assert vocab.index("CAT") == 3
    assert "THE" in vocab
    assert vocab.encode(["CaT", "dog"]) == [3, vocab.unk_index]


def test_without_lowercase_case_matters():
    vocab = Vocabulary.fit([["The", "the"]])
    assert vocab.index("The") != vocab.index("the")
    assert vocab.index("THE") == vocab.unk_index


def test_normalize_digits_applies_to_fit_and_lookup():
    vocab = Vocabulary.fit([["1996", "2024", "x7", "word"]], normalize_digits=True)
    assert vocab.itos[2:] == ["0000", "x0", "word"]
    assert vocab.index("1234") == vocab.index("0000") == 2
    assert vocab.index("x9") == 3
    assert vocab.index("12345") == vocab.unk_index  # different length, different shape
    assert vocab.index("word") == 4


def test_lowercase_and_digits_together():
    vocab = Vocabulary.fit([["A1", "a2"]], lowercase=True, normalize_digits=True)
    assert vocab.itos[2:] == ["a0"]
    assert vocab.index("A9") == 2


def test_encode_decode_round_trip_and_unknowns():
    vocab = Vocabulary.fit(CORPUS)
    ids = vocab.encode(["a", "f", "zzz", "c"])
    assert ids == [2, 7, 1, 3]
    assert vocab.decode(ids) == ["a", "f", "<unk>", "c"]
    assert vocab.decode(vocab.encode(["e", "b", "d"])) == ["e", "b", "d"]
    assert vocab.encode([]) == []


def test_label_vocabulary_without_unk_raises_on_unknown():
    labels = Vocabulary(["O", "B-PER", "I-PER"], specials=())
    assert labels.itos == ["O", "B-PER", "I-PER"]
    assert labels.unk_index is None and labels.pad_index is None
    assert labels.encode(["B-PER", "O", "I-PER"]) == [1, 0, 2]
    with pytest.raises(KeyError):
        labels.index("B-LOC")
    with pytest.raises(KeyError):
        labels.encode(["O", "B-LOC"])


def test_constructor_drops_tokens_that_repeat_a_special():
    vocab = Vocabulary(["<pad>", "a", "<unk>", "b"])
    assert vocab.itos == ["<pad>", "<unk>", "a", "b"]


@pytest.mark.parametrize(
    "vocab",
    [
        Vocabulary.fit(CORPUS, min_freq=1),
        Vocabulary.fit([["A1", "b"]], lowercase=True, normalize_digits=True),
        Vocabulary(["O", "B-PER", "I-PER"], specials=()),
    ],
    ids=["words", "normalized", "labels"],
)
def test_state_dict_round_trip(vocab):
    state = vocab.state_dict()
    # a checkpoint stores it; it must survive pickling (torch.save) unchanged
    restored = Vocabulary.from_state_dict(pickle.loads(pickle.dumps(state)))
    assert restored == vocab
    assert restored.itos == vocab.itos
    assert restored.stoi == vocab.stoi
    assert restored.specials == vocab.specials
    assert restored.unk_index == vocab.unk_index and restored.pad_index == vocab.pad_index
    assert restored.lowercase == vocab.lowercase and restored.normalize_digits == vocab.normalize_digits
    probe = ["A1", "a", "b", "zzz"] if vocab.unk_index is not None else ["O", "I-PER"]
    assert restored.encode(probe) == vocab.encode(probe)


def test_equality_sees_differences():
    assert Vocabulary.fit(CORPUS) != Vocabulary.fit(CORPUS, max_size=2)
    assert Vocabulary.fit(CORPUS) != Vocabulary.fit(CORPUS, lowercase=True)
    assert Vocabulary.fit(CORPUS) != "not a vocabulary"
