"""Word embeddings from pretrained vectors, character encoders."""

import pytest
import torch

from seqlab.models import CharBiLSTM, CharCNN, PretrainedWordEmbedding, TokenEmbedder, WordEmbedding


def test_load_vectors_copies_the_rows_and_keeps_freeze():
    weight = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]])  # (V, D), padding row 0
    embedding = PretrainedWordEmbedding(3, 0, embedding_dim=2, freeze=True)
    assert embedding.load_vectors(weight) == 3
    assert torch.equal(embedding.embedding.weight, weight)
    assert not embedding.embedding.weight.requires_grad
    weight[1, 0] = 9.0  # a copy, not the caller's tensor
    assert embedding.embedding.weight[1, 0] == 1.0
    assert PretrainedWordEmbedding(3).output_size == 50  # GloVe 6B 50d


def test_load_vectors_checks_the_shape():
    embedding = PretrainedWordEmbedding(3, 0)
    with pytest.raises(ValueError, match=r"shape \(3, 300\).*embedding_dim 50"):
        embedding.load_vectors(torch.zeros(3, 300))
    with pytest.raises(ValueError, match="for 4 words, the word embedding has 3 rows"):
        embedding.load_vectors(torch.zeros(4, 50))


def test_a_random_embedding_takes_no_vectors():
    embedding = WordEmbedding(3, 0, embedding_dim=2)
    before = embedding.embedding.weight.clone()
    assert embedding.load_vectors(torch.ones(3, 2)) == 0
    assert torch.equal(embedding.embedding.weight, before)


def test_word_dropout_only_in_training_and_never_on_padding():
    torch.manual_seed(0)
    embedding = WordEmbedding(10, 0, embedding_dim=4, word_dropout=1.0, unk_index=1)
    ids = torch.tensor([[5, 6, 0]])
    embedding.train()
    torch.testing.assert_close(embedding(ids)[0, :2], embedding.embedding.weight[[1, 1]])
    torch.testing.assert_close(embedding(ids)[0, 2], embedding.embedding.weight[0])
    embedding.eval()
    torch.testing.assert_close(embedding(ids)[0, 0], embedding.embedding.weight[5])


def substituting_embedding(probability: float) -> tuple[PretrainedWordEmbedding, torch.Tensor]:
    """An embedding whose rows moved away from the pretrained rows it loaded, as fine-tuning moves them."""
    torch.manual_seed(0)
    embedding = PretrainedWordEmbedding(6, 0, embedding_dim=3, pretrained_substitution=probability)
    pretrained = torch.randn(6, 3)
    embedding.load_vectors(pretrained)
    with torch.no_grad():
        embedding.embedding.weight.add_(10.0)
    return embedding, pretrained


def test_pretrained_substitution_embeds_tokens_by_their_loaded_rows_only_in_training():
    embedding, pretrained = substituting_embedding(0.3)
    ids = torch.randint(1, 6, (200, 50))
    ids[:, 40:] = 0  # padding
    embedding.train()
    vectors = embedding(ids)  # (B, T, D)
    swapped = (vectors == pretrained[ids]).all(-1)
    trained = (vectors == embedding.embedding.weight[ids]).all(-1)
    assert torch.equal(swapped ^ trained, torch.ones_like(swapped))  # each token one row or the other
    assert not swapped[:, 40:].any()  # padding keeps the padding row
    fraction = swapped[:, :40].float().mean().item()
    assert abs(fraction - 0.3) < 0.02, fraction  # 8,000 tokens: 4.9 standard deviations
    vectors.sum().backward()
    counts = torch.bincount(ids[~swapped], minlength=6).float()
    counts[0] = 0  # the padding row gets none either
    torch.testing.assert_close(embedding.embedding.weight.grad, counts.unsqueeze(1).expand(6, 3))  # swapped: none
    embedding.eval()
    torch.testing.assert_close(embedding(ids), embedding.embedding.weight[ids])


def test_pretrained_substitution_with_word_dropout_swaps_the_unknown_row():
    embedding, pretrained = substituting_embedding(0.99)
    embedding.word_dropout, embedding.unk_index = 0.99, 1
    vectors = embedding.train()(torch.full((4, 100), 3))
    is_pretrained_unk = (vectors == pretrained[1]).all(-1)
    assert is_pretrained_unk.float().mean() > 0.95


def test_pretrained_substitution_mistakes_and_checkpoints():
    with pytest.raises(ValueError, match=r"pretrained_substitution must be in \[0, 1\), got 1.0"):
        PretrainedWordEmbedding(6, 0, pretrained_substitution=1.0)
    without_vectors = PretrainedWordEmbedding(6, 0, pretrained_substitution=0.1).train()
    with pytest.raises(ValueError, match=r"needs the pretrained vectors \(--data.vectors\)"):
        without_vectors(torch.tensor([[1, 2]]))
    embedding, _ = substituting_embedding(0.1)
    assert set(embedding.state_dict()) == {"embedding.weight"}  # checkpoints as without the option
    plain, _ = substituting_embedding(0.0)
    assert plain.pretrained.numel() == 0  # no copy of the rows without the option


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


def test_stacked_word_embedding_concatenates_members_and_shares_word_dropout():
    from functools import partial

    from seqlab.models import PretrainedWordEmbedding, StackedWordEmbedding, WordEmbedding

    vectors = torch.tensor([[0, 0, 0], [0, 1, 0], [1, 2, 3], [4, 5, 6], [0, 0, 1], [1, 2, 3]], dtype=torch.float)
    torch.manual_seed(0)
    stacked = StackedWordEmbedding(
        6, padding_idx=0, word_dropout=0.5,
        embeddings=[partial(PretrainedWordEmbedding, embedding_dim=3), partial(WordEmbedding, embedding_dim=4)],
    )
    assert stacked.output_size == 3 + 4
    random_rows = stacked.members[1].embedding.weight.clone()
    assert stacked.load_vectors(vectors) == 6  # every row of the pretrained member
    assert torch.equal(stacked.members[0].embedding.weight, vectors)
    assert torch.equal(stacked.members[1].embedding.weight, random_rows)  # the random member keeps its own
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
