"""``seqlab export``: the ONNX graph under onnxruntime and the TorchScript module give the tags / labels of the PyTorch
model and its scores within 1e-4, for the three exportable tasks, on real inputs of varying length (longer than the
batch the graph was traced with) in one padded batch and one by one; ``OnnxPredictor`` gives the records of
``seqlab.load(...).predict``; the parts that take another path while traced equal their eager versions."""

from __future__ import annotations

import functools
import json
import re
import shutil

import pytest
import torch

import seqlab
from seqlab import SeqlabError
from seqlab.export import FORMATS, PROBE_LENGTHS, OnnxPredictor, OnnxSession, export, graph_of, main, sidecar_path
from seqlab.models import (
    AttentionPooling,
    BidirectionalLanguageModel,
    BiGRUEncoder,
    BiLSTMEncoder,
    CharBiLSTM,
    CharCNN,
    ContextWindowMLP,
    FrameStacking,
    LinearChainCRF,
    MultiHeadSelfAttention,
    SelfAttentivePooling,
    SentenceCharBiLSTM,
    SoftmaxTagger,
)
from seqlab.models.crf import _scripted_viterbi
from seqlab.models.encoders import EncoderOutput, SequenceEncoder
from seqlab.models.frames import sliding_windows
from seqlab.tasks import FrameClassification, SentenceClassification, TokenTagging
from tests.cli_helpers import seqlab as seqlab_command
from tests.conftest import repo_root, run_readme_python
from tests.test_benchmarks import TINY, benchmark, data_root, keep_process_state, read_rows  # noqa: F401 (a fixture)
from tests.test_inference import FIXTURES, inputs_of

TASKS = ("ner", "sentiment", "speech")
TOLERANCE = 1e-4


def mask_of(lengths: list[int]) -> torch.Tensor:
    lengths = torch.tensor(lengths)
    return torch.arange(int(lengths.max())).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)


def assert_same_outputs(names, expected, actual, context: str) -> None:
    """Integer outputs (decoded ids) equal, float outputs within TOLERANCE."""
    for name, want, got in zip(names, expected, actual):
        assert got.shape == want.shape, f"{context} {name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
        if want.dtype.is_floating_point:
            torch.testing.assert_close(got, want, rtol=0, atol=TOLERANCE, msg=f"{context} {name}")
        else:
            assert torch.equal(got, want), f"{context} {name}: {got.tolist()} != {want.tolist()}"


def check_graph(graph, onnx_path, script_path, batches, context: str) -> None:
    """The ONNX file under onnxruntime and the TorchScript module give the outputs of the eager graph."""
    session, scripted = OnnxSession(onnx_path, threads=1), torch.jit.load(str(script_path))
    for index, inputs in enumerate(batches):
        with torch.inference_mode():
            expected = graph(*inputs)
            from_script = scripted(*inputs)
        assert_same_outputs(graph.output_names, expected, list(session.run(inputs).values()),
                            f"{context} ONNX batch {index}")
        assert_same_outputs(graph.output_names, expected, from_script, f"{context} TorchScript batch {index}")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """task -> (PyTorch predictor, ONNX path, TorchScript path), exported once."""
    folder = tmp_path_factory.mktemp("exported")
    models = {}
    for task in TASKS:
        checkpoint = FIXTURES / f"{task}.ckpt"
        onnx_path, script_path = folder / f"{task}.onnx", folder / f"{task}.pt"
        export(checkpoint, onnx_path, "onnx")
        export(checkpoint, script_path, "torchscript")
        models[task] = (seqlab.load(checkpoint, open_vocabulary=False), onnx_path, script_path)
    return models


@pytest.mark.parametrize("task", TASKS)
def test_exported_models_match_pytorch_on_real_inputs(task, exported):
    predictor, onnx_path, script_path = exported[task]
    graph = graph_of(predictor.task)
    inputs = inputs_of(task)
    encoded = predictor.data.encoded_inputs(inputs)
    padded = predictor.data.collate(encoded.__getitems__(list(range(len(inputs)))))
    lengths = padded["mask"].sum(1)
    assert len(set(lengths.tolist())) > 2 and int(lengths.max()) > max(PROBE_LENGTHS)
    singles = [predictor.data.collate(encoded.__getitems__([i])) for i in range(len(inputs))]
    check_graph(graph, onnx_path, script_path, [graph.feeds(b) for b in [padded, *singles]], task)

    # padding changes nothing in the exported graph: each row of the padded batch is the input alone
    session = OnnxSession(onnx_path)
    in_batch = session.run(graph.feeds(padded))
    axes = graph.dynamic_axes()
    for row, single in enumerate(singles):
        alone = session.run(graph.feeds(single))
        length = int(single["mask"].sum())
        for name, value in alone.items():
            batched = in_batch[name][row: row + 1]
            for axis in (axis for axis, kind in axes[name].items() if kind == "time"):
                batched = batched.narrow(axis, 0, length)
            if value.dtype.is_floating_point:
                torch.testing.assert_close(batched, value, rtol=0, atol=1e-5)
            else:
                assert torch.equal(batched, value), (task, row, name)


@pytest.mark.parametrize("task", TASKS)
def test_onnx_predictor_gives_the_records_of_the_pytorch_predictor(task, exported):
    predictor, onnx_path, _ = exported[task]
    inputs = inputs_of(task)
    onnx_model = OnnxPredictor(onnx_path)  # the checkpoint named in the sidecar
    for batch_size in (1, 7):
        assert_same_records(onnx_model.predict(inputs, batch_size=batch_size),
                            predictor.predict(inputs, batch_size=batch_size), task)
    assert onnx_model.labels == predictor.labels
    if task == "ner":  # extra outputs come from the exported emissions too
        assert_same_records(onnx_model.predict(inputs[:5], marginals=True), predictor.predict(inputs[:5],
                                                                                               marginals=True), task)


def assert_same_records(new, old, path: str) -> None:
    """Equal records: strings, labels and lists exactly, floats within TOLERANCE (entity confidences move in the 5th
    decimal with the emissions' last bits)."""
    if isinstance(old, float):
        assert abs(new - old) <= TOLERANCE, f"{path}: {new} != {old}"
    elif isinstance(old, dict):
        assert set(new) == set(old), f"{path}: keys {sorted(new)} != {sorted(old)}"
        for key in old:
            assert_same_records(new[key], old[key], f"{path}.{key}")
    elif isinstance(old, list):
        assert len(new) == len(old), f"{path}: {len(new)} items != {len(old)}"
        for index, (a, b) in enumerate(zip(new, old)):
            assert_same_records(a, b, f"{path}[{index}]")
    else:
        assert new == old, f"{path}: {new!r} != {old!r}"


LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def token_batch(lengths: list[int], chars: bool, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random token ids (B, T) in 2..49, [char ids (B, T, 7), words of 1..7 characters,] mask (B, T); 0 = padding."""
    mask = mask_of(lengths)
    token_ids = torch.randint(2, 50, mask.shape, generator=generator).masked_fill(~mask, 0)
    if not chars:
        return token_ids, mask
    word_lengths = torch.randint(1, 8, mask.shape, generator=generator)
    char_ids = torch.randint(1, 30, (*mask.shape, 7), generator=generator)
    char_ids = char_ids.masked_fill(torch.arange(7) >= word_lengths.unsqueeze(2), 0).masked_fill(~mask.unsqueeze(2), 0)
    return token_ids, char_ids, mask


def frame_batch(lengths: list[int], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    mask = mask_of(lengths)
    return torch.randn(*mask.shape, 7, generator=generator) * mask.unsqueeze(2), mask


VARIANTS = {  # name -> (task factory, batch factory): the parts the fixtures do not have
    "softmax_charcnn_attention": (
        lambda: TokenTagging(50, LABELS, char_vocab_size=30, char_encoder=functools.partial(CharCNN, filters=8,
                                                                                           embedding_dim=6),
                             encoder=functools.partial(BiLSTMEncoder, hidden_size=8, num_layers=2),
                             attention=functools.partial(MultiHeadSelfAttention, num_heads=2), head=SoftmaxTagger),
        lambda lengths, g: token_batch(lengths, True, g)),
    "gru_crf_without_chars": (
        lambda: TokenTagging(50, LABELS, encoder=functools.partial(BiGRUEncoder, hidden_size=8)),
        lambda lengths, g: token_batch(lengths, False, g)),
    "crf_trained_with_a_language_model": (  # a task that holds the objective exports its tagger
        lambda: TokenTagging(50, LABELS, encoder=functools.partial(BiLSTMEncoder, hidden_size=8),
                             language_model=functools.partial(BidirectionalLanguageModel, max_words=20)),
        lambda lengths, g: token_batch(lengths, False, g)),
    "sentence_char_bilstm_trained_with_a_char_language_model": (  # its stream is padded to the trace's widest
        lambda: TokenTagging(50, LABELS, char_vocab_size=30,
                             char_encoder=functools.partial(SentenceCharBiLSTM, embedding_dim=6, hidden_size=5),
                             encoder=functools.partial(BiLSTMEncoder, hidden_size=8),
                             char_language_model=functools.partial(BidirectionalLanguageModel, max_words=20)),
        lambda lengths, g: token_batch(lengths, True, g)),
    "attention_pooling": (
        lambda: SentenceClassification(50, ["a", "b", "c"], encoder=functools.partial(BiLSTMEncoder, hidden_size=8),
                                       pooling=AttentionPooling),
        lambda lengths, g: token_batch(lengths, False, g)),
    "self_attentive_pooling": (
        lambda: SentenceClassification(50, ["a", "b"], encoder=functools.partial(BiLSTMEncoder, hidden_size=8),
                                       pooling=functools.partial(SelfAttentivePooling, attention_size=6, hops=3)),
        lambda lengths, g: token_batch(lengths, False, g)),
    "frame_stacking_attention": (
        lambda: FrameClassification(7, ["x", "y", "z"], stacking=functools.partial(FrameStacking, stack=3, stride=2),
                                    encoder=functools.partial(BiLSTMEncoder, hidden_size=8),
                                    attention=functools.partial(MultiHeadSelfAttention, num_heads=2)),
        frame_batch),
    "context_window_mlp": (
        lambda: FrameClassification(7, ["x", "y", "z"], encoder=functools.partial(ContextWindowMLP, context=2,
                                                                                  hidden_size=8)),
        frame_batch),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_exported_variants_decode_any_length(variant, tmp_path):
    torch.manual_seed(0)
    make_task, make_batch = VARIANTS[variant]
    graph = graph_of(make_task())
    FORMATS["onnx"].write(graph, tmp_path / "model.onnx")
    FORMATS["torchscript"].write(graph, tmp_path / "model.pt")
    generator = torch.Generator().manual_seed(1)
    batches = [make_batch(lengths, generator) for lengths in ([1], [9, 3, 5], [31, 30, 2, 17], [64])]
    check_graph(graph, tmp_path / "model.onnx", tmp_path / "model.pt", batches, variant)


class CumulativeEncoder(SequenceEncoder):
    """Each input beside the running sum of the inputs so far, by a Python loop over steps (tracing unrolls it to
    the example's length): (B, T, H) -> (B, T, 2H)."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.output_size = 2 * input_size

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        sums = [inputs[:, 0]]
        for t in range(1, inputs.shape[1]):
            sums.append(sums[-1] + inputs[:, t])
        states = torch.cat([inputs, torch.stack(sums, dim=1)], dim=-1) * mask.unsqueeze(2)  # (B, T, 2H)
        return EncoderOutput(states, mask, states[:, -1])


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_export_refuses_a_graph_fixed_to_the_traced_length(format, tmp_path):
    predictor = seqlab.load(FIXTURES / "sentiment.ckpt", open_vocabulary=False)
    predictor.task.model.body.encoder = CumulativeEncoder(predictor.task.model.body.encoder.input_size)
    output = tmp_path / f"model{FORMATS[format].suffix}"
    with pytest.raises(SeqlabError, match=r"does not reproduce the model on a batch of lengths \[7, 3, 5\]"):
        export(predictor, output, format)
    assert not output.exists() and not sidecar_path(output).exists()


def test_compiled_viterbi_equals_the_eager_one():
    generator = torch.Generator().manual_seed(0)
    crf = LinearChainCRF(len(LABELS), LABELS, constrained=True)
    start, trans, end = crf._potentials()
    for lengths in ([1], [1, 2], [5, 3, 1], [40, 17, 39]):
        mask = mask_of(lengths)
        emissions = torch.randn(*mask.shape, len(LABELS), generator=generator) * 3
        expected = crf.viterbi(emissions, mask)
        compiled = _scripted_viterbi()(emissions, mask, start, trans, end)
        assert torch.equal(compiled[0], expected[0])
        torch.testing.assert_close(compiled[1], expected[1])


def test_traced_paths_equal_the_eager_ones():
    """The paths models take while traced (no deduplication of words, attention without the fused kernel, windows
    by slices) give what the eager ones give."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(2)
    token_ids, char_ids, mask = token_batch([6, 1, 4], True, generator)
    char_ids[2, 1] = char_ids[0, 3]  # a repeated word
    for encoder in (CharBiLSTM(30, embedding_dim=5, hidden_size=4), CharCNN(30, embedding_dim=5, filters=6)):
        with torch.no_grad():
            torch.testing.assert_close(encoder.forward_traceable(char_ids, mask), encoder(char_ids, mask))

    attention = MultiHeadSelfAttention(8, num_heads=2).eval().requires_grad_(False)  # traced as constants
    states = torch.randn(3, 6, 8, generator=generator) * mask.unsqueeze(2)
    with torch.no_grad():
        expected = attention.attention(states, states, states, key_padding_mask=~mask, need_weights=False)[0]
        torch.testing.assert_close(attention.traceable_attention(states, mask)[mask], expected[mask])
        traced = torch.jit.trace(lambda s, m: attention(EncoderOutput(s, m, s[:, 0])).states, (states, mask))
        torch.testing.assert_close(traced(states, mask), attention(EncoderOutput(states, mask, states[:, 0])).states)

    for width, stride, steps in ((5, 1, 9), (3, 2, 4), (2, 3, 3)):
        frames = torch.randn(2, (steps - 1) * stride + width + 1, 3, generator=generator)
        traced = torch.jit.trace(lambda f: sliding_windows(f, width, stride, steps), (frames,))
        assert torch.equal(traced(frames), sliding_windows(frames, width, stride, steps))
        expected = torch.stack([frames[:, i * stride:i * stride + width].flatten(1) for i in range(steps)], dim=1)
        assert torch.equal(sliding_windows(frames, width, stride, steps), expected)


@pytest.mark.slow
def test_cli_writes_the_model_and_its_sidecar(tmp_path):
    output = tmp_path / "out" / "ner.onnx"
    done = seqlab_command("export", "--ckpt_path", str(FIXTURES / "ner.ckpt"), "--format", "onnx",
                          "--output", str(output))
    assert done.returncode == 0, done.stderr
    sidecar = json.loads(sidecar_path(output).read_text())
    assert sidecar["task"] == "TokenTagging" and sidecar["format"] == "onnx"
    assert sidecar["checkpoint"] == str((FIXTURES / "ner.ckpt").resolve())
    assert [i["name"] for i in sidecar["inputs"]] == ["token_ids", "char_ids", "mask"]
    assert [o["name"] for o in sidecar["outputs"]] == ["tags", "emissions"]
    predictor = seqlab.load(FIXTURES / "ner.ckpt")
    assert sidecar["labels"] == predictor.labels
    texts = inputs_of("ner")[:4]
    assert [r["tags"] for r in OnnxPredictor(output).predict(texts)] == [r["tags"] for r in predictor.predict(texts)]


@pytest.mark.parametrize("args, message", [
    (["--ckpt_path", "CKPT", "--format", "tflite", "--output", "m.onnx"], "argument --format: invalid choice"),
    (["--ckpt_path", "CKPT"], "the following arguments are required: --output"),
    (["--ckpt_path", "missing.ckpt", "--output", "m.onnx"], "checkpoint not found"),
    (["--ckpt_path", "TRANSLATION", "--output", "m.onnx"], "cannot export a Seq2SeqTranslation model"),
    (["--ckpt_path", "CKPT", "--output", "."], "is a directory"),
    (["--ckpt_path", "CKPT", "--output", "exported/"], "--output exported/: is a directory; give a file name"),
])
def test_bad_options_are_one_line_errors(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = [str(FIXTURES / "sentiment.ckpt") if a == "CKPT" else str(FIXTURES / "translation.ckpt")
            if a == "TRANSLATION" else a for a in args]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("seqlab: error: ") and message in error and "\n" not in error, error
    assert not (tmp_path / "m.onnx").exists()


def test_export_over_its_own_checkpoint_is_refused_and_the_checkpoint_kept(tmp_path, capsys):
    checkpoint = tmp_path / "model.ckpt"
    shutil.copy(FIXTURES / "sentiment.ckpt", checkpoint)
    before = checkpoint.read_bytes()
    with pytest.raises(SystemExit) as exit_:
        main(["--ckpt_path", str(checkpoint), "--output", str(tmp_path / "." / "model.ckpt")])
    assert exit_.value.code == 2
    assert "is the checkpoint (--ckpt_path); give another file name" in capsys.readouterr().err
    assert checkpoint.read_bytes() == before and not sidecar_path(checkpoint).exists()


def test_a_bad_sidecar_or_thread_count_is_a_one_line_error(tmp_path):
    model = tmp_path / "model.onnx"
    for text, message in (("{not json", r"model.onnx.json:1: not JSON \(Expecting property name"),
                          ('["model.ckpt"]', r"model.onnx.json: names no checkpoint"),
                          ('{"checkpoint": 5}', r"model.onnx.json: names no checkpoint")):
        sidecar_path(model).write_text(text, encoding="utf-8")
        with pytest.raises(SeqlabError, match=message):
            OnnxPredictor(model)
    with pytest.raises(SeqlabError, match=r"threads must be a whole number of at least 1 .*got '2'"):
        OnnxSession(model, threads="2")


def test_onnx_predictor_without_a_checkpoint_says_so(tmp_path):
    graph = graph_of(VARIANTS["gru_crf_without_chars"][0]())
    FORMATS["onnx"].write(graph, tmp_path / "model.onnx")
    with pytest.raises(SeqlabError, match="no sidecar model.onnx.json"):
        OnnxPredictor(tmp_path / "model.onnx")
    with pytest.raises(SeqlabError, match="do not fit the checkpoint's model"):
        OnnxPredictor(tmp_path / "model.onnx", FIXTURES / "ner.ckpt")  # exported without char ids
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    with pytest.raises(SeqlabError, match="cannot load the ONNX model"):
        OnnxPredictor(tmp_path / "broken.onnx", FIXTURES / "ner.ckpt")


def test_export_refuses_a_transformer_word_embedding_inside_the_network():
    """The transformer embedding sits in the task's network (``task.model.body.embedder``), not on the task."""
    task = TokenTagging(vocab_size=20, labels=["O", "B-PER", "I-PER"], transformer_spec={"layers": 2, "hidden_size": 8})
    with pytest.raises(SeqlabError, match="cannot export a TokenTagging model with a transformer word embedding"):
        graph_of(task)


def test_readme_export_example_runs(tmp_path, monkeypatch, capsys):
    readme = (repo_root() / "README.md").read_text()
    section = readme[readme.index("## Export"):]
    section = section[:section.index("\n## ", 1)]
    command = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    assert "seqlab export --ckpt_path" in command and "--format onnx" in command
    run_readme_python("## Export", "export", FIXTURES / "ner.ckpt", tmp_path, monkeypatch)
    printed = capsys.readouterr().out
    assert "'type':" in printed and "'confidence':" in printed


@pytest.mark.slow
def test_export_speed_benchmark_writes_rows(tmp_path, conll_slice):
    root = data_root(tmp_path, "ner/conll2003/iob2", conll_slice)
    out = tmp_path / "export_speed.jsonl"
    rows = benchmark("export_speed").main([*TINY, "--batch1-sentences", "5", "--data", str(root), "--json", str(out)])
    read_rows(out, {"model_latency_p50_batch1", "model_latency_p99_batch1", "model_tokens_per_s_batch1",
                    "model_tokens_per_s_batch32", "end_to_end_tokens_per_s_batch1", "end_to_end_tokens_per_s_batch32"})
    assert len(rows) == 6
