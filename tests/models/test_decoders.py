"""Encoder-decoder attention, bridges, the LSTM decoder and batched greedy / beam search."""

from __future__ import annotations

import functools
import itertools

import pytest
import torch

from seqlab import SeqlabError
from seqlab.models import (
    AdditiveAttention,
    BeamSearch,
    BiLSTMEncoder,
    DotAttention,
    GeneralAttention,
    GNMTLengthPenalty,
    GreedySearch,
    LengthNormalization,
    LinearBridge,
    LSTMDecoder,
    NoLengthPenalty,
    ZeroBridge,
)

VOCAB, PAD, BOS, EOS = 23, 0, 2, 3
ATTENTIONS = {
    "none": None,
    "additive": functools.partial(AdditiveAttention, attention_size=12),
    "dot": DotAttention,
    "general": GeneralAttention,
}


def source(batch_lengths=(6, 4, 1, 3), size=8, seed=0):
    torch.manual_seed(seed)
    lengths = torch.tensor(batch_lengths)
    mask = torch.arange(int(lengths.max())).unsqueeze(0) < lengths.unsqueeze(1)  # (B, S)
    encoder = BiLSTMEncoder(size, 8)  # memory size 16
    return encoder, torch.randn(len(batch_lengths), mask.shape[1], size), mask


def decoder_for(name: str, **kwargs) -> LSTMDecoder:
    kwargs.setdefault("hidden_size", 16)  # = memory size, as dot attention needs
    kwargs.setdefault("embedding_dim", 10)
    kwargs.setdefault("dropout", 0.0)
    return LSTMDecoder(VOCAB, PAD, 16, attention=ATTENTIONS[name], **kwargs)


@pytest.mark.parametrize("attention", [AdditiveAttention, DotAttention, GeneralAttention])
def test_attention_weights_sum_to_one_over_real_tokens_and_are_zero_on_padding(attention):
    torch.manual_seed(0)
    layer = attention(16, 16)
    memory = torch.randn(3, 5, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    memory = memory * mask.unsqueeze(2)
    for query in (torch.randn(3, 16), torch.randn(3, 4, 16)):  # one step, or 4 steps at once
        context, weights = layer(query, memory, mask)
        step_mask = mask if query.dim() == 2 else mask.unsqueeze(1).expand(-1, 4, -1)
        assert torch.all(weights[~step_mask] == 0)
        assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-6)
        assert context.shape == query.shape[:-1] + (16,)
        # the context is the weighted sum of the real positions
        expected = torch.einsum("bs,bsm->bm" if query.dim() == 2 else "bts,bsm->btm", weights, memory)
        assert torch.allclose(context, expected, atol=1e-5)
    # padding content never matters
    noisy = memory + torch.randn_like(memory) * (~mask).unsqueeze(2)
    query = torch.randn(3, 16)
    assert torch.allclose(layer(query, noisy, mask).context, layer(query, memory, mask).context, atol=1e-5)


def test_dot_attention_needs_equal_sizes():
    with pytest.raises(ValueError, match="GeneralAttention"):
        DotAttention(8, 16)


def test_bridges_give_initial_states_per_layer():
    final = torch.randn(4, 16)
    hidden, cell = LinearBridge(16, 12, num_layers=2)(final)
    assert hidden.shape == cell.shape == (2, 4, 12) and bool((hidden.abs() <= 1).all())
    hidden, cell = ZeroBridge(16, 12)(final)
    assert hidden.shape == (1, 4, 12) and not hidden.any() and not cell.any()


@pytest.mark.parametrize("name,tie,feeding", [("none", False, True), ("additive", False, True), ("dot", True, True),
                                              ("general", False, False)])
def test_teacher_forcing_equals_step_by_step_decoding(name, tie, feeding):
    encoder, inputs, mask = source()
    decoder = decoder_for(name, tie_embeddings=tie, input_feeding=feeding).eval()
    encoded = encoder(inputs, mask)
    targets = torch.randint(4, VOCAB, (4, 5))
    out = decoder(targets, encoded)
    assert out.logits.shape == (4, 5, VOCAB)
    state, logits = decoder.start(encoded), []
    for t in range(5):
        step = decoder.step(targets[:, t], state)
        logits.append(step.logits)
        state = step.state
    assert torch.allclose(out.logits, torch.stack(logits, 1), atol=1e-5)
    if name == "none":
        assert out.weights is None
    else:
        assert out.weights.shape == (4, 5, mask.shape[1])
        assert torch.all(out.weights[~mask.unsqueeze(1).expand(-1, 5, -1)] == 0)
    if tie:
        assert decoder.output.weight is decoder.embedding.embedding.weight


@pytest.mark.parametrize("name", list(ATTENTIONS))
def test_gradients_reach_every_parameter(name):
    encoder, inputs, mask = source()
    decoder = decoder_for(name, num_layers=2, dropout=0.2)
    logits = decoder(torch.randint(4, VOCAB, (4, 5)), encoder(inputs, mask)).logits
    logits.logsumexp(-1).sum().backward()
    for module in (encoder, decoder):
        for parameter_name, parameter in module.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, parameter_name


@pytest.mark.parametrize("name", list(ATTENTIONS))
@torch.no_grad()
def test_beam_size_one_equals_greedy(name):
    encoder, inputs, mask = source(seed=1)
    decoder = decoder_for(name).eval()
    encoded = encoder(inputs, mask)
    # a strong EOS bias so that some sentences end before their maximum length
    with torch.no_grad():
        decoder.output.bias[EOS] += 2.0
    greedy = GreedySearch(1.0, 3)(decoder, encoded, BOS, EOS, return_attention=name != "none")
    beam = BeamSearch(1, NoLengthPenalty(), 1.0, 3)(decoder, encoded, BOS, EOS, return_attention=name != "none")
    assert torch.equal(greedy.tokens, beam.tokens) and torch.equal(greedy.lengths, beam.lengths)
    assert torch.allclose(greedy.scores, beam.scores, atol=1e-5)
    if name != "none":
        assert torch.allclose(greedy.attention, beam.attention, atol=1e-6)
    # the greedy score is the teacher-forced log-probability of its output (EOS included when it ended)
    tokens, lengths = greedy.tokens[:, 0], greedy.lengths[:, 0]
    limits = GreedySearch(1.0, 3).max_lengths(mask)
    inputs_ = torch.cat([torch.full((4, 1), BOS), tokens], 1)
    log_probs = decoder(inputs_, encoded).logits.log_softmax(-1)
    for row in range(4):
        n = int(lengths[row])
        ended = n < int(limits[row])
        gold = tokens[row, :n].tolist() + ([EOS] if ended else [])
        expected = sum(float(log_probs[row, t, g]) for t, g in enumerate(gold))
        assert greedy.scores[row, 0].item() == pytest.approx(expected, abs=1e-4)
        assert greedy.log_probs[row, 0].item() == pytest.approx(expected, abs=1e-4)
    assert bool((lengths < limits).any()), "the EOS bias should end some sentences early"


@torch.no_grad()
def brute_force_best(decoder, encoded, row, limit):
    """The most probable complete output (ending in EOS, or cut at ``limit``) of one sentence, over a tiny vocab."""
    best, best_score = None, float("-inf")
    single = encoded._replace(states=encoded.states[row:row + 1], mask=encoded.mask[row:row + 1],
                              final=encoded.final[row:row + 1])
    words = [t for t in range(VOCAB) if t not in (PAD, BOS, EOS)]
    for length in range(limit + 1):
        for tokens in itertools.product(words, repeat=length):
            gold = list(tokens) + ([EOS] if length < limit else [])
            inputs = torch.tensor([[BOS, *gold[:-1]]])
            log_probs = decoder(inputs, single).logits.log_softmax(-1)[0]
            score = float(sum(log_probs[t, g] for t, g in enumerate(gold)))
            if score > best_score:
                best, best_score = list(tokens), score
    return best, best_score


@torch.no_grad()
def test_wide_beam_finds_the_most_probable_output_of_a_tiny_vocabulary():
    global VOCAB
    saved, VOCAB = VOCAB, 7  # words 1, 4, 5, 6: 4 ** 2 outputs of at most 2 words
    try:
        encoder, inputs, mask = source((2, 1), seed=3)
        decoder = decoder_for("additive").eval()
        with torch.no_grad():
            decoder.output.bias[EOS] += 1.0
        encoded = encoder(inputs, mask)
        search = BeamSearch(40, NoLengthPenalty(), 0.0, 2)  # every sentence: at most 2 tokens, EOS included
        found = search(decoder, encoded, BOS, EOS)
        for row in range(2):
            # with EOS counted, outputs of 2 tokens are: w EOS, or w w cut at the limit
            best, score = brute_force_best(decoder, encoded, row, 2)
            n = int(found.lengths[row, 0])
            assert found.tokens[row, 0, :n].tolist() == best
            assert found.scores[row, 0].item() == pytest.approx(score, abs=1e-4)
    finally:
        VOCAB = saved


@pytest.mark.parametrize("penalty", [NoLengthPenalty(), GNMTLengthPenalty(0.6), LengthNormalization(1.0)])
@torch.no_grad()
def test_beam_hypotheses_are_sorted_by_score_and_within_the_maximum_length(penalty):
    encoder, inputs, mask = source(seed=2)
    decoder = decoder_for("general").eval()
    with torch.no_grad():
        decoder.output.bias[EOS] += 1.5
    encoded = encoder(inputs, mask)
    search = BeamSearch(4, penalty, 1.0, 2)
    found = search(decoder, encoded, BOS, EOS, return_attention=True)
    limits = search.max_lengths(mask)
    assert found.tokens.shape[:2] == (4, 4) and found.scores.shape == (4, 4)
    assert bool((found.scores[:, :-1] >= found.scores[:, 1:]).all())
    assert bool(torch.isfinite(found.scores).all())
    assert bool((found.lengths <= limits.unsqueeze(1)).all())
    for row, hypothesis in itertools.product(range(4), range(4)):
        n = int(found.lengths[row, hypothesis])
        tokens = found.tokens[row, hypothesis]
        assert bool((tokens[n:] == PAD).all()) and not bool((tokens[:n] == EOS).any())
        # each score is the hypothesis' log-probability over its length penalty
        ended = n < int(limits[row])
        gold = tokens[:n].tolist() + ([EOS] if ended else [])
        single = encoded._replace(states=encoded.states[row:row + 1], mask=encoded.mask[row:row + 1],
                                  final=encoded.final[row:row + 1])
        log_probs = decoder(torch.tensor([[BOS, *gold[:-1]]]), single).logits.log_softmax(-1)[0]
        raw = float(sum(log_probs[t, g] for t, g in enumerate(gold)))
        expected = raw / float(penalty(torch.tensor(float(len(gold)))))
        assert found.scores[row, hypothesis].item() == pytest.approx(expected, abs=1e-4)
        assert found.log_probs[row, hypothesis].item() == pytest.approx(raw, abs=1e-4)
        weights = found.attention[row, hypothesis, :n]
        assert torch.allclose(weights.sum(-1), torch.ones(n), atol=1e-5)
        assert torch.all(weights[:, ~mask[row]] == 0)
    # distinct hypotheses per sentence
    for row in range(4):
        outputs = {tuple(found.tokens[row, h, :int(found.lengths[row, h])].tolist()) for h in range(4)}
        assert len(outputs) == 4


@torch.no_grad()
def test_length_cap_bounds_the_search_of_a_long_source_and_changes_nothing_below_it():
    """A 300-token source may grow 1.5 x 300 + 10 = 460 tokens; the cap holds it (and every beam) to 12 while a short
    sentence beside it, whose own limit is under the cap, gets the same output as with no cap."""
    encoder, inputs, mask = source(batch_lengths=(300, 4), seed=3)
    decoder = decoder_for("general").eval()
    with torch.no_grad():
        decoder.output.bias[EOS] -= 20.0  # no sentence ends early: each runs to its limit
    encoded = encoder(inputs, mask)
    for search, uncapped in ((GreedySearch(length_cap=12), GreedySearch(length_cap=None)),
                             (BeamSearch(3, length_cap=12), BeamSearch(3, length_cap=None))):
        assert search.max_lengths(mask).tolist() == [12, 12] and uncapped.max_lengths(mask).tolist() == [460, 16]
        capped, free = search(decoder, encoded, BOS, EOS), uncapped(decoder, encoded, BOS, EOS)
        assert bool((capped.lengths[0] == 12).all()) and bool((free.lengths[0] == 460).all())
        if isinstance(search, GreedySearch):  # each step's choice does not depend on the limit
            assert torch.equal(capped.tokens[0, 0, :12], free.tokens[0, 0, :12])
    short = source(batch_lengths=(4,), seed=3)
    encoded = encoder(short[1], short[2])
    for capped, free in ((GreedySearch(length_cap=16), GreedySearch(length_cap=None)),
                         (BeamSearch(3, length_cap=16), BeamSearch(3, length_cap=None))):
        one, other = capped(decoder, encoded, BOS, EOS), free(decoder, encoded, BOS, EOS)
        assert torch.equal(one.tokens, other.tokens) and torch.equal(one.scores, other.scores)
    with pytest.raises(SeqlabError, match="^GreedySearch: length_cap must be at least 1 \\(or null: no cap\\), got 0$"):
        GreedySearch(length_cap=0)


def test_length_penalties():
    lengths = torch.tensor([1.0, 5.0, 10.0])
    assert torch.allclose(GNMTLengthPenalty(0.6)(lengths), ((5 + lengths) / 6) ** 0.6)
    assert torch.allclose(LengthNormalization()(lengths), lengths)
    assert torch.equal(NoLengthPenalty()(lengths), torch.ones(3))


@pytest.mark.parametrize("name", ["additive", "none"])
@torch.no_grad()
def test_beam_search_of_a_batch_equals_each_sentence_searched_alone(name):
    """Sentences finishing at different steps leave the batch; the rest go on unchanged: the batched search gives
    every sentence the hypotheses, scores and attention it gets on its own (no padding)."""
    encoder, inputs, mask = source((6, 4, 1, 3, 5), seed=4)
    decoder = decoder_for(name).eval()
    encoded = encoder(inputs, mask)
    search = BeamSearch(3, GNMTLengthPenalty(0.6), 1.0, 2)
    batched = search(decoder, encoded, BOS, EOS, return_attention=True)
    steps = set()
    for row, length in enumerate(mask.sum(1).tolist()):
        alone = search(decoder, encoder(inputs[row:row + 1, :length], mask[row:row + 1, :length]), BOS, EOS,
                       return_attention=True)
        width = alone.tokens.shape[2]
        assert torch.equal(batched.lengths[row], alone.lengths[0])
        assert torch.equal(batched.tokens[row, :, :width], alone.tokens[0])
        assert bool((batched.tokens[row, :, width:] == PAD).all())
        assert torch.allclose(batched.scores[row], alone.scores[0], atol=1e-5)
        if name != "none":
            assert torch.allclose(batched.attention[row, :, :width, :length], alone.attention[0], atol=1e-5)
            assert bool((batched.attention[row, :, :, length:] == 0).all())
        steps.add(int(alone.lengths[0].max()))
    assert len(steps) > 1, "sentences should finish at different steps"
