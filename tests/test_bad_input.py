"""Bad input is one line, never a traceback: each data module fed an empty, truncated (gzip cut in half), binary or
mis-encoded (Latin-1) training file, the speech module a bad audio or alignment file, each trainer duration or size
option a malformed value, and a broken ``--config`` file -> exit status 2 and exactly one ``seqlab: error: ...``
line (the last one on stderr) naming the file (and line) or the option.

The CLI runs in-process (``seqlab.cli.main``) to keep this file fast."""

from __future__ import annotations

import gzip
import random
import resource
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import yaml

from seqlab import SeqlabError
from seqlab.checkpoints import read_checkpoint
from seqlab.cli import main
from seqlab.config_checks import check_trainer_options
from tests.cli_helpers import CONFIGS
from tests.conftest import repo_root, require_shared_data

NER = str(CONFIGS / "ner" / "conll2003_bilstm_crf.yaml")
SENTIMENT = str(CONFIGS / "sentiment" / "sst2_bilstm.yaml")
TRANSLATION = str(CONFIGS / "translation" / "multi30k_de_en_bahdanau.yaml")
SPEECH = str(CONFIGS / "speech" / "timit_sample_bilstm.yaml")
#: a PNG file's first bytes: a binary file whose name says nothing
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00\x1f\xf3\xffa"
       b"\x00\x00\x00\x19tEXtSoftware\x00Adobe ImageReadyq\xc9e<\x00\x00\x00\x00IEND\xaeB`\x82")


@contextmanager
def memory_cap(extra_gib: float = 2.0):
    """At most ``extra_gib`` more address space while inside: a runaway (a loader looping on a batch size of -1)
    fails the test with a MemoryError instead of filling the shared machine's memory."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    size = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmSize:"))
    cap = size + int(extra_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def one_line_error(capsys, args: list[str]) -> str:
    """``seqlab ARGS`` in-process: exit status 2 and exactly one ``seqlab: error:`` line, the last one on stderr
    (Lightning's own notes, such as 'Seed set to 0', may come before it); returns that line."""
    with pytest.raises(SystemExit) as exited, memory_cap():
        main(args)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("seqlab: error:")]
    assert exited.value.code == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert len(errors) == 1 and lines[-1] == errors[0], err[-3000:]
    return errors[0]


def run_args(config: str, data: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["fit", "--config", config, "--data.init_args.path", str(data),
            "--data.init_args.cache_dir", str(tmp_path / "cache"), "--trainer.fast_dev_run", "1",
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path), *extra]


# ------------------------------------------------------------------------------------------ text data modules
def conll_sentences(count: int) -> list[str]:
    names = [("Peter", "B-PER"), ("Berlin", "B-LOC"), ("Siemens", "B-ORG"), ("German", "B-MISC")]
    lines = ["-DOCSTART- -X- -X- O", ""]
    for i in range(count):
        name, tag = names[i % len(names)]
        lines += [f"{name} NNP B-NP {tag}", "visits VBZ B-VP O", f"town{i} NN B-NP O", ". . O O", ""]
    return lines


def sst_rows(count: int) -> list[str]:
    words = ["a charming journey", "bleak and desperate", "often affecting", "no wit , only labored gags"]
    return ["sentence\tlabel"] + [f"{words[i % 4]} {i} \t{1 - i % 2}" for i in range(count)]


def sentences(language: str, count: int) -> list[str]:
    words = {"de": ["Ein Hund läuft .", "Zwei Männer spielen .", "Eine Frau singt ."],
             "en": ["A dog runs .", "Two men play .", "A woman sings ."]}[language]
    return [f"{words[i % 3]} {i}" for i in range(count)]


@dataclass
class TextTask:
    """A data module's config, a tiny corpus (file name -> lines) and its training file; ``latin1_line`` (1-based)
    is a line of the training file that a mis-encoded copy holds in Latin-1 (it has a non-ASCII character)."""

    config: str
    corpus: dict[str, list[str]]
    train: str
    latin1_line: int
    extra: tuple[str, ...] = ()


TEXT_TASKS = {
    "ner": TextTask(NER, {"train.txt": conll_sentences(40), "valid.txt": conll_sentences(3),
                          "test.txt": conll_sentences(3)}, "train.txt", 13),
    "sentiment": TextTask(SENTIMENT, {"train.tsv": sst_rows(60), "dev.tsv": sst_rows(6), "test.tsv": sst_rows(6)},
                          "train.tsv", 8),
    "translation": TextTask(TRANSLATION, {
        **{f"{split}.{lang}": sentences(lang, count) for split, count in (("train", 60), ("val", 4),
                                                                       ("test_2016_flickr", 4))
           for lang in ("de", "en")},
    }, "train.de", 8, ("--data.init_args.max_vocab_size", "300", "--data.init_args.on_bad_row", "error")),
}
# the line that goes out in Latin-1 must hold a non-ASCII character
TEXT_TASKS["ner"].corpus["train.txt"][12] = "Müller NNP B-NP B-PER"
TEXT_TASKS["sentiment"].corpus["train.tsv"][7] = "a café crème of a film \t1"
assert "ä" in TEXT_TASKS["translation"].corpus["train.de"][7]


def spoiled(kind: str, good: bytes, line: int) -> tuple[bytes, bool]:
    """The bytes of a ``kind`` file made from the good file ``good`` -> (bytes, whether they are gzip)."""
    if kind == "empty":
        return b"", False
    if kind == "truncated_gzip":
        packed = gzip.compress(good, mtime=0)
        return packed[: len(packed) // 2], True
    if kind == "binary":  # a PNG image's header, then noise
        return PNG + random.Random(0).randbytes(4096), False
    assert kind == "latin1"
    lines = good.decode("utf-8").split("\n")
    lines[line - 1] = lines[line - 1].encode("latin-1").decode("utf-8", "surrogateescape")
    return "\n".join(lines).encode("utf-8", "surrogateescape"), False


BAD_FILES = ["empty", "truncated_gzip", "binary", "latin1"]


def write_corpus(folder: Path, corpus: dict[str, list[str]]) -> Path:
    folder.mkdir(parents=True)
    for name, lines in corpus.items():
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("kind", BAD_FILES)
@pytest.mark.parametrize("task", sorted(TEXT_TASKS))
def test_bad_training_file_is_one_line_naming_it(task, kind, tmp_path, capsys):
    spec = TEXT_TASKS[task]
    folder = write_corpus(tmp_path / "data", spec.corpus)
    train = folder / spec.train
    content, packed = spoiled(kind, train.read_bytes(), spec.latin1_line)
    if packed:  # a gzip file is named .gz, like a user's
        train.unlink()
        train = train.with_name(train.name + ".gz")
    train.write_bytes(content)
    line = one_line_error(capsys, run_args(spec.config, folder, tmp_path, *spec.extra))
    where = f"{train}:{spec.latin1_line}" if kind == "latin1" else str(train)
    assert where in line, line


# ------------------------------------------------------------------------------------------------ speech
@pytest.fixture(scope="module")
def timit_slice(tmp_path_factory) -> Path:
    """Two train, one dev and one test utterance of the real TIMIT sample, with the table and the phone map."""
    source = require_shared_data("speech/timit_sample")
    target = tmp_path_factory.mktemp("timit_slice")
    lines = (source / "utterances.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    keep = [r["utt_id"] for split, count in (("train", 2), ("dev", 1), ("test", 1))
            for r in [row for row in rows if row["split"] == split][:count]]
    (target / "audio").mkdir()
    (target / "phn").mkdir()
    for utterance in keep:
        shutil.copy(source / "audio" / f"{utterance}.flac", target / "audio")
        shutil.copy(source / "phn" / f"{utterance}.phn", target / "phn")
    (target / "utterances.tsv").write_text(
        "\n".join([lines[0]] + [line for line in lines[1:] if line.split("\t")[0] in keep]) + "\n", encoding="utf-8")
    shutil.copy(source / "phones.60-48-39.map", target)
    return target


SPEECH_TINY = ("--model.init_args.encoder.init_args.hidden_size", "16",
               "--model.init_args.encoder.init_args.num_layers", "1")


def speech_copy(timit_slice: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "timit"
    shutil.copytree(timit_slice, folder)
    return folder


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_utterance_table_is_one_line_naming_it(kind, timit_slice, tmp_path, capsys):
    folder = speech_copy(timit_slice, tmp_path)
    table = folder / "utterances.tsv"
    rows = table.read_text(encoding="utf-8").splitlines()
    rows[1] = rows[1].rsplit("\t", 1)[0] + "\tshe had your dark suit in greasy wash water all year café"
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    content, _ = spoiled(kind, table.read_bytes(), 2)  # a gzip table keeps its name: recognised by content
    table.write_bytes(content)
    line = one_line_error(capsys, run_args(SPEECH, folder, tmp_path, *SPEECH_TINY))
    assert (f"{table}:2" if kind == "latin1" else str(table)) in line, line


@pytest.mark.parametrize("kind", ["empty", "truncated", "not_audio"])
def test_bad_audio_file_is_one_line_naming_it(kind, timit_slice, tmp_path, capsys):
    folder = speech_copy(timit_slice, tmp_path)
    audio = sorted((folder / "audio").glob("*.flac"))[0]
    content = {"empty": b"", "truncated": audio.read_bytes()[: audio.stat().st_size // 2],
               "not_audio": b"RIFF? no: this is text\n"}[kind]
    audio.write_bytes(content)
    line = one_line_error(capsys, run_args(SPEECH, folder, tmp_path, *SPEECH_TINY))
    assert str(audio) in line, line


def test_binary_alignment_file_is_one_line_naming_it(timit_slice, tmp_path, capsys):
    folder = speech_copy(timit_slice, tmp_path)
    alignment = sorted((folder / "phn").glob("*.phn"))[0]
    alignment.write_bytes(PNG + random.Random(1).randbytes(2048))
    line = one_line_error(capsys, run_args(SPEECH, folder, tmp_path, *SPEECH_TINY))
    assert str(alignment) in line, line


# -------------------------------------------------------------------------------------------- options
@pytest.fixture(scope="module")
def conll_folder(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("options") / "conll", TEXT_TASKS["ner"].corpus)


#: option, malformed value, what the line names (checked before any data is read or model built)
MALFORMED_OPTIONS = [
    *[("--trainer.max_time", value, "--trainer.max_time: expected DD:HH:MM:SS")
      for value in ("abc", "1:2", "00:00:-1:00", "{days: x}")],
    ("--trainer.max_epochs", "-5", "--trainer.max_epochs:"),
    ("--trainer.max_epochs", "abc", "--trainer.max_epochs: expected int"),
    ("--trainer.max_steps", "abc", "--trainer.max_steps: expected int"),
    *[("--trainer.val_check_interval", value, "--trainer.val_check_interval:") for value in ("0", "-1", "abc")],
    *[("--trainer.limit_train_batches", value, "--trainer.limit_train_batches:") for value in ("-1", "2.5")],
    ("--trainer.accumulate_grad_batches", "0", "--trainer.accumulate_grad_batches:"),
    ("--trainer.precision", "17", "--trainer.precision: expected one of"),
    ("--trainer.devices", "abc", "--trainer.devices:"),
    ("--trainer.log_every_n_steps", "-1", "--trainer.log_every_n_steps:"),
    ("--data.init_args.batch_size", "abc", "--data.batch_size: expected int"),
]


@pytest.mark.parametrize("option,value,expected", MALFORMED_OPTIONS, ids=lambda v: str(v)[:24])
def test_malformed_option_is_one_line_naming_it(option, value, expected, conll_folder, tmp_path, capsys):
    line = one_line_error(capsys, run_args(NER, conll_folder, tmp_path, option, value))
    assert line.startswith(f"seqlab: error: {expected}"), line
    assert "{" in value or value in line, line


def test_trainer_option_checks_accept_what_lightning_accepts_and_refuse_the_rest():
    """The same checks without the CLI: every form Lightning accepts passes (and every config's trainer section),
    the values it refuses, or misuses (0 divides by zero mid-epoch), are one SeqlabError naming the option."""
    accepted = {
        "max_time": ["00:00:38:00", "1:00:00:00", {"hours": 1, "minutes": 30}, {"days": 0.5}, timedelta(hours=2)],
        "max_epochs": [-1, 0, 60], "max_steps": [-1, 100], "min_epochs": [0, 3],
        "val_check_interval": [1, 200, 0.25, 1.0, "00:00:10:00", {"minutes": 5}],
        "limit_train_batches": [0, 10, 0.0, 0.5, 1.0], "limit_val_batches": [2], "overfit_batches": [0.0, 3],
        "check_val_every_n_epoch": [1, 5], "accumulate_grad_batches": [1, 4], "log_every_n_steps": [0, 50],
        "num_sanity_val_steps": [-1, 0, 2], "gradient_clip_val": [0, 5.0], "fast_dev_run": [True, False, 1],
        "num_nodes": [1], "devices": ["auto", 1, -1, "-1", "2", "0,1", "1,", [0, 1]],
    }
    for option, values in accepted.items():
        for value in values:
            check_trainer_options({option: value})
    for config in sorted(CONFIGS.rglob("*.yaml")):
        check_trainer_options(yaml.safe_load(config.read_text(encoding="utf-8")).get("trainer") or {})
    refused = {
        "max_time": ["1h", "00:00:60", {"dayz": 1}, {"days": -1}, {}, 5],
        "max_epochs": [-2], "min_epochs": [-1], "max_steps": [-5], "min_steps": [-3],
        "val_check_interval": [0, 1.5, -0.5, "1h"], "check_val_every_n_epoch": [0],
        "limit_val_batches": [-0.5, -1], "overfit_batches": [1.5], "accumulate_grad_batches": [-1],
        "num_sanity_val_steps": [-2], "gradient_clip_val": [-1.0], "reload_dataloaders_every_n_epochs": [-1],
        "fast_dev_run": [-1], "num_nodes": [0], "devices": [0, "0", -2, [], "gpu"],
    }
    for option, values in refused.items():
        for value in values:
            with pytest.raises(SeqlabError, match=f"^--trainer.{option}: expected "):
                check_trainer_options({option: value})


def test_malformed_max_time_in_a_config_file_is_one_line(conll_folder, tmp_path, capsys):
    config = tmp_path / "trainer.yaml"
    config.write_text("trainer:\n  max_time: 1h\n", encoding="utf-8")
    line = one_line_error(capsys, run_args(NER, conll_folder, tmp_path, "--config", str(config)))
    assert line.startswith("seqlab: error: --trainer.max_time: expected DD:HH:MM:SS") and "'1h'" in line, line


@pytest.mark.parametrize("option,value", [
    ("--data.init_args.batch_size", "0"), ("--data.init_args.batch_size", "-3"),
    ("--data.init_args.eval_batch_size", "-1"), ("--data.init_args.max_tokens", "0"),
])
def test_malformed_data_size_is_one_line_naming_it(option, value, conll_folder, tmp_path, capsys):
    line = one_line_error(capsys, run_args(NER, conll_folder, tmp_path, option, value))
    assert option.rsplit(".", 1)[1] in line, line


def test_option_lightning_refuses_is_one_line_naming_it(conll_folder, tmp_path, capsys):
    """Refused by Lightning's Trainer itself, once data and model are built: still one line."""
    line = one_line_error(capsys, run_args(NER, conll_folder, tmp_path, "--trainer.accelerator", "tpux"))
    assert line.startswith("seqlab: error: --trainer.accelerator:") and "tpux" in line, line


@pytest.mark.parametrize("options,expected", [
    (["--model.init_args.optimizer.init_args.lr", "-1"], "--model.optimizer: Invalid learning rate: -1"),
    (["--model.init_args.lr_scheduler", "seqlab.tasks.InverseTimeDecay",
      "--model.init_args.lr_scheduler.init_args.decay", "-0.5"],
     "--model.lr_scheduler: InverseTimeDecay: decay must be >= 0, got -0.5"),
])
def test_value_the_optimizer_or_its_schedule_refuses_is_one_line_naming_it(options, expected, conll_folder, tmp_path,
                                                                          capsys):
    """Checked by torch when Lightning builds them, after data and model: still one line."""
    line = one_line_error(capsys, run_args(NER, conll_folder, tmp_path, *options))
    assert line.startswith(f"seqlab: error: {expected}"), line


@pytest.mark.parametrize("options,expected", [
    (["--model.init_args.attention", "seqlab.models.MultiHeadSelfAttention",
      "--model.init_args.attention.init_args.num_heads", "3"],
     "--model (MultiHeadSelfAttention): its input_size 512 (the encoder's output size) is not divisible by num_heads 3"),
    (["--model.init_args.embedding_dropout", "1.5"],
     "--model (TokenEmbedder): a dropout probability must be between 0 and 1, got 1.5"),
    (["--model.init_args.encoder.init_args.hidden_size", "0"], "--model (BiLSTMEncoder): hidden_size must be"),
    (["--model.init_args.encoder.init_args.num_layers", "0"],
     "--model (BiLSTMEncoder): num_layers must be at least 1, got 0"),
    (["--model.init_args.head.init_args.dropout", "-0.5"],
     "--model (CRFTagger): a dropout probability must be between 0 and 1, got -0.5"),
    (["--model.init_args.word_embedding", "null"],
     "--model (TokenEmbedder): the model needs a word_embedding, a transformer"),
    (["--model.init_args.language_model", "seqlab.models.BidirectionalLanguageModel",
      "--model.init_args.language_model.init_args.weight", "0"],
     "--model: BidirectionalLanguageModel weight must be positive, got 0.0"),
], ids=["heads", "embedding-dropout", "hidden-size", "layers", "head-dropout", "no-words", "lm-weight"])
def test_value_a_model_part_refuses_is_one_line_naming_it(options, expected, conll_folder, tmp_path, capsys):
    """Sizes and probabilities that the model's parts (or torch under them) refuse while the task is built."""
    line = one_line_error(capsys, run_args(NER, conll_folder, tmp_path, *options))
    assert expected in line, line


#: task, options, the whole error line after "seqlab: error: ": values that used to fail later with a traceback (an
#: empty word or text reaching the encoder, a division by zero or an assertion in the feature extractor, torch's
#: cross-entropy or DataLoader refusing them on the first batch)
REFUSED_VALUES = [
    ("ner", ["--data.init_args.max_word_length", "0"], "--data.max_word_length must be at least 1 character, got 0"),
    ("ner", ["--data.init_args.num_workers", "-1"],
     "--data.num_workers must be at least 0 (0 loads in the main process), got -1"),
    ("ner", ["--model.init_args.checkpoint_every_n_steps", "-1"],
     "--model.checkpoint_every_n_steps must be at least 0 (0: last-step.ckpt at epoch ends only), got -1"),
    ("ner", ["--trainer.callbacks+=seqlab.callbacks.EpochWeightAveraging", "--trainer.callbacks.start_epoch", "-1"],
     "--trainer.callbacks: EpochWeightAveraging start_epoch must be at least 0, got -1"),
    ("ner", ["--model.init_args.document_pooling", "seqlab.models.DocumentEmissionPooling",
             "--model.init_args.document_pooling.init_args.weight", "2"],
     "--model.document_pooling weight must be a number in [0, 1], got 2.0"),
    ("sentiment", ["--data.init_args.max_length", "0"],
     "--data.max_length must be at least 1 token (or null: no limit), got 0"),
    ("translation", ["--data.init_args.max_length", "0"],
     "--data.max_length must be at least 1 token (or null: no limit), got 0"),
    ("translation", ["--data.init_args.max_vocab_size", "4"], "--data.max_vocab_size must leave room for tokens "
     "besides the 4 special ones (<pad>, <unk>, <s>, </s>), got 4"),
    ("translation", ["--data.init_args.target_lang", "de"], "--data.source_lang and --data.target_lang are both 'de'"),
    ("translation", ["--model.init_args.label_smoothing", "1.5"],
     "--model (Seq2SeqNetwork): label_smoothing must be between 0 and 1, got 1.5"),
    ("speech", ["--data.init_args.sample_rate", "0"], "--data.sample_rate must be at least 1 Hz, got 0"),
    ("speech", ["--data.init_args.num_mel_bins", "3"],
     "--data.num_mel_bins must be at least 4 for fbank features, got 3"),
    ("speech", ["--data.init_args.frame_length_ms", "0.1"],
     "--data.frame_length_ms 0.1 is 1 samples at 16000 Hz; a frame needs at least 2"),
    ("speech", ["--data.init_args.frame_shift_ms", "0"],
     "--data.frame_shift_ms 0.0 is 0 samples at 16000 Hz; frames must move by at least 1"),
    ("speech", ["--data.init_args.deltas", "3"], "--data.deltas must be 0, 1 or 2, got 3"),
    ("speech", ["--model.init_args.head.init_args.label_smoothing", "-0.1"],
     "--model (FrameClassifier): label_smoothing must be between 0 and 1, got -0.1"),
    ("translation", ["--model.init_args.search", "seqlab.models.BeamSearch",
                     "--model.init_args.search.init_args.max_length_ratio", "-1"],
     "BeamSearch: max_length_ratio must be at least 0, got -1.0"),
    # a class path that does not resolve, or a plain value where a part (a class) belongs: the innermost reason
    ("sentiment", ["--data.init_args.dataset", "seqlab.data.Streaming"],
     "--data.dataset: cannot use seqlab.data.Streaming: module 'seqlab.data' has no attribute 'Streaming'"),
    ("sentiment", ["--model.init_args.encoder", "seqlab.models.NoSuchEncoder"],
     "--model.encoder: module 'seqlab.models' has no attribute 'NoSuchEncoder' (got 'seqlab.models.NoSuchEncoder')"),
    ("translation", ["--model.init_args.beam_search.init_args.length_penalty", "-3"],
     "--model.beam_search.length_penalty: expected a LengthPenalty (class_path and init_args) or null, got '-3'"),
]


@pytest.mark.parametrize("task,options,expected", REFUSED_VALUES,
                         ids=lambda v: str(v[-1] if isinstance(v, list) else v))
def test_value_refused_before_training_is_one_line_naming_it(task, options, expected, timit_slice, tmp_path, capsys):
    if task == "speech":
        args = run_args(SPEECH, speech_copy(timit_slice, tmp_path), tmp_path, *SPEECH_TINY, *options)
    else:
        spec = TEXT_TASKS[task]
        args = run_args(spec.config, write_corpus(tmp_path / "data", spec.corpus), tmp_path, *spec.extra, *options)
    assert one_line_error(capsys, args) == f"seqlab: error: {expected}"


@pytest.mark.parametrize("options,expected", [
    (["--model.init_args.objectives.ner.init_args.loss_weight", "-1"],
     "--model.objectives (SpanTagging): loss_weight must be positive, got -1.0"),
    (["--model.init_args.objectives.sentiment.init_args.class_weights", "[1.0, -2.0]"],
     "--model (ClassificationHead): class_weights must be at least 0 and not all 0, got [1.0, -2.0]"),
], ids=["loss-weight", "class-weights"])
def test_value_a_multitask_objective_refuses_is_one_line_naming_it(options, expected, tmp_path, capsys):
    """An objective is built by jsonargparse inside the task's dictionary: its error used to come wrapped in two
    tracebacks."""
    ner = write_corpus(tmp_path / "ner", TEXT_TASKS["ner"].corpus)
    sentiment = write_corpus(tmp_path / "sst", TEXT_TASKS["sentiment"].corpus)
    args = ["fit", "--config", str(CONFIGS / "multitask" / "conll2003_ner_sst2.yaml"),
            "--data.init_args.tasks.ner.init_args.path", str(ner),
            "--data.init_args.tasks.sentiment.init_args.path", str(sentiment), "--trainer.fast_dev_run", "1",
            "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path), *options]
    assert one_line_error(capsys, args) == f"seqlab: error: {expected}"


@pytest.mark.parametrize("subcommand,options,expected", [
    ("test", ["--config", SENTIMENT], "{ckpt} holds a TokenTagging model; the options build a SentenceClassification"),
    ("test", ["--model.init_args.encoder.init_args.num_layers", "3"],
     "{ckpt}: its weights do not fit the model these options build (model.body.encoder.forward_layers.1.weight_ih_l0 "
     "is missing there); leave out the options that change the model's parts or sizes"),
    ("fit", ["--config", NER, "--trainer.fast_dev_run", "1"],
     "{ckpt}: its weights do not fit the model these options build (model.body.embedder.words.embedding.weight is "
     "(1575, 16) there and (1575, 100) here, and 18 more differ); leave out the options that change the model's "
     "parts or sizes"),
], ids=["other-task", "more-layers", "other-sizes"])
def test_checkpoint_the_options_cannot_hold_is_one_line_naming_it(subcommand, options, expected, conll_folder,
                                                                    tmp_path, capsys):
    """Weights are loaded after data and model are built, by Lightning (torch lists every mismatch otherwise)."""
    checkpoint = repo_root() / "tests" / "fixtures" / "e463e89" / "ner.ckpt"
    data = conll_folder if "--config" not in options or NER in options else write_corpus(
        tmp_path / "sst", TEXT_TASKS["sentiment"].corpus)
    args = [subcommand, "--ckpt_path", str(checkpoint), *options, "--data.init_args.path", str(data),
            "--data.init_args.cache_dir", str(tmp_path / "cache"), "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)]
    assert one_line_error(capsys, args) == "seqlab: error: " + expected.format(ckpt=f"--ckpt_path {checkpoint}")


@pytest.mark.parametrize("subcommand,option,where,expected", [
    ("predict", "--prediction_writer.output_path", "folder", "is a folder; give a file"),
    ("predict", "--prediction_writer.output_path", "under-file", "{file} is a file, not a folder"),
    ("test", "--results_path", "folder", "is a folder; give a file"),
    ("test", "--data.init_args.cache_dir", "file", "is a file; give a folder"),
    ("fit", "--trainer.default_root_dir", "file", "is a file; give a folder"),
    ("fit", "--trainer.logger.init_args.save_dir", "under-file", "{file} is a file, not a folder"),
], ids=lambda v: str(v))
def test_output_path_of_the_wrong_kind_is_one_line_before_anything_runs(subcommand, option, where, expected,
                                                                        conll_folder, tmp_path, capsys):
    """These failed with an OSError traceback when the run wrote: after training, testing or predicting."""
    checkpoint = repo_root() / "tests" / "fixtures" / "e463e89" / "ner.ckpt"
    file = tmp_path / "notes.txt"
    file.write_text("a file\n", encoding="utf-8")
    path = {"folder": tmp_path, "file": file, "under-file": file / "out" / "x.jsonl"}[where]
    args = [subcommand, "--trainer.enable_progress_bar", "false", "--data.init_args.path", str(conll_folder)]
    if subcommand == "fit":
        args += ["--config", NER, "--data.init_args.path", str(conll_folder), "--trainer.max_epochs", "1"]
    else:
        args += ["--ckpt_path", str(checkpoint), "--trainer.logger", "false"]
    if subcommand == "predict":
        args += ["--data.init_args.predict_path", str(checkpoint.with_name("ner_input.txt"))]
    line = one_line_error(capsys, [*args, option, str(path)])
    shown = option.replace(".init_args.", ".") if option.startswith("--data") else option
    assert line == f"seqlab: error: {shown} {path}: {expected.format(file=file)}"


def test_checkpoint_error_says_whether_the_file_was_cut_short_or_is_no_checkpoint(tmp_path):
    model = torch.nn.Linear(2, 2)
    whole = tmp_path / "whole.ckpt"
    torch.save({"state_dict": model.state_dict()}, whole)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(whole.read_bytes()[:200])
    text = tmp_path / "notes.ckpt"
    text.write_text("epoch 3, val f1 0.9\n", encoding="utf-8")
    assert read_checkpoint(whole)["state_dict"].keys() == model.state_dict().keys()
    with pytest.raises(SeqlabError) as error:
        read_checkpoint(cut)
    assert str(error.value) == f"cannot read checkpoint {cut}: cut short or damaged (a zip archive without its end)"
    with pytest.raises(SeqlabError) as error:
        read_checkpoint(text)
    assert str(error.value) == (f"cannot read checkpoint {text}: not a checkpoint (torch.save writes zip archives, "
                                "and this file is none)")


@pytest.mark.parametrize("kind,content,expected", [
    ("missing", None, "no such file"),
    ("empty", b"", "the config file is empty"),
    ("syntax", b"trainer:\n  max_epochs: [1\n", "invalid YAML"),
    ("binary", PNG, ":1: not UTF-8 text"),
    ("latin1", "trainer:\n  max_epochs: 3\n# Müller\n".encode("latin-1"), ":3: not UTF-8 text"),
    ("list", b"- trainer\n", "expected a mapping of options"),
])
def test_bad_config_file_is_one_line_naming_it(kind, content, expected, conll_folder, tmp_path, capsys):
    config = tmp_path / f"{kind}.yaml"
    if content is not None:
        config.write_bytes(content)
    line = one_line_error(capsys, run_args(NER, conll_folder, tmp_path, "--config", str(config)))
    assert str(config) in line and expected in line, line
