"""SentenceCharBiLSTM: a character BiLSTM over the whole sentence, against a sentence-by-sentence reference run on
the plain nn.LSTM modules, padding invariance, causality per half, gradients and tracing."""

from __future__ import annotations

import pytest
import torch

from seqlab.models import CharBiLSTM, RecurrentEncoder, SentenceCharBiLSTM
from seqlab.models.cells import LayerNormLSTMCell
from seqlab.models.sentence_chars import stream_layout

PAD = 0


def random_batch(generator: torch.Generator, lengths: list[int], longest_word: int = 6, vocab: int = 12
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """char ids (B, T, L) of words of 1..longest_word characters (ids 1..vocab-1), mask (B, T)."""
    batch, time = len(lengths), max(lengths)
    chars = torch.zeros(batch, time, longest_word, dtype=torch.int64)
    mask = torch.arange(time) < torch.tensor(lengths).unsqueeze(1)
    for b, n in enumerate(lengths):
        for t in range(n):
            size = int(torch.randint(1, longest_word + 1, (1,), generator=generator))
            chars[b, t, :size] = torch.randint(1, vocab, (size,), generator=generator)
    return chars, mask


def reference(encoder: SentenceCharBiLSTM, chars: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One sentence at a time, the stream built by hand as a Python list and run through the encoder's two plain
    nn.LSTM modules (the backward one on the reversed stream): (B, T, 2H)."""
    forward_lstm, backward_lstm = encoder.lstm.forward_layers[0], encoder.lstm.backward_layers[0]
    half = encoder.output_size // 2
    out = torch.zeros(*mask.shape, 2 * half)
    for b in range(mask.shape[0]):
        stream, before, after = [encoder.separator], [], []
        for t in range(int(mask[b].sum())):
            before.append(len(stream) - 1)
            stream.extend(encoder.embedding(chars[b, t][chars[b, t] != PAD]))
            after.append(len(stream))
            stream.append(encoder.separator)
        inputs = torch.stack(stream).unsqueeze(0)  # (1, S, E)
        forward_states = forward_lstm(inputs)[0][0]  # (S, H)
        backward_states = backward_lstm(inputs.flip(1))[0][0].flip(0)  # (S, H)
        for t, (b_pos, a_pos) in enumerate(zip(before, after)):
            out[b, t] = torch.cat([forward_states[a_pos], backward_states[b_pos]])
    return out


@pytest.fixture
def encoder() -> SentenceCharBiLSTM:
    torch.manual_seed(0)
    return SentenceCharBiLSTM(12, PAD, embedding_dim=5, hidden_size=4).eval()


def test_layout_puts_words_between_separators():
    char_mask = torch.tensor([[[1, 1, 0], [1, 0, 0], [1, 1, 1]], [[1, 1, 1], [0, 0, 0], [0, 0, 0]]]).bool()
    mask = torch.tensor([[True, True, True], [True, False, False]])
    starts, ends, lengths = stream_layout(char_mask, mask)
    # [sep] a a [sep] b [sep] c c c [sep]  and  [sep] d d d [sep]
    assert starts[0].tolist() == [1, 4, 6] and ends[0].tolist() == [3, 5, 9] and lengths.tolist() == [10, 5]
    assert starts[1, 0] == 1 and ends[1, 0] == 4


def test_features_equal_a_sentence_by_sentence_run_of_the_plain_lstms(encoder):
    chars, mask = random_batch(torch.Generator().manual_seed(1), [5, 2, 7, 1])
    with torch.no_grad():
        torch.testing.assert_close(encoder(chars, mask), reference(encoder, chars, mask), atol=1e-6, rtol=1e-5)


def test_features_are_zero_on_padding_and_unchanged_by_more_padding(encoder):
    chars, mask = random_batch(torch.Generator().manual_seed(2), [4, 2, 3])
    wider = torch.cat([chars, torch.zeros(3, 4, 5, dtype=torch.int64)], dim=2)  # longer words' room
    wider = torch.cat([wider, torch.zeros(3, 3, wider.shape[2], dtype=torch.int64)], dim=1)  # more tokens
    wider_mask = torch.cat([mask, torch.zeros(3, 3, dtype=torch.bool)], dim=1)
    wider[:, 4:, :2] = 7  # characters under padding tokens are not read
    with torch.no_grad():
        features, padded = encoder(chars, mask), encoder(wider, wider_mask)
    torch.testing.assert_close(padded[:, :4], features, atol=1e-6, rtol=1e-5)
    assert not padded[~wider_mask].any() and not features[~mask].any()


def test_each_half_reads_only_its_side_of_the_sentence_and_a_word_sees_its_neighbours(encoder):
    chars, mask = random_batch(torch.Generator().manual_seed(3), [6])
    changed = chars.clone()
    changed[0, 3, 0] = 11 if chars[0, 3, 0] != 11 else 10  # word 3's first character
    with torch.no_grad():
        before, after = encoder(chars, mask), encoder(changed, mask)
    half = encoder.output_size // 2
    assert torch.equal(before[0, :3, :half], after[0, :3, :half])  # forward halves of words 0-2: unchanged
    assert torch.equal(before[0, 4:, half:], after[0, 4:, half:])  # backward halves of words 4-5: unchanged
    assert not torch.allclose(before[0, 4:, :half], after[0, 4:, :half])  # later words' forward halves read it
    assert not torch.allclose(before[0, :3, half:], after[0, :3, half:])  # earlier words' backward halves too
    assert encoder.causal_halves and not encoder.reads_one_word
    per_word = CharBiLSTM(12, PAD, embedding_dim=5, hidden_size=4)
    assert per_word.reads_one_word and per_word.causal_halves


def test_gradients_reach_the_separator_the_characters_and_the_lstm(encoder):
    chars, mask = random_batch(torch.Generator().manual_seed(4), [3, 5])
    encoder.train()
    encoder(chars, mask).pow(2).sum().backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    used = chars.unique()
    assert encoder.embedding.weight.grad[PAD].abs().sum() == 0  # padding is never read
    assert (encoder.embedding.weight.grad[used[used != PAD]].abs().sum(1) > 0).all()


def test_a_traced_encoder_gives_eager_features_for_other_batches_of_its_shape(encoder):
    generator = torch.Generator().manual_seed(5)
    chars, mask = random_batch(generator, [4, 2, 4], longest_word=5)
    traced = torch.jit.trace(encoder, (chars, mask), check_trace=False)
    other, other_mask = random_batch(generator, [1, 4, 3], longest_word=5)
    with torch.no_grad():
        torch.testing.assert_close(traced(other, other_mask), encoder(other, other_mask), atol=1e-6, rtol=1e-5)


def test_another_cell_runs_over_the_stream():
    torch.manual_seed(6)
    encoder = SentenceCharBiLSTM(12, PAD, embedding_dim=5, hidden_size=4,
                                 encoder=lambda size, hidden: RecurrentEncoder(size, hidden, cell=LayerNormLSTMCell))
    chars, mask = random_batch(torch.Generator().manual_seed(7), [3, 5])
    features = encoder(chars, mask)
    assert features.shape == (2, 5, 8) and not features[~mask].any() and encoder.causal_halves
