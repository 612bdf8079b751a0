"""TransformerWordEmbedding: pieces pooled into words (first, mean) against hand-worked examples, the scalar mix,
padding invariance and gradients, frozen (cached features) and fine-tuned (a small random BERT built from its config:
no files), and the fine-tuned transformer's own learning rate in the task's optimiser."""

from __future__ import annotations

import pytest
import torch

from seqlab.models import FirstPiecePooling, MeanPiecePooling, ScalarMix, TokenEmbedder, TransformerWordEmbedding
from seqlab.models.transformer_embeddings import pool_pieces, transformer_from_config

#: a small BERT: 3 layers, 4 hidden states with the embeddings
TINY_BERT = {"model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 3,
             "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 64}

# [CLS] w0 w0 w1 w2 w2 w2 [SEP] <pad>: words of 2, 1 and 3 pieces; specials and padding are -1
WORD_IDS = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, -1, -1]])
STATES = torch.arange(1.0, 10.0).view(1, 9, 1) * torch.tensor([1.0, 10.0])  # (1, 9, 2): piece p is (p+1, 10(p+1))


def test_first_piece_pooling_takes_each_words_first_piece():
    pooled = FirstPiecePooling()(STATES, WORD_IDS, 3)
    torch.testing.assert_close(pooled, torch.tensor([[[2.0, 20.0], [4.0, 40.0], [5.0, 50.0]]]))


def test_mean_piece_pooling_averages_each_words_pieces_without_the_specials():
    pooled = MeanPiecePooling()(STATES, WORD_IDS, 3)
    expected = torch.tensor([[[2.5, 25.0], [4.0, 40.0], [6.0, 60.0]]])  # (2+3)/2, 4, (5+6+7)/3
    torch.testing.assert_close(pooled, expected)


def test_a_word_without_pieces_gets_zeros_and_layers_pool_alike():
    states = torch.randn(2, 5, 3, 4)  # (B, P, N, H)
    word_ids = torch.tensor([[-1, 0, 1, 1, -1], [-1, 0, 0, -1, -1]])  # row 1: word 1 cut off
    pooled = pool_pieces(states, MeanPiecePooling().word_index(word_ids), 2)  # (B, T, N, H)
    torch.testing.assert_close(pooled[0, 1], (states[0, 2] + states[0, 3]) / 2)
    torch.testing.assert_close(pooled[1, 0], (states[1, 1] + states[1, 2]) / 2)
    assert torch.equal(pooled[1, 1], torch.zeros(3, 4))


def test_scalar_mix_with_one_hot_weights_is_that_layer_and_starts_as_the_mean():
    layers = torch.randn(2, 5, 4, 8)  # (B, T, N, H)
    mix = ScalarMix(4)
    torch.testing.assert_close(mix(layers), layers.mean(dim=2))
    with torch.no_grad():
        mix.weights.copy_(torch.tensor([-1e4, -1e4, 0.0, -1e4]))
        mix.gamma.fill_(1.0)
    assert torch.equal(mix(layers), layers[:, :, 2])


def test_frozen_features_train_only_the_mix():
    embedding = TransformerWordEmbedding(layers=3, hidden_size=8)
    features = torch.randn(2, 4, 3, 8)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    out = embedding({"word_features": features}, mask)
    assert torch.equal(out[1, 2:], torch.zeros(2, 8))
    out.pow(2).sum().backward()
    assert embedding.mix.weights.grad.abs().sum() > 0 and embedding.mix.gamma.grad.abs() > 0
    assert [name for name, _ in embedding.named_parameters()] == ["mix.weights", "mix.gamma"]


def fine_tuned(layers: int = 2) -> TransformerWordEmbedding:
    torch.manual_seed(0)
    return TransformerWordEmbedding.build({"layers": layers, "hidden_size": 16, "config": TINY_BERT}).eval()


def pieces_batch(padding: int = 0) -> dict:
    """Two sentences: [CLS] 5 6 | 7 [SEP] (words of 2 and 1 pieces) and [CLS] 8 | 9 9 | 10 [SEP]; ``padding`` extra
    padding pieces on each row."""
    rows = [([1, 5, 6, 7, 2], [-1, 0, 0, 1, -1]), ([1, 8, 9, 9, 10, 2], [-1, 0, 1, 1, 2, -1])]
    longest = 6 + padding
    piece_ids = torch.zeros(2, longest, dtype=torch.long)
    word_ids = torch.full((2, longest), -1)
    for row, (ids, words) in enumerate(rows):
        piece_ids[row, : len(ids)], word_ids[row, : len(words)] = torch.tensor(ids), torch.tensor(words)
    return {"piece_ids": piece_ids, "piece_mask": piece_ids != 0, "word_index": MeanPiecePooling().word_index(word_ids)}


def test_fine_tuned_embedding_is_the_mix_of_the_pooled_hidden_states():
    embedding = fine_tuned(layers=2)
    batch = pieces_batch()
    mask = torch.tensor([[True, True, False], [True, True, True]])
    with torch.no_grad():
        out = embedding(batch, mask)  # (B, T, H)
        hidden = embedding.transformer(input_ids=batch["piece_ids"], attention_mask=batch["piece_mask"].long(),
                                       output_hidden_states=True).hidden_states  # 4 x (B, P, H)
    last_two = (hidden[-2] + hidden[-1]) / 2  # the mix starts equally weighted, gamma 1
    torch.testing.assert_close(out[0, 0], last_two[0, 1:3].mean(0))  # word 0 of row 0: pieces 1 and 2
    torch.testing.assert_close(out[1, 1], last_two[1, 2:4].mean(0))  # word 1 of row 1: pieces 2 and 3
    torch.testing.assert_close(out[1, 2], last_two[1, 4])
    assert torch.equal(out[0, 2], torch.zeros(16))


def test_fine_tuned_embedding_is_padding_invariant():
    embedding = fine_tuned()
    mask = torch.tensor([[True, True, False], [True, True, True]])
    wide_mask = torch.cat([mask, torch.zeros(2, 4, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        plain = embedding(pieces_batch(), mask)
        padded = embedding(pieces_batch(padding=7), wide_mask)
    torch.testing.assert_close(padded[:, :3], plain, atol=1e-5, rtol=1e-5)
    assert torch.equal(padded[:, 3:], torch.zeros(2, 4, 16))


def test_fine_tuned_gradients_reach_every_transformer_parameter_and_the_mix():
    embedding = fine_tuned().train()
    out = embedding(pieces_batch(), torch.ones(2, 3, dtype=torch.bool))
    out.pow(2).sum().backward()
    missing = [name for name, p in embedding.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    assert getattr(embedding.transformer, "pooler", None) is None  # the [CLS] head, which no word uses, is gone


def test_build_loads_the_given_weights():
    torch.manual_seed(1)
    source = transformer_from_config(TINY_BERT)
    built = TransformerWordEmbedding.build({"layers": 2, "hidden_size": 16, "config": TINY_BERT}, source.state_dict())
    for name, tensor in source.state_dict().items():
        assert torch.equal(built.transformer.state_dict()[name], tensor), name


def test_token_embedder_concatenates_words_chars_and_transformer():
    from seqlab.models import CharCNN, WordEmbedding

    embedder = TokenEmbedder(WordEmbedding(10, embedding_dim=4), CharCNN(6, filters=3), 0.0,
                             TransformerWordEmbedding(layers=2, hidden_size=5))
    features = torch.randn(1, 2, 2, 5)
    out = embedder(torch.tensor([[3, 4]]), torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 2, 3, dtype=torch.long),
                   {"word_features": features})
    assert embedder.output_size == 12
    torch.testing.assert_close(out[..., 7:], features.mean(dim=2))
    torch.testing.assert_close(out[..., :4], embedder.words(torch.tensor([[3, 4]])))
    alone = TokenEmbedder(None, None, 0.0, TransformerWordEmbedding(layers=2, hidden_size=5))
    torch.testing.assert_close(alone(torch.tensor([[3, 4]]), torch.ones(1, 2, dtype=torch.bool), None,
                                     {"word_features": features}), features.mean(dim=2))
    with pytest.raises(ValueError, match="word_features"):
        alone(torch.tensor([[3, 4]]), torch.ones(1, 2, dtype=torch.bool))


def test_the_fine_tuned_transformer_has_its_own_learning_rate():
    from seqlab.tasks import TokenTagging

    task = TokenTagging(vocab_size=20, labels=["O", "B-PER", "I-PER"], word_embedding=None,
                        transformer_spec={"layers": 2, "hidden_size": 16, "config": TINY_BERT}, transformer_lr=1e-5,
                        optimizer=lambda groups: torch.optim.SGD(groups, lr=0.1))
    optimizer = task.configure_optimizers()
    rest, tuned = optimizer.param_groups
    transformer = list(task.model.body.embedder.transformer.transformer.parameters())
    assert tuned["lr"] == 1e-5 and rest["lr"] == 0.1
    assert {id(p) for p in tuned["params"]} == {id(p) for p in transformer}
    assert {id(p) for p in rest["params"]} == {id(p) for p in task.parameters()} - {id(p) for p in transformer}
    frozen = TokenTagging(vocab_size=20, labels=["O", "B-PER", "I-PER"],
                          transformer_spec={"layers": 2, "hidden_size": 16})
    assert len(frozen.configure_optimizers().param_groups) == 1
