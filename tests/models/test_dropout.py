"""Dropout with packed-bit masks: the distribution and scaling of nn.Dropout."""

import pytest
import torch

from seqlab.models.dropout import Dropout, _bits_for, keep_mask


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
