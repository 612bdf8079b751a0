"""The LSTM family as cells: each cell against a step-by-step reference written from its equations with plain tensor
ops, run on each sequence alone (no padding, no mask), outputs and gradients; the plain cells against nn.LSTM/nn.GRU;
peephole and CIFG identities; variational masks; DropConnect on the fused kernel; padding invariance; ConvLSTM."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqlab import SeqlabError
from seqlab.models.dropout import keep_mask
from seqlab.models import (
    BiLSTMEncoder,
    CIFGLSTMCell,
    ConvLSTMCell,
    GRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    PeepholeLSTMCell,
    RecurrentEncoder,
    RecurrentLayer,
    VariationalLSTMCell,
    WeightDropBiLSTMEncoder,
    WeightDropLSTM,
)

LENGTHS = [6, 3, 1, 5]


def batch(seed: int, size: int = 8, lengths=LENGTHS, dtype=torch.float64):
    """Inputs (B, T, size) with garbage on padding, bool mask (B, T)."""
    generator = torch.Generator().manual_seed(seed)
    time = max(lengths)
    inputs = torch.randn(len(lengths), time, size, generator=generator, dtype=dtype)
    mask = torch.arange(time).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return inputs.masked_fill(~mask.unsqueeze(2), 5.0), mask


def pad_more(inputs, mask, extra=3, fill=-7.0):
    b, _, d = inputs.shape
    return (torch.cat([inputs, torch.full((b, extra, d), fill, dtype=inputs.dtype)], 1),
            torch.cat([mask, torch.zeros(b, extra, dtype=torch.bool)], 1))


# --------------------------------------------------------------------------- references, from the equations
def lstm_reference(cell, x, state, keep_h=None):
    h, c = state
    h = h if keep_h is None else h * keep_h
    gates = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    i, f, g, o = gates.chunk(4)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def peephole_reference(cell, x, state):
    h, c = state
    gates = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    i, f, g, o = gates.chunk(4)
    i = torch.sigmoid(i + cell.peephole_input * c)
    f = torch.sigmoid(f + cell.peephole_forget * c)
    c = f * c + i * torch.tanh(g)
    o = torch.sigmoid(o + cell.peephole_output * c)
    return o * torch.tanh(c), c


def cifg_reference(cell, x, state):
    h, c = state
    gates = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    i, g, o = gates.chunk(3)
    i = torch.sigmoid(i)
    c = (1 - i) * c + i * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def layer_norm(values, gain, eps=1e-5):
    centred = values - values.mean()
    return gain * centred / torch.sqrt((centred ** 2).mean() + eps)


def layernorm_reference(cell, x, state):
    h, c = state
    gates = (layer_norm(cell.weight_ih @ x, cell.input_norm.weight)
             + layer_norm(cell.weight_hh @ h, cell.hidden_norm.weight) + cell.bias_ih + cell.bias_hh)
    i, f, g, o = gates.chunk(4)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(layer_norm(c, cell.cell_norm.weight)), c


def gru_reference(cell, x, state):
    (h,) = state
    xr, xz, xn = (x @ cell.weight_ih.T + cell.bias_ih).chunk(3)
    hr, hz, hn = (h @ cell.weight_hh.T + cell.bias_hh).chunk(3)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return ((1 - z) * n + z * h,)


def conv_along_frequency(signal, weight, bias=None):
    """(C_in, F) signal, (C_out, C_in, K) weight -> (C_out, F): sum over kernel taps of shifted, zero-padded bins."""
    kernel = weight.shape[2]
    padded = F.pad(signal, (kernel // 2, kernel // 2))
    bins = signal.shape[1]
    out = sum(weight[:, :, k] @ padded[:, k:k + bins] for k in range(kernel))
    return out if bias is None else out + bias.unsqueeze(1)


def convlstm_reference(cell, x, state):
    h, c = state  # (C, F)
    frame = x.view(cell.in_channels, cell.frequency_bins)
    gates = (conv_along_frequency(frame, cell.input_conv.weight, cell.input_conv.bias)
             + conv_along_frequency(h, cell.hidden_conv.weight))
    i, f, g, o = gates.chunk(4)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def run_alone(step, zero_state, inputs, mask, reverse):
    """Each sequence on its own (its real steps only), step by step: outputs (B, T, O) zero on padding, and the
    final output of each sequence (B, O)."""
    outputs = torch.zeros(inputs.shape[0], inputs.shape[1], zero_state[0].numel(), dtype=inputs.dtype)
    finals = []
    for b, length in enumerate(mask.sum(1).tolist()):
        state = zero_state
        for t in (range(length - 1, -1, -1) if reverse else range(length)):
            state = step(inputs[b, t], state)
            outputs[b, t] = state[0].reshape(-1)
        finals.append(state[0].reshape(-1))
    return outputs, torch.stack(finals)


def zeros(*shape):
    return torch.zeros(*shape, dtype=torch.float64)


def randomised_norms(cell):
    """Gains away from their init of 1, so that the reference must apply each one where it belongs."""
    with torch.no_grad():
        for norm in (cell.input_norm, cell.hidden_norm, cell.cell_norm):
            norm.weight.uniform_(0.5, 1.5)
    return cell


CASES = {  # name -> (cell factory (input_size) -> cell, reference step, zero state for the cell)
    "lstm": (lambda d: LSTMCell(d, 5), lstm_reference, lambda c: (zeros(5), zeros(5))),
    "peephole": (lambda d: PeepholeLSTMCell(d, 5), peephole_reference, lambda c: (zeros(5), zeros(5))),
    "cifg": (lambda d: CIFGLSTMCell(d, 5), cifg_reference, lambda c: (zeros(5), zeros(5))),
    "layernorm": (lambda d: randomised_norms(LayerNormLSTMCell(d, 5)), layernorm_reference,
                  lambda c: (zeros(5), zeros(5))),
    "variational_eval": (lambda d: VariationalLSTMCell(d, 5, 0.5, 0.5), lstm_reference,
                         lambda c: (zeros(5), zeros(5))),
    "gru": (lambda d: GRUCell(d, 5), gru_reference, lambda c: (zeros(5),)),
    "convlstm": (lambda d: ConvLSTMCell(d, 3, frequency_bins=4, kernel_size=3), convlstm_reference,
                 lambda c: (zeros(3, 4), zeros(3, 4))),
}


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize("name", CASES)
def test_cell_equals_its_step_by_step_reference_outputs_and_gradients(name, reverse):
    factory, reference_step, zero_state = CASES[name]
    torch.manual_seed(0)
    cell = factory(8).double().eval()  # eval: the variational cell is then its plain LSTM
    layer = RecurrentLayer(cell, reverse=reverse)
    inputs, mask = batch(1)
    inputs.requires_grad_(True)
    outputs, state = layer(inputs, mask)
    outputs = outputs * mask.unsqueeze(2)
    final = cell.output(state)

    step = functools.partial(reference_step, cell)
    expected, expected_final = run_alone(step, zero_state(cell), inputs, mask, reverse)
    torch.testing.assert_close(outputs, expected)
    torch.testing.assert_close(final, expected_final)

    weights = torch.randn(outputs.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    parameters = [inputs, *cell.parameters()]
    ours = torch.autograd.grad((outputs * weights).sum() + final.sum(), parameters)
    theirs = torch.autograd.grad((expected * weights).sum() + expected_final.sum(), parameters)
    for value, reference in zip(ours, theirs):
        torch.testing.assert_close(value, reference)
    assert all(bool(g.abs().sum() > 0) for g in ours)  # every parameter gets a gradient


# --------------------------------------------------------------------------- against PyTorch's own RNNs
def copy_weights(rnn: nn.RNNBase, layer: int, suffix: str, cell) -> None:
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(rnn, f"{name}_l{layer}{suffix}").copy_(getattr(cell, name))


@pytest.mark.parametrize("cell_class, rnn_class", [(LSTMCell, nn.LSTM), (GRUCell, nn.GRU)])
def test_plain_cells_equal_packed_bidirectional_torch_rnns(cell_class, rnn_class):
    torch.manual_seed(0)
    ours = RecurrentEncoder(8, hidden_size=5, num_layers=2, cell=cell_class).double().eval()
    reference = rnn_class(8, 5, num_layers=2, bidirectional=True, batch_first=True).double().eval()
    for depth, directions in enumerate(ours.layers):
        copy_weights(reference, depth, "", directions[0].cell)
        copy_weights(reference, depth, "_reverse", directions[1].cell)
    inputs, mask = batch(3)
    packed = nn.utils.rnn.pack_padded_sequence(inputs, mask.sum(1), batch_first=True, enforce_sorted=False)
    states, h_n = reference(packed)
    h_n = h_n[0] if isinstance(h_n, tuple) else h_n
    states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=inputs.shape[1])
    out = ours(inputs, mask)
    torch.testing.assert_close(out.states, states)
    torch.testing.assert_close(out.final, torch.cat([h_n[-2], h_n[-1]], -1))


def test_peephole_with_zero_peepholes_is_the_plain_lstm_cell_and_nn_lstm():
    torch.manual_seed(0)
    peephole = PeepholeLSTMCell(8, 5).double()
    plain = LSTMCell(8, 5).double()
    plain.load_state_dict({k: v for k, v in peephole.state_dict().items() if not k.startswith("peephole")})
    inputs, mask = batch(4)
    with_peepholes = RecurrentLayer(peephole)(inputs, mask)[0]
    with torch.no_grad():
        for name in ("peephole_input", "peephole_forget", "peephole_output"):
            getattr(peephole, name).zero_()
    without = RecurrentLayer(peephole)(inputs, mask)[0]
    # the plain cell takes one sigmoid over its four gates, the peephole cell one per gate (a strided view): on an
    # AVX-512 machine the two sigmoids of the same pre-activation differed in the last bit of a float64 (1.4e-17 in
    # the outputs), likely the kernel's vector vs scalar path; far below what a peephole changes
    torch.testing.assert_close(without, RecurrentLayer(plain)(inputs, mask)[0], rtol=0, atol=1e-15)
    assert not torch.allclose(with_peepholes, without)  # the peepholes were doing something

    lstm = nn.LSTM(8, 5, batch_first=True).double()
    copy_weights(lstm, 0, "", peephole)
    full = mask.all(1)  # nn.LSTM without packing: the sequences without padding
    torch.testing.assert_close(without[full], lstm(inputs[full])[0])


def test_cifg_forget_gate_is_one_minus_input_gate():
    torch.manual_seed(0)
    cell = CIFGLSTMCell(8, 5)
    assert cell.weight_ih.shape == (15, 8) and cell.weight_hh.shape == (15, 5)  # three gate blocks
    projected = cell.project(torch.randn(4, 1, 8))[:, 0]
    state = (torch.randn(4, 5), torch.randn(4, 5))
    gates = cell.gates(projected, state)
    torch.testing.assert_close(gates.forget, 1 - gates.input)
    torch.testing.assert_close(gates.cell, gates.forget * state[1] + gates.input * gates.candidate)


# --------------------------------------------------------------------------- variational dropout
def variational_reference(cell, inputs, mask, input_keep, recurrent_keep):
    """The cell's run with fixed per-sequence masks (B, D) and (B, H), the same at every step."""
    def step_for(b):
        return lambda x, s: lstm_reference(cell, x * input_keep[b], s, recurrent_keep[b])
    outputs = []
    for b in range(inputs.shape[0]):
        out, _ = run_alone(step_for(b), (zeros(5), zeros(5)), inputs[b:b + 1], mask[b:b + 1], reverse=False)
        outputs.append(out[0])
    return torch.stack(outputs)


def test_variational_masks_are_constant_over_time_and_drawn_per_sequence():
    torch.manual_seed(0)
    cell = VariationalLSTMCell(8, 5, recurrent_dropout=0.5, input_dropout=0.25).double().train()
    layer = RecurrentLayer(cell)
    inputs, mask = batch(5)
    torch.manual_seed(11)
    outputs = layer(inputs, mask)[0] * mask.unsqueeze(2)
    torch.manual_seed(11)  # replay the draws: input mask (in project), then recurrent mask (in begin)
    input_keep = cell.sequence_mask(4, 8, 0.25, inputs)
    recurrent_keep = cell.sequence_mask(4, 5, 0.5, inputs)
    # one mask per sequence reproduces every step of the run: the masks did not change over time
    torch.testing.assert_close(outputs, variational_reference(cell, inputs, mask, input_keep, recurrent_keep))
    assert set(recurrent_keep.unique().tolist()) == {0.0, 2.0}
    assert len({tuple(row) for row in recurrent_keep.tolist()}) > 1  # sequences get their own masks
    # a new batch draws new masks; eval has none: the plain LSTM cell
    assert not torch.allclose(layer(inputs, mask)[0] * mask.unsqueeze(2), outputs)
    plain = LSTMCell(8, 5).double()
    plain.load_state_dict(cell.state_dict())
    torch.testing.assert_close(RecurrentLayer(cell.eval())(inputs, mask)[0], RecurrentLayer(plain)(inputs, mask)[0])


def test_variational_recurrent_dropout_rate():
    cell = VariationalLSTMCell(3, 4, recurrent_dropout=0.1)
    torch.manual_seed(0)
    keep = cell.sequence_mask(20000, 10, 0.1, torch.zeros(()))
    dropped = float((keep == 0).float().mean())
    assert abs(dropped - 0.1) < 4 * (0.1 * 0.9 / keep.numel()) ** 0.5
    torch.testing.assert_close(keep.mean(), torch.tensor(1.0), atol=0.01, rtol=0)  # unbiased: 1 / (1 - p) scaling


# --------------------------------------------------------------------------- DropConnect on the fused kernel
def test_weight_drop_lstm_eval_is_nn_lstm_and_training_drops_recurrent_weights_once_per_call():
    torch.manual_seed(0)
    dropped = WeightDropLSTM(8, 5, num_layers=2, bidirectional=True, batch_first=True, weight_dropout=0.5).double()
    plain = nn.LSTM(8, 5, num_layers=2, bidirectional=True, batch_first=True).double()
    assert list(dropped.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(dropped.state_dict())
    inputs, _ = batch(6)
    eval_outputs = plain.eval()(inputs)[0]
    torch.testing.assert_close(dropped.eval()(inputs)[0], eval_outputs, rtol=0, atol=0)

    dropped.train()
    before = {k: v.clone() for k, v in dropped.state_dict().items()}
    torch.manual_seed(3)
    outputs = dropped(inputs)[0]
    torch.manual_seed(3)  # replay: one mask per weight_hh, in parameter order
    with torch.no_grad():
        for name in [n for n in plain._flat_weights_names if n.startswith("weight_hh")]:
            weight = getattr(plain, name)
            weight.mul_(keep_mask(weight.shape, 0.5, weight.dtype) * 2.0)
    torch.testing.assert_close(outputs, plain.train()(inputs)[0])
    assert all(torch.equal(before[k], v) for k, v in dropped.state_dict().items())  # the weights themselves stay
    torch.testing.assert_close(dropped.eval()(inputs)[0], eval_outputs, rtol=0, atol=0)  # and the kernel's, too
    dropped.train()

    weight = dropped.weight_hh_l0
    zeroed = plain.weight_hh_l0 == 0  # the elements dropped in that call
    outputs.sum().backward()
    assert bool(zeroed.any()) and bool((weight.grad[zeroed] == 0).all()) and bool(weight.grad[~zeroed].abs().sum() > 0)


def test_weight_drop_encoder_keeps_bilstm_keys_and_eval_outputs():
    torch.manual_seed(0)
    encoder = WeightDropBiLSTMEncoder(8, hidden_size=5, num_layers=2, weight_dropout=0.3)
    plain = BiLSTMEncoder(8, hidden_size=5, num_layers=2)
    plain.load_state_dict(encoder.state_dict())  # strict: the same keys
    inputs, mask = batch(7, dtype=torch.float32)
    torch.testing.assert_close(encoder.eval()(inputs, mask).states, plain.eval()(inputs, mask).states)
    assert not torch.allclose(encoder.train()(inputs, mask).states, plain.train()(inputs, mask).states)


# --------------------------------------------------------------------------- masks, padding, encoders
ENCODER_CELLS = {
    "lstm": LSTMCell,
    "peephole": PeepholeLSTMCell,
    "cifg": CIFGLSTMCell,
    "layernorm": LayerNormLSTMCell,
    "variational": functools.partial(VariationalLSTMCell, recurrent_dropout=0.3, input_dropout=0.2),
    "gru": GRUCell,
    "convlstm": functools.partial(ConvLSTMCell, frequency_bins=4, kernel_size=3),
}


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "uni"])
@pytest.mark.parametrize("name", ENCODER_CELLS)
def test_outputs_unchanged_by_extra_padding(name, bidirectional):
    torch.manual_seed(0)
    encoder = RecurrentEncoder(8, hidden_size=4, num_layers=2, cell=ENCODER_CELLS[name],
                               bidirectional=bidirectional).eval()
    inputs, mask = batch(8, dtype=torch.float32)
    base = encoder(inputs, mask)
    padded = encoder(*pad_more(inputs, mask))
    time = inputs.shape[1]
    torch.testing.assert_close(padded.states[:, :time], base.states)
    assert (padded.states[:, time:] == 0).all() and (base.states[~mask] == 0).all()
    torch.testing.assert_close(padded.final, base.final)
    # training too: the variational cell with the same draws
    encoder.train()
    torch.manual_seed(1)
    base = encoder(inputs, mask)
    torch.manual_seed(1)
    padded = encoder(*pad_more(inputs, mask))
    torch.testing.assert_close(padded.final, base.final)


def test_final_is_the_last_real_state_forward_and_the_first_backward():
    torch.manual_seed(0)
    encoder = RecurrentEncoder(8, hidden_size=5, cell=PeepholeLSTMCell).eval()
    inputs, mask = batch(9, dtype=torch.float32)
    out = encoder(inputs, mask)
    last = mask.sum(1) - 1
    rows = torch.arange(len(LENGTHS))
    torch.testing.assert_close(out.final, torch.cat([out.states[rows, last, :5], out.states[:, 0, 5:]], -1))
    unidirectional = RecurrentEncoder(8, hidden_size=5, cell=PeepholeLSTMCell, bidirectional=False)
    assert unidirectional.output_size == 5 and encoder.output_size == 10


def test_empty_sequence_is_rejected():
    encoder = RecurrentEncoder(3, hidden_size=2, cell=GRUCell)
    with pytest.raises(ValueError, match="empty sequence"):
        encoder(torch.zeros(2, 3, 3), torch.tensor([[True, True, False], [False, False, False]]))


# --------------------------------------------------------------------------- ConvLSTM
def test_convlstm_shapes_channels_and_locality():
    torch.manual_seed(0)
    bins, channels = 10, 3
    encoder = RecurrentEncoder(2 * bins, hidden_size=channels, num_layers=2, bidirectional=True,
                               cell=functools.partial(ConvLSTMCell, frequency_bins=bins, kernel_size=3)).eval()
    assert encoder.layers[0][0].cell.in_channels == 2  # a 20-feature frame = 2 channels x 10 bins
    assert encoder.layers[1][0].cell.in_channels == 2 * channels  # both directions' channels
    inputs, mask = batch(10, size=2 * bins, lengths=[1, 4], dtype=torch.float32)
    out = encoder(inputs, mask)
    assert out.states.shape == (2, 4, 2 * channels * bins) and out.final.shape == (2, 2 * channels * bins)
    # one step of one layer sees kernel_size // 2 bins either side: changing bin 0 of a one-step sequence leaves
    # the first layer's bins 2.. unchanged
    layer = RecurrentLayer(ConvLSTMCell(bins, channels, frequency_bins=bins, kernel_size=3)).eval()
    frame = torch.randn(1, 1, bins)
    changed = frame.clone()
    changed[0, 0, 0] += 1.0
    one = torch.ones(1, 1, dtype=torch.bool)
    before, after = (layer(x, one)[0].view(channels, bins) for x in (frame, changed))
    assert not torch.allclose(before[:, :2], after[:, :2])
    torch.testing.assert_close(before[:, 2:], after[:, 2:])


def test_convlstm_options_are_checked():
    with pytest.raises(SeqlabError, match="frequency_bins=40 does not divide the input size 30"):
        ConvLSTMCell(30, 4, frequency_bins=40)
    with pytest.raises(SeqlabError, match="kernel_size must be odd"):
        ConvLSTMCell(40, 4, frequency_bins=40, kernel_size=4)


# --------------------------------------------------------------------------- in the decoder and the char encoder
def decoder_pair(num_layers=2, input_feeding=True):
    """An nn.LSTM decoder and an LSTMCell decoder with the same weights (and the encoded source they read)."""
    from seqlab.models import AdditiveAttention, LSTMDecoder

    torch.manual_seed(0)
    attention = functools.partial(AdditiveAttention, attention_size=6)
    options = dict(embedding_dim=6, hidden_size=7, num_layers=num_layers, attention=attention,
                   input_feeding=input_feeding, dropout=0.0)
    plain = LSTMDecoder(13, 0, 10, **options).eval()
    ours = LSTMDecoder(13, 0, 10, cell=LSTMCell, **options).eval()
    weights = {k: v for k, v in plain.state_dict().items() if not k.startswith("lstm.")}
    for depth in range(num_layers):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            weights[f"lstm.layers.{depth}.cell.{name}"] = plain.state_dict()[f"lstm.{name}_l{depth}"]
    ours.load_state_dict(weights)
    encoder = RecurrentEncoder(4, hidden_size=5, cell=GRUCell).eval()
    inputs, mask = batch(11, size=4, dtype=torch.float32)
    return plain, ours, encoder(inputs, mask)


@pytest.mark.parametrize("input_feeding", [True, False])
def test_decoder_with_lstm_cells_equals_the_nn_lstm_decoder(input_feeding):
    from seqlab.models import BeamSearch, NoLengthPenalty

    plain, ours, encoded = decoder_pair(input_feeding=input_feeding)
    targets = torch.randint(1, 13, (4, 5), generator=torch.Generator().manual_seed(12))
    torch.testing.assert_close(ours(targets, encoded).logits, plain(targets, encoded).logits)
    search = BeamSearch(3, NoLengthPenalty(), 1.0, 4)
    torch.testing.assert_close(search(ours, encoded, 2, 3).scores, search(plain, encoded, 2, 3).scores)


def test_decoder_variational_masks_are_drawn_once_per_batch_of_sentences():
    from seqlab.models import LSTMDecoder

    torch.manual_seed(0)
    cell = functools.partial(VariationalLSTMCell, recurrent_dropout=0.5, input_dropout=0.5)
    decoder = LSTMDecoder(13, 0, 10, embedding_dim=6, hidden_size=7, num_layers=2, dropout=0.0, cell=cell).train()
    encoded = decoder_pair()[2]
    tokens = torch.tensor([4, 5, 6, 7])
    state = decoder.start(encoded)
    # no attention, so no input feeding: the first layer reads the embedding (6) only
    assert [tuple(d.shape) for layer in state.noise for d in layer] == [(4, 6), (4, 7), (4, 7), (4, 7)]
    first, again = decoder.step(tokens, state), decoder.step(tokens, state)  # a step reads the state's masks
    torch.testing.assert_close(first.logits, again.logits)
    assert not torch.allclose(decoder.step(tokens, decoder.start(encoded)).logits, first.logits)  # new batch
    assert decoder.eval().start(encoded).noise == ((), ())
    beams = state.select(torch.tensor([0, 0, 3]))  # masks follow their rows
    torch.testing.assert_close(beams.noise[1][1], state.noise[1][1][[0, 0, 3]])


def test_decoder_refuses_a_cell_without_lstm_state():
    from seqlab.models import LSTMDecoder

    with pytest.raises(SeqlabError, match="GRUCell has no LSTM state"):
        LSTMDecoder(13, 0, 10, cell=GRUCell)


def test_char_encoder_with_a_cell_encoder_gives_each_words_own_final_states():
    from seqlab.models import CharBiLSTM

    torch.manual_seed(0)
    chars = CharBiLSTM(20, embedding_dim=6, hidden_size=4,
                       encoder=functools.partial(RecurrentEncoder, cell=PeepholeLSTMCell)).eval()
    assert chars.output_size == 8 and isinstance(chars.lstm.layers[0][0].cell, PeepholeLSTMCell)
    words = torch.tensor([[3, 4, 5, 0, 0], [6, 0, 0, 0, 0], [7, 8, 9, 10, 11], [12, 13, 0, 0, 0]])
    char_mask = words != 0
    encoded = chars.encode_words(words, char_mask)  # grouped by length
    for row in range(len(words)):
        length = int(char_mask[row].sum())
        alone = chars.lstm(chars.embedding(words[row:row + 1, :length]), char_mask[row:row + 1, :length]).final
        torch.testing.assert_close(encoded[row:row + 1], alone)
