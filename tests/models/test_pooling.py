"""Poolings: unchanged by extra padding (whatever it holds), equal to per-sequence loops over real tokens, attention
weights normalized over real tokens, the Lin et al. penalty by hand, gradients everywhere."""

import pytest
import torch

from seqlab.models import (
    AttentionPooling,
    BiLSTMEncoder,
    EncoderOutput,
    LastStatePooling,
    MaxPooling,
    MeanPooling,
    SelfAttentivePooling,
    frobenius_penalty,
)

LENGTHS = [6, 3, 1, 5]
POOLINGS = [
    (LastStatePooling, {}),
    (MeanPooling, {}),
    (MaxPooling, {}),
    (AttentionPooling, {"attention_size": 7}),
    (SelfAttentivePooling, {"attention_size": 9, "hops": 3, "penalty_weight": 0.5}),
]
ATTENTION_POOLINGS = POOLINGS[3:]


def mask_for(lengths, time):
    return torch.arange(time).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # (B, T)


def hand_made(seed=0, size=6, garbage=0.0):
    """Random states (B, T, H) with ``garbage`` on padding and a random ``final``."""
    generator = torch.Generator().manual_seed(seed)
    mask = mask_for(LENGTHS, max(LENGTHS))
    states = torch.randn(len(LENGTHS), max(LENGTHS), size, generator=generator)
    states = states.masked_fill(~mask.unsqueeze(-1), garbage)
    return EncoderOutput(states, mask, torch.randn(len(LENGTHS), size, generator=generator))


def from_encoder(encoder, extra=0, seed=0):
    """Real BiLSTM outputs for a fixed batch, with ``extra`` padding steps of garbage inputs appended."""
    generator = torch.Generator().manual_seed(seed)
    mask = mask_for(LENGTHS, max(LENGTHS) + extra)
    inputs = torch.randn(len(LENGTHS), max(LENGTHS), encoder.input_size, generator=generator)
    inputs = torch.cat([inputs, torch.full((len(LENGTHS), extra, encoder.input_size), 9.0)], dim=1)
    return encoder(inputs, mask)


def pad_more(encoded, extra=3, garbage=None, seed=1):
    """Append ``extra`` padding steps and overwrite every padded state with garbage (large random by default)."""
    batch, time, size = encoded.states.shape
    states = torch.cat([encoded.states, torch.zeros(batch, extra, size)], dim=1)
    mask = torch.cat([encoded.mask, torch.zeros(batch, extra, dtype=torch.bool)], dim=1)
    if garbage is None:
        garbage = 1e4 * torch.randn(states.shape, generator=torch.Generator().manual_seed(seed))
    states = torch.where(mask.unsqueeze(-1), states, torch.as_tensor(garbage))
    return EncoderOutput(states, mask, encoded.final)


def build(pooling_class, options, input_size, seed=0):
    torch.manual_seed(seed)
    return pooling_class(input_size, **options)


def assert_same_output(base, padded, time):
    torch.testing.assert_close(padded.pooled, base.pooled)
    assert (base.weights is None) == (padded.weights is None)
    if base.weights is not None:
        torch.testing.assert_close(padded.weights[..., :time], base.weights)
        assert (padded.weights[..., time:] == 0).all()
    assert (base.penalty is None) == (padded.penalty is None)
    if base.penalty is not None:
        torch.testing.assert_close(padded.penalty, base.penalty)


@pytest.mark.parametrize("pooling_class, options", POOLINGS)
@pytest.mark.parametrize("garbage", [None, float("inf"), float("-inf"), float("nan")])
def test_hand_made_states_unchanged_by_extra_padding(pooling_class, options, garbage):
    encoded = hand_made()
    pooling = build(pooling_class, options, encoded.states.shape[-1])
    base = pooling(encoded)
    padded = pooling(pad_more(encoded, garbage=garbage))
    assert base.pooled.shape == (len(LENGTHS), pooling.output_size)
    assert torch.isfinite(padded.pooled).all()
    assert_same_output(base, padded, encoded.states.shape[1])


@pytest.mark.parametrize("pooling_class, options", POOLINGS)
def test_bilstm_outputs_unchanged_by_extra_padding(pooling_class, options):
    torch.manual_seed(0)
    encoder = BiLSTMEncoder(5, hidden_size=4).eval()
    pooling = build(pooling_class, options, encoder.output_size)
    base = pooling(from_encoder(encoder))
    padded = pooling(pad_more(from_encoder(encoder, extra=2), extra=2))  # garbage inputs, then garbage states
    assert base.pooled.shape == (len(LENGTHS), pooling.output_size)
    assert_same_output(base, padded, max(LENGTHS))


@pytest.mark.parametrize("pooling_class, options", ATTENTION_POOLINGS)
def test_attention_weights_sum_to_one_over_real_tokens_and_are_zero_on_padding(pooling_class, options):
    encoded = pad_more(hand_made())
    pooling = build(pooling_class, options, encoded.states.shape[-1])
    weights = pooling(encoded).weights
    mask = encoded.mask if weights.dim() == 2 else encoded.mask.unsqueeze(1).expand_as(weights)
    assert weights.shape[-1] == encoded.states.shape[1]
    assert (weights[~mask] == 0).all()
    assert (weights[mask] > 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))


def test_last_state_pooling_returns_the_encoder_final_state():
    encoded = pad_more(hand_made())
    out = LastStatePooling(encoded.states.shape[-1])(encoded)
    assert out.pooled is encoded.final
    assert out.weights is None and out.penalty is None


@pytest.mark.parametrize("garbage", [0.0, 1e4])
def test_mean_and_max_equal_a_loop_over_real_tokens(garbage):
    encoded = hand_made(garbage=garbage)
    mean = MeanPooling(6)(encoded)
    maximum = MaxPooling(6)(encoded)
    for b, length in enumerate(LENGTHS):
        torch.testing.assert_close(mean.pooled[b], encoded.states[b, :length].mean(0))
        torch.testing.assert_close(maximum.pooled[b], encoded.states[b, :length].max(0).values)
    assert mean.weights is mean.penalty is maximum.weights is maximum.penalty is None


def test_max_pooling_padding_never_wins_over_negative_states():
    encoded = hand_made()
    encoded = encoded._replace(states=-encoded.states.abs() - 1)  # all real values < -1, padding 0
    pooled = MaxPooling(6)(encoded).pooled
    assert (pooled < -1).all()
    for b, length in enumerate(LENGTHS):
        torch.testing.assert_close(pooled[b], encoded.states[b, :length].max(0).values)


def test_attention_pooling_equals_a_loop_over_real_tokens():
    encoded = hand_made(garbage=5.0)
    pooling = build(AttentionPooling, {"attention_size": 7}, 6)
    out = pooling(encoded)
    w, b, v = pooling.projection.weight, pooling.projection.bias, pooling.score.weight.squeeze(0)
    for i, length in enumerate(LENGTHS):
        states = encoded.states[i, :length]  # (t, H)
        weights = torch.softmax(torch.tanh(states @ w.T + b) @ v, dim=0)  # (t,)
        torch.testing.assert_close(out.weights[i, :length], weights)
        torch.testing.assert_close(out.pooled[i], weights @ states)


def test_self_attentive_pooling_equals_a_loop_over_real_tokens():
    encoded = hand_made(garbage=5.0)
    pooling = build(SelfAttentivePooling, {"attention_size": 9, "hops": 3, "penalty_weight": 0.5}, 6)
    out = pooling(encoded)
    penalties = []
    for i, length in enumerate(LENGTHS):
        states = encoded.states[i, :length]  # (t, H)
        weights = torch.softmax(pooling.w_s2.weight @ torch.tanh(pooling.w_s1.weight @ states.T), dim=1)  # (r, t)
        torch.testing.assert_close(out.weights[i, :, :length], weights)
        torch.testing.assert_close(out.pooled[i], (weights @ states).flatten())
        penalties.append(torch.linalg.matrix_norm(weights @ weights.T - torch.eye(3)) ** 2)
    assert out.pooled.shape == (len(LENGTHS), 3 * 6) and pooling.output_size == 18
    torch.testing.assert_close(out.penalty, 0.5 * torch.stack(penalties).mean())


def test_frobenius_penalty_is_zero_for_hops_on_distinct_single_tokens():
    weights = torch.zeros(2, 3, 5)
    weights[0, [0, 1, 2], [0, 2, 4]] = 1.0
    weights[1, [0, 1, 2], [3, 1, 0]] = 1.0
    torch.testing.assert_close(frobenius_penalty(weights), torch.zeros(2), atol=1e-6, rtol=0)


def test_frobenius_penalty_by_hand():
    same = torch.tensor([[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])  # A A^T - I = [[0, 1], [1, 0]]
    overlapping = torch.tensor([[[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]]])  # A A^T - I = [[-.5, .25], [.25, -.5]]
    torch.testing.assert_close(frobenius_penalty(same), torch.tensor([2.0]))
    torch.testing.assert_close(frobenius_penalty(overlapping), torch.tensor([0.625]))
    torch.testing.assert_close(frobenius_penalty(torch.cat([same, overlapping])), torch.tensor([2.0, 0.625]))


def test_penalty_weight_scales_the_penalty():
    encoded = hand_made()
    one = build(SelfAttentivePooling, {"attention_size": 9, "hops": 3, "penalty_weight": 1.0}, 6)
    scaled = build(SelfAttentivePooling, {"attention_size": 9, "hops": 3, "penalty_weight": 2.5}, 6)
    out_one, out_scaled = one(encoded), scaled(encoded)
    assert out_one.penalty.dim() == 0 and out_one.penalty > 0
    torch.testing.assert_close(out_one.penalty, frobenius_penalty(out_one.weights).mean())
    torch.testing.assert_close(out_scaled.penalty, 2.5 * out_one.penalty)


@pytest.mark.parametrize("pooling_class, options", POOLINGS)
def test_gradients_reach_every_parameter_of_encoder_and_pooling(pooling_class, options):
    torch.manual_seed(0)
    encoder = BiLSTMEncoder(5, hidden_size=4)
    pooling = pooling_class(encoder.output_size, **options)
    out = pooling(from_encoder(encoder, extra=2))
    loss = out.pooled.pow(2).sum() + (out.penalty if out.penalty is not None else 0)
    loss.backward()
    for name, parameter in [*encoder.named_parameters(), *pooling.named_parameters()]:
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name
    assert len(list(pooling.parameters())) == (2 if pooling_class is SelfAttentivePooling else
                                               3 if pooling_class is AttentionPooling else 0)


def test_penalty_gradient_reaches_the_attention_parameters():
    encoded = hand_made()
    pooling = build(SelfAttentivePooling, {"attention_size": 9, "hops": 3}, 6)
    pooling(encoded).penalty.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pooling.parameters())
