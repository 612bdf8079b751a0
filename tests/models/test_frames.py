"""Frame models: stacking and upsampling by hand, context windows by hand, both unchanged by extra padding; the frame
classifier's loss against a hand-written cross-entropy; SpecAugment masks in training and is the identity in eval."""

import pytest
import torch
import torch.nn.functional as F

from seqlab.models import ContextWindowMLP, FrameClassifier, FrameStacking, SpecAugment
from seqlab.models.frames import IGNORE_INDEX


def padded_batch(lengths, size=3, seed=0, garbage=True):
    """features (B, T, F) with random values on padding too (a module must not read them), mask (B, T)."""
    generator = torch.Generator().manual_seed(seed)
    time = max(lengths)
    features = torch.randn(len(lengths), time, size, generator=generator)
    mask = torch.arange(time).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    if not garbage:
        features = features * mask.unsqueeze(-1)
    return features, mask


def with_extra_padding(features, mask, extra=4, seed=1):
    generator = torch.Generator().manual_seed(seed)
    batch, _, size = features.shape
    noise = torch.randn(batch, extra, size, generator=generator) * 100
    return torch.cat([features, noise], 1), torch.cat([mask, torch.zeros(batch, extra, dtype=torch.bool)], 1)


@pytest.mark.parametrize("stack,stride", [(2, 2), (3, 3), (3, 1), (1, 2)])
def test_frame_stacking_concatenates_frames_by_hand(stack, stride):
    features, mask = padded_batch([7, 4], size=2)
    stacked, inner = FrameStacking(2, stack, stride)(features, mask)
    steps = -(-7 // stride)
    assert stacked.shape == (2, steps, 2 * stack) and FrameStacking(2, stack, stride).output_size == 2 * stack
    for row, length in enumerate((7, 4)):
        for step in range(steps):
            expected = torch.cat([features[row, t] if t < length else torch.zeros(2)
                                  for t in range(step * stride, step * stride + stack)])
            torch.testing.assert_close(stacked[row, step], expected)
        assert inner[row].tolist() == [step < -(-length // stride) for step in range(steps)]


def test_frame_stacking_and_upsampling_are_unchanged_by_extra_padding():
    stacking = FrameStacking(3, stack=2)
    features, mask = padded_batch([5, 2, 6])
    stacked, inner = stacking(features, mask)
    longer, longer_mask = with_extra_padding(features, mask, extra=5)
    stacked_long, inner_long = stacking(longer, longer_mask)
    steps = stacked.shape[1]
    torch.testing.assert_close(stacked_long[:, :steps] * inner.unsqueeze(-1), stacked * inner.unsqueeze(-1))
    assert torch.equal(inner_long[:, :steps], inner) and not inner_long[:, steps:].any()
    # upsample: each inner state stands for `stride` input frames, cut to the input length
    states = torch.arange(2 * steps, dtype=torch.float).reshape(1, steps, 2)
    up = stacking.upsample(states, 5)
    assert up.shape == (1, 5, 2)
    assert up[0, :, 0].tolist() == [0, 0, 2, 2, 4]
    torch.testing.assert_close(stacking.upsample(torch.cat([states, states], 1), 5), up)
    with pytest.raises(ValueError):
        FrameStacking(3, stack=0)


def test_context_windows_by_hand_and_outputs_unchanged_by_extra_padding():
    encoder = ContextWindowMLP(3, context=2, hidden_size=8, num_layers=2, dropout=0.0).eval()
    features, mask = padded_batch([6, 3])
    windows = encoder.windows(features, mask)  # (B, T, 5 * 3)
    for row, length in enumerate((6, 3)):
        for t in range(6):
            expected = torch.cat([features[row, s] if 0 <= s < length else torch.zeros(3)
                                  for s in range(t - 2, t + 3)])
            torch.testing.assert_close(windows[row, t], expected)
    out = encoder(features, mask)
    longer, longer_mask = with_extra_padding(features, mask)
    out_long = encoder(longer, longer_mask)
    torch.testing.assert_close(out_long.states[:, :6], out.states)
    torch.testing.assert_close(out_long.final, out.final)
    assert (out.states[1, 3:] == 0).all() and (out_long.states[:, 6:] == 0).all()
    torch.testing.assert_close(out.final[1], out.states[1, :3].mean(0))
    assert encoder.output_size == 8


def test_frame_classifier_loss_is_the_mean_cross_entropy_over_labelled_real_frames():
    head = FrameClassifier(4, ["a", "b", "c"], label_smoothing=0.0)
    states = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    labels = torch.tensor([[0, 2, IGNORE_INDEX, 1, 1], [2, 2, 0, 1, 1]])  # the last two of row 2 are padding
    logits = head(states)
    by_hand, count = 0.0, 0
    for row in range(2):
        for t in range(5):
            if mask[row, t] and labels[row, t] != IGNORE_INDEX:
                by_hand = by_hand - torch.log_softmax(logits[row, t], -1)[labels[row, t]]
                count += 1
    torch.testing.assert_close(head.loss(logits, labels, mask), by_hand / count)
    assert count == 7
    none = head.loss(logits, torch.full_like(labels, IGNORE_INDEX), mask)
    assert none.item() == 0.0 and none.requires_grad
    decoded = head.decode(logits, mask)
    assert torch.equal(decoded[mask], logits.argmax(-1)[mask]) and (decoded[~mask] == 0).all()
    smooth = FrameClassifier(4, ["a", "b", "c"], label_smoothing=0.1)
    smooth.load_state_dict(head.state_dict())
    targets = labels.masked_fill(~mask, IGNORE_INDEX).reshape(-1)
    torch.testing.assert_close(smooth.loss(logits, labels, mask), F.cross_entropy(
        logits.reshape(-1, 3), targets, ignore_index=IGNORE_INDEX, label_smoothing=0.1))


def test_spec_augment_masks_bands_and_spans_in_training_and_is_the_identity_in_eval():
    torch.manual_seed(0)
    augment = SpecAugment(20, freq_masks=2, freq_mask_width=5, time_masks=2, time_mask_width=6, max_time_ratio=0.5)
    features, mask = padded_batch([40, 25, 33], size=20, garbage=False)
    features = features + 3.0 * mask.unsqueeze(-1)  # no real value is 0 by chance
    augment.eval()
    assert augment(features, mask) is features
    augment.train()
    changed_any = False
    for _ in range(5):
        out = augment(features, mask)
        assert out.shape == features.shape
        assert (out[~mask] == 0).all()  # padding untouched (0)
        changed = out != features
        assert (out[changed] == 0).all()  # masked values are mask_value
        changed_any |= bool(changed.any())
        for row, length in enumerate((40, 25, 33)):
            zero = changed[row, :length]  # (T, F)
            bands, spans = zero.all(0), zero.all(1)  # whole feature bands, whole frame spans
            # every masked value lies in a masked band or a masked span, and those are at most the masks' widths
            assert not (zero & ~bands.unsqueeze(0) & ~spans.unsqueeze(1)).any()
            assert int(bands.sum()) <= 2 * 5
            assert int(spans.sum()) <= 2 * min(6, int(0.5 * 40))
    assert changed_any
    assert torch.equal(augment.eval()(features, mask), features)
