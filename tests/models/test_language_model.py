"""BidirectionalLanguageModel: its loss against a per-word loop, padding invariance, the rare-word class, and the
encoders' ``causal_halves`` (the forward half never sees the next word, the backward half never the previous)."""

from functools import partial

import pytest
import torch

from seqlab import SeqlabError
from seqlab.models import BiGRUEncoder, BiLSTMEncoder, BidirectionalLanguageModel, LSTMCell, RecurrentEncoder

LENGTHS = [5, 1, 3, 4]


def batch(generator, vocab=40, half=6, time=5):
    lengths = torch.tensor(LENGTHS)
    mask = torch.arange(time).unsqueeze(0) < lengths.unsqueeze(1)
    token_ids = torch.randint(2, vocab, (len(LENGTHS), time), generator=generator) * mask
    states = torch.randn(len(LENGTHS), time, 2 * half, generator=generator) * mask.unsqueeze(2)
    return states, token_ids, mask


def looped_loss(model, states, token_ids, mask):
    """Word by word with plain ops: the forward half at t scores word t + 1, the backward half at t word t - 1."""
    half = states.shape[2] // 2
    total = torch.zeros(())
    for row, length in enumerate(mask.sum(1).tolist()):
        for t in range(length):
            for layer, source, neighbour in ((model.next_word, states[row, t, :half], t + 1),
                                             (model.previous_word, states[row, t, half:], t - 1)):
                if 0 <= neighbour < length:
                    word = int(token_ids[row, neighbour])
                    target = word if word < model.classes else model.unk_index
                    total = total - torch.log_softmax(layer(source), dim=-1)[target]
    return model.weight * total / mask.shape[0]


def test_loss_equals_the_per_word_loop_and_so_do_its_gradients():
    torch.manual_seed(0)
    model = BidirectionalLanguageModel(12, vocab_size=40, hidden_size=7, max_words=25, weight=0.3)
    states, token_ids, mask = batch(torch.Generator().manual_seed(1))
    assert bool((token_ids[mask] >= 25).any())  # rare words take the UNK class
    states.requires_grad_(True)
    loss = model.loss(states, token_ids, mask)
    (grad,) = torch.autograd.grad(loss, states)
    reference = looped_loss(model, states, token_ids, mask)
    (reference_grad,) = torch.autograd.grad(reference, states)
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(grad, reference_grad)
    assert float(grad[1].abs().sum()) == 0.0  # a one-word sentence has no neighbour to predict


def test_extra_padding_changes_nothing():
    torch.manual_seed(0)
    model = BidirectionalLanguageModel(12, vocab_size=40, max_words=30)
    states, token_ids, mask = batch(torch.Generator().manual_seed(2))
    padded = (torch.cat([states, torch.randn(4, 3, 12)], 1), torch.cat([token_ids, torch.full((4, 3), 9)], 1),
              torch.cat([mask, torch.zeros(4, 3, dtype=torch.bool)], 1))
    torch.testing.assert_close(model.loss(*padded), model.loss(states, token_ids, mask))


def test_rare_words_become_the_unk_class_and_the_softmax_is_never_wider_than_the_vocabulary():
    model = BidirectionalLanguageModel(4, vocab_size=10, max_words=6)
    assert model.targets(torch.tensor([0, 1, 5, 6, 9])).tolist() == [0, 1, 5, 1, 1]
    assert BidirectionalLanguageModel(4, vocab_size=10, max_words=7500).classes == 10


@pytest.mark.parametrize("kwargs", [dict(input_size=5), dict(weight=0.0), dict(unk_index=12)])
def test_bad_settings_are_one_line_errors(kwargs):
    with pytest.raises(SeqlabError):
        BidirectionalLanguageModel(**{"input_size": 4, "vocab_size": 10, **kwargs})


ENCODERS = {
    "bilstm": partial(BiLSTMEncoder, hidden_size=5),
    "bigru": partial(BiGRUEncoder, hidden_size=5),
    "recurrent-lstm": partial(RecurrentEncoder, hidden_size=5, cell=LSTMCell),
    "bilstm-2layer": partial(BiLSTMEncoder, hidden_size=5, num_layers=2),
    "recurrent-2layer": partial(RecurrentEncoder, hidden_size=5, num_layers=2),
    "recurrent-forward-only": partial(RecurrentEncoder, hidden_size=5, bidirectional=False),
}


@pytest.mark.parametrize("name", list(ENCODERS))
def test_causal_halves_is_true_exactly_when_no_half_reads_past_its_position(name):
    """Change the word at position 3: the forward half must stay the same before it and the backward half after
    it when ``causal_halves`` says so; the other encoders do leak (which is why the flag is False for them)."""
    torch.manual_seed(0)
    encoder = ENCODERS[name](input_size=4).eval()
    inputs, mask = torch.randn(2, 6, 4), torch.ones(2, 6, dtype=torch.bool)
    changed = inputs.clone()
    changed[:, 3] += 1.0
    with torch.no_grad():
        before, after = encoder(inputs, mask).states, encoder(changed, mask).states
    half = before.shape[2] // 2
    unchanged = (torch.equal(before[:, :3, :half], after[:, :3, :half])
                 and torch.equal(before[:, 4:, half:], after[:, 4:, half:]))
    assert encoder.causal_halves == unchanged
    assert encoder.causal_halves == (name in ("bilstm", "bigru", "recurrent-lstm"))
