"""Dropout with packed-bit masks: the distribution and scaling of nn.Dropout."""

import pytest
import torch

from seqlab.models.dropout import Dropout, SequenceDropout, _bits_for, as_dropout, keep_mask
from seqlab.models.encoders import BiLSTMEncoder


@pytest.mark.parametrize("p", [0.5, 0.25, 0.75, 0.1, 0.3, 1 / 3])
def test_keep_mask_drops_each_element_with_probability_p(p):
    torch.manual_seed(0)
    mask = keep_mask((500, 997), p)  # an odd count: the last draw is only partly used
    assert mask.shape == (500, 997) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    count = mask.numel()
    dropped = float((mask == 0).sum()) / count
    assert abs(dropped - p) < 4 * (p * (1 - p) / count) ** 0.5  # within 4 standard errors
    # independent positions: neighbours are not correlated (each bit of a draw is used once)
    flat = mask.reshape(-1)
    both = float((flat[:-1] * flat[1:]).mean())
    assert abs(both - (1 - p) ** 2) < 0.01


def test_bits_per_element():
    assert [_bits_for(p) for p in (0.5, 0.25, 0.75, 0.125, 0.0625)] == [1, 2, 2, 4, 4]
    assert _bits_for(0.1) == 31


def test_masks_follow_the_torch_seed():
    torch.manual_seed(3)
    first = keep_mask((4, 100), 0.5)
    torch.manual_seed(3)
    assert torch.equal(keep_mask((4, 100), 0.5), first)
    assert not torch.equal(keep_mask((4, 100), 0.5), first)


@pytest.mark.parametrize("p", [0.5, 0.2])
def test_dropout_scales_kept_values_and_gradients_like_nn_dropout(p):
    torch.manual_seed(0)
    dropout = Dropout(p).train()
    inputs = torch.randn(64, 33, requires_grad=True)
    out = dropout(inputs)
    kept = out != 0
    torch.testing.assert_close(out[kept], inputs[kept] / (1 - p))
    out.sum().backward()
    torch.testing.assert_close(inputs.grad, kept.float() / (1 - p))
    assert abs(float(out.detach().mean() - inputs.detach().mean())) < 0.2  # unbiased on average


def test_dropout_identity_in_eval_and_at_zero_and_zeros_at_one():
    inputs = torch.randn(3, 5)
    assert Dropout(0.5).eval()(inputs) is inputs
    assert Dropout(0.0).train()(inputs) is inputs
    assert (Dropout(1.0).train()(inputs) == 0).all()
    with pytest.raises(ValueError):
        Dropout(1.5)


def test_sequence_dropout_keeps_one_mask_per_sequence_for_every_step():
    torch.manual_seed(0)
    p = 0.33
    inputs = torch.rand(200, 7, 16) + 0.5  # no zeros: a zero output is a dropped unit
    out = SequenceDropout(p).train()(inputs)
    kept = out != 0  # (B, T, D)
    assert torch.equal(kept, kept[:, :1].expand_as(kept))  # the same units at every step of a sequence
    assert len({tuple(row.tolist()) for row in kept[:, 0]}) > 150  # and drawn anew for each sequence
    torch.testing.assert_close(out[kept], inputs[kept] / (1 - p))
    count = kept[:, 0].numel()
    dropped = float((~kept[:, 0]).sum()) / count
    assert abs(dropped - p) < 4 * (p * (1 - p) / count) ** 0.5
    summaries = torch.rand(300, 16) + 0.5  # (B, D): elementwise, as Dropout
    assert len(set((SequenceDropout(p).train()(summaries) != 0).sum(1).tolist())) > 3


def test_sequence_dropout_is_padding_invariant_and_identity_in_eval():
    inputs = torch.randn(4, 6, 10)
    padded = torch.cat([inputs, torch.randn(4, 9, 10)], dim=1)
    dropout = SequenceDropout(0.5).train()
    torch.manual_seed(1)
    short = dropout(inputs)
    torch.manual_seed(1)
    torch.testing.assert_close(dropout(padded)[:, :6], short, rtol=0, atol=0)
    assert SequenceDropout(0.5).eval()(inputs) is inputs


def test_as_dropout_reads_a_probability_or_takes_a_module():
    plain = as_dropout(0.25)
    assert type(plain) is Dropout and plain.p == 0.25
    sequence = SequenceDropout(0.33)
    assert as_dropout(sequence) is sequence


def test_encoder_with_sequence_dropout_gives_the_same_training_outputs_under_extra_padding():
    """With the mask (B, 1, 2H) the encoder's training outputs on real steps do not depend on the padded length,
    which elementwise dropout (a mask per step) cannot give."""
    torch.manual_seed(0)
    encoder = BiLSTMEncoder(5, 8, num_layers=2, dropout=SequenceDropout(0.4)).train()
    inputs = torch.randn(3, 6, 5)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] * 2 + [False] * 4])
    padded_inputs = torch.cat([inputs, torch.randn(3, 3, 5)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(3, 3, dtype=torch.bool)], dim=1)
    torch.manual_seed(5)
    short = encoder(inputs, mask)
    torch.manual_seed(5)
    long = encoder(padded_inputs, padded_mask)
    torch.testing.assert_close(long.states[:, :6], short.states)
    torch.testing.assert_close(long.final, short.final)
    assert (short.states[:, :2] == 0).any(dim=1).any()  # dropout was active
