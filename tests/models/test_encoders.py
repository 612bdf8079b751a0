"""Encoders: exact under extra padding, equal to PyTorch's packed bidirectional LSTM, gradients everywhere."""

import pytest
import torch
from torch import nn

from seqlab.models import BiGRUEncoder, BiLSTMEncoder, MultiHeadSelfAttention
from seqlab.models.encoders import reverse_within_lengths


def batch(generator, batch_size=4, time=6, size=8):
    inputs = torch.randn(batch_size, time, size, generator=generator)
    lengths = torch.tensor([time, 3, 1, 5])[:batch_size]
    mask = torch.arange(time).unsqueeze(0) < lengths.unsqueeze(1)
    return inputs, mask


def pad_more(inputs, mask, extra=4, fill=7.0):
    """Append ``extra`` padding steps filled with garbage (padding content must not matter)."""
    b, _, d = inputs.shape
    return (torch.cat([inputs, torch.full((b, extra, d), fill)], 1),
            torch.cat([mask, torch.zeros(b, extra, dtype=torch.bool)], 1))


@pytest.mark.parametrize("encoder_class", [BiLSTMEncoder, BiGRUEncoder])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_outputs_unchanged_by_extra_padding(encoder_class, num_layers):
    torch.manual_seed(0)
    encoder = encoder_class(8, hidden_size=5, num_layers=num_layers).eval()
    inputs, mask = batch(torch.Generator().manual_seed(1))
    base = encoder(inputs, mask)
    padded = encoder(*pad_more(inputs, mask))
    time = inputs.shape[1]
    torch.testing.assert_close(padded.states[:, :time], base.states)
    assert (padded.states[:, time:] == 0).all()
    assert (base.states[~mask] == 0).all()
    torch.testing.assert_close(padded.final, base.final)


def test_bilstm_equals_packed_bidirectional_lstm_with_the_same_weights():
    torch.manual_seed(0)
    ours = BiLSTMEncoder(8, hidden_size=5, num_layers=2).eval()
    reference = nn.LSTM(8, 5, num_layers=2, bidirectional=True, batch_first=True).eval()
    with torch.no_grad():
        for layer in range(2):
            for direction, rnn in (("", ours.forward_layers[layer]), ("_reverse", ours.backward_layers[layer])):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(reference, f"{name}_l{layer}{direction}").copy_(getattr(rnn, f"{name}_l0"))
    inputs, mask = batch(torch.Generator().manual_seed(2))
    lengths = mask.sum(1)
    packed = nn.utils.rnn.pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
    states, (h_n, _) = reference(packed)
    states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=inputs.shape[1])
    out = ours(inputs, mask)
    torch.testing.assert_close(out.states, states, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.final, torch.cat([h_n[-2], h_n[-1]], -1), rtol=1e-5, atol=1e-6)


def test_reverse_within_lengths_is_an_involution_that_keeps_padding():
    inputs = torch.arange(12.0).view(2, 6, 1)
    lengths = torch.tensor([6, 4])
    reversed_ = reverse_within_lengths(inputs, lengths)
    assert reversed_[1, :, 0].tolist() == [9.0, 8.0, 7.0, 6.0, 10.0, 11.0]
    torch.testing.assert_close(reverse_within_lengths(reversed_, lengths), inputs)


def test_self_attention_ignores_padding_and_keeps_it_zero():
    torch.manual_seed(0)
    encoder = BiLSTMEncoder(8, hidden_size=4).eval()
    attention = MultiHeadSelfAttention(encoder.output_size, num_heads=2).eval()
    inputs, mask = batch(torch.Generator().manual_seed(3))
    base = attention(encoder(inputs, mask))
    padded = attention(encoder(*pad_more(inputs, mask)))
    torch.testing.assert_close(padded.states[:, : inputs.shape[1]], base.states, rtol=1e-5, atol=1e-6)
    assert (padded.states[~padded.mask] == 0).all()


def test_empty_sequence_is_rejected():
    encoder = BiLSTMEncoder(3, hidden_size=2)
    with pytest.raises(ValueError, match="empty sequence"):
        encoder(torch.zeros(2, 3, 3), torch.tensor([[True, True, False], [False, False, False]]))


@pytest.mark.parametrize("encoder_class", [BiLSTMEncoder, BiGRUEncoder])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_final_states_equal_the_final_of_forward(encoder_class, num_layers):
    torch.manual_seed(0)
    encoder = encoder_class(8, hidden_size=5, num_layers=num_layers).eval()
    inputs, mask = batch(torch.Generator().manual_seed(4))
    inputs.requires_grad_(True)
    final = encoder.final_states(inputs, mask)
    final.sum().backward()
    grad = inputs.grad.clone()
    inputs.grad = None
    reference = encoder(inputs, mask).final
    reference.sum().backward()
    torch.testing.assert_close(final, reference)
    torch.testing.assert_close(grad, inputs.grad)


def test_reverse_within_lengths_gradient_is_the_same_permutation():
    inputs = torch.randn(3, 5, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 2, 3])
    assert torch.autograd.gradcheck(lambda x: reverse_within_lengths(x, lengths), (inputs,))
