"""MultiTaskData: one word vocabulary over the tasks, sampling schemes and the training draw sequence (seeded,
identical on every rank, advancing by epoch), batches tagged with their task, evaluation over every task, the
checkpoint round trip, plain-label columns, one-line errors."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from seqlab import SeqlabError
from seqlab.data_modules import (
    MultiTaskData,
    Proportional,
    SequenceDataModule,
    Temperature,
    TextClassificationData,
    TokenClassificationData,
    Uniform,
)
from seqlab.data_modules.multitask import TaskSampledLoader, step_counts
from seqlab.encoders import SubwordEncoder
from seqlab.tagging import iob1_to_bio
from tests.conftest import require_shared_data, write_conll_slice


def ner_data(path: Path, cache: Path, **kwargs) -> TokenClassificationData:
    return TokenClassificationData(path=str(path), cache_dir=str(cache), **{"batch_size": 32, **kwargs})


def sst_data(path: Path, cache: Path, **kwargs) -> TextClassificationData:
    return TextClassificationData(path=str(path), name=None, cache_dir=str(cache), **{"batch_size": 64, **kwargs})


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def ner_sst(conll_slice, sst2_slice, cache) -> MultiTaskData:
    """NER (1,000 CoNLL-2003 sentences) + SST-2 (4,000 phrases), encoders fitted."""
    data = MultiTaskData({"ner": ner_data(conll_slice, cache), "sst": sst_data(sst2_slice, cache)}, seed=7)
    data.prepare_encoders()
    return data


def served(loader, epoch: int) -> list[tuple[str, tuple[int, ...]]]:
    """(task, example indices) of each step of ``epoch``."""
    loader.set_epoch(epoch)
    return [(batch["task"], tuple(batch["index"].tolist())) for batch in loader]


# ----------------------------------------------------------------------------- one vocabulary
def test_one_vocabulary_extends_the_first_tasks_and_every_task_encodes_with_it(ner_sst, conll_slice, sst2_slice,
                                                                                cache):
    ner, sst = ner_data(conll_slice, cache), sst_data(sst2_slice, cache)
    ner.prepare_encoders()
    sst.prepare_encoders()
    joint = ner_sst.words
    assert joint.itos[:len(ner.words)] == ner.words.itos  # the first task's ids unchanged
    assert sorted(joint.itos) == sorted(set(ner.words.itos) | set(sst.words.itos))  # each word once
    assert ner_sst.vocab_size == len(joint) > len(ner.words) and ner_sst.padding_idx == 0
    assert ner_sst.char_vocab_size == len(ner.chars)  # SST has no characters
    assert ner_sst.task_labels == {"ner": ner.labels, "sst": sst.labels}
    # what each task's encoded training data maps each token to: one id per word, across tasks
    ids = {}
    for name in ("ner", "sst"):
        encoded = ner_sst.tasks[name].encoded("train")
        pairs = {(token, i) for tokens, token_ids in zip(encoded.columns["tokens"], encoded.columns["token_ids"])
                 for token, i in zip(tokens, token_ids)}
        ids[name] = dict(pairs)
        assert len(ids[name]) == len(pairs)  # a token has one id
        assert all(joint.itos[i] == token for token, i in pairs)  # ids of the joint vocabulary, no UNK
    common = ids["ner"].keys() & ids["sst"].keys()
    assert len(common) > 300 and all(ids["ner"][word] == ids["sst"][word] for word in common)


def test_char_vocabulary_joins_the_tasks_with_characters_and_is_0_without(conll_slice, sst2_slice, tmp_path):
    (tmp_path / "names").mkdir()
    (tmp_path / "names" / "train.txt").write_text("Müller NNP B-PER\nsaid VBD O\n\nStraße NN O\n")
    conll, names = ner_data(conll_slice, tmp_path), ner_data(tmp_path / "names", tmp_path, lowercase=True)
    own = ner_data(conll_slice, tmp_path)
    own.prepare_encoders()
    data = MultiTaskData({"conll": conll, "names": names, "sst": sst_data(sst2_slice, tmp_path)})
    data.prepare_encoders()
    assert conll.chars is names.chars is data.chars and conll.words is names.words is data.words  # one of each
    assert data.chars.itos[:len(own.chars)] == own.chars.itos  # the first task's character ids unchanged
    assert {"ü", "ß"} <= set(data.chars.itos) - set(own.chars.itos)
    assert data.char_vocab_size == len(own.chars) + 2  # the other letters of the names are CoNLL's too
    assert "müller" in data.words.stoi and data.words.index("Müller") == data.words.unk_index  # the first's: cased
    words_only = MultiTaskData({"a": sst_data(sst2_slice, tmp_path), "b": sst_data(sst2_slice, tmp_path)})
    words_only.prepare_encoders()
    assert words_only.char_vocab_size == 0 and words_only.chars is None


# ----------------------------------------------------------------------------- checkpoint round trip
TRAIN_TSV = "sentence\tlabel\nEU rejects a funny movie\t1\ndull and lifeless\t0\nthe best film\t1\n"


def test_checkpoint_round_trip_restores_every_task_without_reading_data(conll_dir, tmp_path):
    """The options a checkpoint records (as the CLI records them) and the state: the rebuilt module encodes as the
    trained one, with the training files gone."""
    sst_dir = tmp_path / "sst"
    sst_dir.mkdir()
    (sst_dir / "train.tsv").write_text(TRAIN_TSV)
    options = {
        "_class_path": "seqlab.data_modules.MultiTaskData",
        "tasks": {
            "ner": {"class_path": "seqlab.data_modules.TokenClassificationData",
                    "init_args": {"path": str(conll_dir), "tag_column": 3, "cache_dir": str(tmp_path / "cache"),
                                  "pre_tokenizer": {"class_path": "seqlab.encoders.TreebankPreTokenizer"}}},
            "sst": {"class_path": "seqlab.data_modules.TextClassificationData",
                    "init_args": {"path": str(sst_dir), "name": None, "cache_dir": str(tmp_path / "cache")}},
        },
        "sampling": {"class_path": "seqlab.data_modules.Temperature", "init_args": {"temperature": 3.0}},
        "seed": 5,
    }
    trained = SequenceDataModule.from_checkpoint({"datamodule_hyper_parameters": options})
    assert isinstance(trained, MultiTaskData) and not trained.encoders_ready
    trained.prepare_encoders()
    saved = tmp_path / "data.ckpt"
    torch.save({"datamodule_hyper_parameters": options, "MultiTaskData": trained.state_dict()}, saved)
    shutil.rmtree(conll_dir)
    shutil.rmtree(sst_dir)

    restored = SequenceDataModule.from_checkpoint(torch.load(saved, weights_only=True))
    assert restored.encoders_ready and restored.words == trained.words and restored.chars == trained.chars
    assert restored.tasks["ner"].words is restored.tasks["sst"].words is restored.words
    assert restored.task_labels == trained.task_labels and restored.sampling.temperature == 3.0
    texts = ["EU rejects German lamb, says Thursday's call", "a funny movie nobody saw"]
    for name in ("ner", "sst"):
        before, after = (m.tasks[name].encoded_inputs(texts).columns for m in (trained, restored))
        assert list(after["token_ids"]) == list(before["token_ids"]) and list(after["tokens"]) == list(before["tokens"])
    assert restored.tasks["ner"].encoded_inputs(texts).columns["tokens"][0][3:5] == ["lamb", ","]  # Treebank


# ----------------------------------------------------------------------------- sampling
def test_sampling_probabilities_follow_their_formulas():
    sizes = [1, 4, 16]
    assert np.allclose(Temperature(2.0).probabilities(sizes), [1 / 7, 2 / 7, 4 / 7])  # sqrt: 1, 2, 4
    assert np.allclose(Proportional().probabilities(sizes), [1 / 21, 4 / 21, 16 / 21])
    assert np.allclose(Uniform().probabilities(sizes), [1 / 3] * 3)
    assert np.allclose(Temperature(1e9).probabilities(sizes), Uniform().probabilities(sizes))
    assert np.allclose(Temperature(1.0).probabilities(sizes), Proportional().probabilities(sizes))


def test_step_counts_are_floor_or_ceil_and_exact_in_the_mean():
    p = np.array([0.1, 0.25, 0.65])
    offsets = (np.arange(1000) + 0.5) / 1000  # the offset's distribution, evenly
    counts = np.stack([step_counts(p, 13, u) for u in offsets])
    assert (counts.sum(axis=1) == 13).all()
    assert ((counts == np.floor(p * 13)) | (counts == np.ceil(p * 13))).all()
    assert np.allclose(counts.mean(axis=0), p * 13, atol=2e-3)
    assert (step_counts(np.array([3, 5, 2]) / 10, 10, 0.999) == [3, 5, 2]).all()  # integer shares are exact


@pytest.mark.parametrize("sampling", [Proportional(), Uniform(), Temperature(2.0)],
                         ids=lambda sampling: type(sampling).__name__)
def test_task_frequencies_over_many_epochs_match_the_scheme(ner_sst, sampling):
    loader = TaskSampledLoader(ner_sst._loaders("train"), sampling, steps=50, seed=11)
    sizes = np.array([32, 63])  # 1,000 sentences / 32, 4,000 phrases / 64: each task's batches
    assert [len(child) for child in loader.loaders.values()] == list(sizes)
    expected = sizes ** (1 / sampling.temperature) / (sizes ** (1 / sampling.temperature)).sum()
    assert np.allclose(loader.probabilities, expected)
    orders = [loader.order(epoch) for epoch in range(400)]
    assert all(len(order) == 50 == len(loader) for order in orders)
    frequencies = np.bincount(np.concatenate(orders), minlength=2) / (400 * 50)
    assert np.abs(frequencies - expected).max() < 0.005
    assert all((np.bincount(order, minlength=2) == loader.counts(e)).all() for e, order in enumerate(orders[:20]))


def test_draws_are_identical_on_every_rank_and_shard_the_batches(ner_sst):
    by_rank = []
    for rank in (0, 1):
        loaders = ner_sst._loaders("train")
        for child in loaders.values():
            child.batch_sampler.num_replicas, child.batch_sampler.rank = 2, rank
        by_rank.append(served(TaskSampledLoader(loaders, Proportional(), seed=3), epoch=0))
    assert len(by_rank[0]) == len(by_rank[1]) == 16 + 32  # each rank: half of 32 and of 63 (padded to 64) batches
    assert [task for task, _ in by_rank[0]] == [task for task, _ in by_rank[1]]
    for task, examples in (("ner", 1000), ("sst", 4000)):
        seen = [set(i for t, batch in steps if t == task for i in batch) for steps in by_rank]
        assert seen[0] | seen[1] == set(range(examples))  # every batch served on one rank or the other
        assert len(seen[0] & seen[1]) <= 64  # only the batch repeated to pad SST's 63 to 64


def test_an_epoch_serves_every_batch_once_and_epochs_differ_and_continue(ner_sst):
    loader = ner_sst.train_dataloader()
    assert isinstance(loader, TaskSampledLoader) and len(loader) == 32 + 63
    first, second = served(loader, 0), served(loader, 1)
    for task, examples in (("ner", 1000), ("sst", 4000)):  # Proportional, steps = all batches: each one once
        indices = sorted(i for t, batch in first if t == task for i in batch)
        assert indices == list(range(examples))
    assert [t for t, _ in first] != [t for t, _ in second] and set(first) != set(second)
    assert served(ner_sst.train_dataloader(), 1) == second  # epoch 1 alone: the batches it had after epoch 0
    passes = ner_sst.train_dataloader()  # without set_epoch, each pass is the next epoch
    assert [(b["task"], tuple(b["index"].tolist())) for b in passes] == first
    assert [(b["task"], tuple(b["index"].tolist())) for b in passes] == second


def test_tasks_continue_across_epochs_where_their_batches_left_off(ner_sst):
    """Uniform over 20 steps: NER (32 batches) runs out in its 4th epoch and starts its own next epoch there."""
    loader = TaskSampledLoader(ner_sst._loaders("train"), Uniform(), steps=20, seed=7)
    ner = [batch for epoch in range(4) for task, batch in served(loader, epoch) if task == "ner"]
    assert len(ner) == 40
    assert sorted(i for batch in ner[:32] for i in batch) == list(range(1000))  # NER's epoch 0, then its epoch 1
    assert sorted(i for batch in ner[32:] for i in batch) != sorted(i for batch in ner[:8] for i in batch)


# ----------------------------------------------------------------------------- batches, evaluation, Lightning
class Recorder(pl.LightningModule):
    """Records the task and example indices of every training and validation batch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.train_steps: list[tuple[int, str, tuple[int, ...]]] = []
        self.val_steps: list[tuple[int, str, tuple[int, ...]]] = []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.train_steps.append((self.current_epoch, batch["task"], tuple(batch["index"].tolist())))
        return (self.weight ** 2).sum()

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.val_steps.append((dataloader_idx, batch["task"], tuple(batch["index"].tolist())))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_batches_carry_their_task_and_the_tasks_keys(ner_sst):
    batches = {batch["task"]: batch for batch in ner_sst.train_dataloader()}
    for name, child in ner_sst.tasks.items():
        own = child.collate(child.encoded("train").__getitems__([0, 1]))
        assert set(batches[name]) == set(own) | {"task"}
    assert batches["ner"]["char_ids"].dim() == 3 and batches["sst"]["label_ids"].dim() == 1


def test_lightning_gives_the_epoch_and_validates_every_task_example_once(ner_sst):
    """A real Trainer: the loaders are rebuilt every epoch, so only ``set_epoch`` can tell epoch 1 from 0."""
    model = Recorder()
    trainer = pl.Trainer(max_epochs=2, reload_dataloaders_every_n_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         use_distributed_sampler=False, accelerator="cpu")
    trainer.fit(model, datamodule=ner_sst)
    expected = TaskSampledLoader(ner_sst._loaders("train"), Proportional(), seed=7)
    for epoch in (0, 1):
        tasks = [task for e, task, _ in model.train_steps if e == epoch]
        assert tasks == [["ner", "sst"][i] for i in expected.order(epoch)]
    assert served(expected, 1) == [(task, batch) for e, task, batch in model.train_steps if e == 1]
    for index, (task, examples) in enumerate((("ner", 300), ("sst", 872))):
        steps = [step for step in model.val_steps if step[1] == task]
        assert {loader for loader, _, _ in steps} == {index}
        indices = [i for _, _, batch in steps for i in batch]
        assert len(indices) == 2 * examples and sorted(set(indices)) == list(range(examples))  # once per epoch


def test_a_loader_restored_mid_epoch_continues_where_it_stopped(ner_sst):
    uninterrupted = ner_sst.train_dataloader()
    uninterrupted.set_epoch(2)
    steps = [(b["task"], tuple(b["index"].tolist())) for b in uninterrupted]
    stopped = ner_sst.train_dataloader()
    stopped.set_epoch(2)
    before = [(b["task"], tuple(b["index"].tolist())) for _, b in zip(range(30), stopped)]
    resumed = ner_sst.train_dataloader()
    resumed.load_state_dict(stopped.state_dict())
    assert stopped.state_dict() == {"epoch": 2, "steps": 30}
    assert before + served(resumed, 2) == steps


def test_lightning_resumes_mid_epoch_exactly(ner_sst, tmp_path):
    """A run stopped at step 40 of epoch 0 (of 95) and resumed from its checkpoint trains on the batches an
    uninterrupted run trains on, step for step."""
    options = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                   limit_val_batches=0, use_distributed_sampler=False, accelerator="cpu")
    whole = Recorder()
    pl.Trainer(max_epochs=2, enable_checkpointing=False, **options).fit(whole, datamodule=ner_sst)
    first = Recorder()
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=40, save_top_k=-1)
    pl.Trainer(max_steps=40, callbacks=[checkpoint], **options).fit(first, datamodule=ner_sst)
    second = Recorder()
    pl.Trainer(max_epochs=2, enable_checkpointing=False, **options).fit(
        second, datamodule=ner_sst, ckpt_path=str(next(tmp_path.glob("*step=40*.ckpt"))))
    assert len(whole.train_steps) == 2 * 95 and len(first.train_steps) == 40
    assert first.train_steps + second.train_steps == whole.train_steps


def test_predict_reads_the_input_for_the_chosen_tasks(ner_sst, tmp_path):
    inputs = tmp_path / "input.txt"
    inputs.write_text("EU rejects German call\na gripping , funny movie\nPeter Blackburn\n")
    data = MultiTaskData({"ner": ner_data(Path(ner_sst.tasks["ner"].path), tmp_path / "cache"),
                          "sst": sst_data(Path(ner_sst.tasks["sst"].path), tmp_path / "cache")},
                         predict_tasks=["sst"], predict_path=str(inputs))
    data.load_state_dict(ner_sst.state_dict())
    assert data.tasks["ner"].predict_path is None and data.tasks["sst"].predict_path == str(inputs)
    data.setup("predict")
    batches = list(data.predict_dataloader())
    assert {batch["task"] for batch, _, _ in batches} == {"sst"}
    assert sorted(i for batch, _, _ in batches for i in batch["index"].tolist()) == [0, 1, 2]


# ----------------------------------------------------------------------------- NER + POS + chunk from one file
# lines of CoNLL-2003's original eng.train (IOB1: B- only where an entity or chunk follows one of its type)
ORIGINAL = """\
-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
to TO I-VP O
boycott VB I-VP O
British JJ I-NP I-MISC
lamb NN I-NP O
. . O O

-DOCSTART- -X- O O

the DT I-NP O
Golan NNP I-NP I-LOC
Heights NNPS I-NP I-LOC
Israel NNP I-NP B-LOC
captured VBD I-VP O
from IN I-PP O
Syria NNP I-NP I-LOC
'' '' O O
"""


def three_columns(path: Path, cache: Path) -> dict[str, TokenClassificationData]:
    return {"ner": ner_data(path, cache, tag_column=3, tag_format="iob1"),
            "pos": ner_data(path, cache, tag_column=1, tag_format="plain"),
            "chunk": ner_data(path, cache, tag_column=2, tag_format="iob1")}


def test_pos_reads_plain_labels_and_chunk_and_ner_convert_iob1(tmp_path):
    (tmp_path / "train.txt").write_text(ORIGINAL)
    data = MultiTaskData(three_columns(tmp_path, tmp_path / "cache"))
    data.prepare_encoders()
    tags = {name: child.raw_split("train")["tags"] for name, child in data.tasks.items()}
    assert data.tasks["pos"].raw_split("train")["tokens"][1] == "the Golan Heights Israel captured from Syria ''".split(
    )
    assert tags["pos"] == ["NNP VBZ JJ NN TO VB JJ NN .".split(), "DT NNP NNPS NNP VBD IN NNP ''".split()]
    assert tags["chunk"] == ["B-NP B-VP B-NP I-NP B-VP I-VP B-NP I-NP O".split(),
                             "B-NP I-NP I-NP I-NP B-VP B-PP B-NP O".split()]
    assert tags["ner"] == ["B-ORG O B-MISC O O O B-MISC O O".split(), "O B-LOC I-LOC B-LOC O O B-LOC O".split()]
    assert data.task_labels["pos"] == sorted({"NNP", "VBZ", "JJ", "NN", "TO", "VB", ".", "DT", "NNPS", "VBD", "IN",
                                              "''"})
    assert data.task_labels["ner"] == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG"]  # B and I per type


def test_three_columns_of_the_real_files_share_their_words(tmp_path):
    source = require_shared_data("ner/conll2003/original")
    write_conll_slice(source / "eng.train.gz", tmp_path / "eng.train", 300)
    data = MultiTaskData(three_columns(tmp_path, tmp_path / "cache"))
    data.prepare_encoders()
    rows = [line.split() for line in (tmp_path / "eng.train").read_text().splitlines()]
    sentences, current = [], []
    for fields in rows + [[]]:
        if fields and fields[0] != "-DOCSTART-":
            current.append(fields)
        elif current:
            sentences.append(current)
            current = []
    assert len(data.tasks["pos"].raw_split("train")) == len(sentences) == 300  # -DOCSTART- lines skipped
    assert data.vocab_size == len(data.tasks["ner"].words) == len({f[0] for s in sentences for f in s}) + 2
    assert data.task_labels["pos"] == sorted({f[1] for s in sentences for f in s})
    for name, column in (("chunk", 2), ("ner", 3)):
        read = data.tasks[name].raw_split("train")["tags"]
        assert read == [iob1_to_bio([f[column] for f in s]) for s in sentences]
        assert all(tag[:2] != "I-" or previous[2:] == tag[2:]  # valid BIO: an I-X continues an X
                   for tags in read for previous, tag in zip(["O"] + tags, tags))
        assert sum(s[0][column].startswith("I-") for s in sentences) > 100  # IOB1 starts chunks with I-: converted


# ----------------------------------------------------------------------------- bad input: one line each
def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_bad_options_are_one_line_errors_naming_the_option(conll_dir, tmp_path):
    with pytest.raises(SeqlabError) as error:
        MultiTaskData({})
    assert one_line(error).startswith("--data.init_args.tasks: ")
    with pytest.raises(SeqlabError) as error:
        MultiTaskData({"ner": ner_data(conll_dir, tmp_path)}, predict_tasks=["ner", "pos"])
    assert one_line(error) == "--data.init_args.predict_tasks: no task pos (tasks: ner)"
    with pytest.raises(SeqlabError) as error:
        MultiTaskData({"ner": ner_data(conll_dir, tmp_path)}, steps_per_epoch=0)
    assert "--data.init_args.steps_per_epoch" in one_line(error)
    with pytest.raises(SeqlabError) as error:
        Temperature(0.0)
    assert "temperature must be positive" in one_line(error)
    with pytest.raises(SeqlabError) as error:
        ner_data(conll_dir, tmp_path, tag_format="plain", tag_scheme="BIOES")
    assert "--data.tag_scheme BIOES" in one_line(error)


def test_a_tasks_bad_file_or_option_names_the_task(conll_dir, tmp_path):
    missing = MultiTaskData({"ner": ner_data(conll_dir, tmp_path), "pos": ner_data(tmp_path / "nowhere", tmp_path)})
    with pytest.raises(SeqlabError) as error:
        missing.prepare_encoders()
    assert one_line(error) == f"--data.init_args.tasks.pos: data path not found: {tmp_path / 'nowhere'}"
    narrow = MultiTaskData({"ner": ner_data(conll_dir, tmp_path, max_tokens=3)})
    with pytest.raises(SeqlabError) as error:
        narrow.train_dataloader()
    assert one_line(error).startswith("--data.init_args.tasks.ner.init_args: max_tokens=3 is smaller")
    (conll_dir / "valid.txt").write_text("EU XYZ I-NP I-ORG\n")  # a part-of-speech tag train never had
    pos = MultiTaskData({"pos": ner_data(conll_dir, tmp_path, tag_column=1, tag_format="plain")})
    with pytest.raises(SeqlabError) as error:
        pos.setup("validate")
    assert one_line(error) == (f"--data.init_args.tasks.pos: {conll_dir / 'valid.txt'}:1: tag 'XYZ' does not occur "
                               "in the training data")


def test_a_sub_word_tokenizer_cannot_share_the_vocabulary(conll_dir, tmp_path):
    sst_dir = tmp_path / "sst"
    sst_dir.mkdir()
    (sst_dir / "train.tsv").write_text(TRAIN_TSV)
    tokenizer = tmp_path / "tokenizer.json"
    SubwordEncoder.train(["a funny movie", "dull and lifeless"], vocab_size=40).tokenizer.save(str(tokenizer))
    data = MultiTaskData({"ner": ner_data(conll_dir, tmp_path), "sst": sst_data(sst_dir, tmp_path,
                                                                                tokenizer=str(tokenizer))})
    with pytest.raises(SeqlabError) as error:
        data.prepare_encoders()
    assert one_line(error).startswith("--data.init_args.tasks.sst.init_args.tokenizer: a sub-word tokenizer")


# ----------------------------------------------------------------------------- the CLI
def cli_config(path: Path, conll: Path, sst: Path, cache: Path) -> Path:
    path.write_text(f"""\
model:
  class_path: seqlab.tasks.MultiTask
  init_args:
    objectives:
      ner: {{class_path: seqlab.tasks.SpanTagging}}
      sst: {{class_path: seqlab.tasks.Classification}}
    word_embedding: {{class_path: seqlab.models.WordEmbedding, init_args: {{embedding_dim: 8}}}}
    encoder: {{class_path: seqlab.models.BiLSTMEncoder, init_args: {{hidden_size: 8}}}}
data:
  class_path: seqlab.data_modules.MultiTaskData
  init_args:
    tasks:
      ner: {{class_path: seqlab.data_modules.TokenClassificationData,
            init_args: {{path: {conll}, tag_scheme: BIOES, cache_dir: {cache}}}}}
      sst: {{class_path: seqlab.data_modules.TextClassificationData,
            init_args: {{path: {sst}, name: null, lowercase: true, cache_dir: {cache}}}}}
    sampling: {{class_path: seqlab.data_modules.Temperature, init_args: {{temperature: 2.0}}}}
trainer: {{logger: false, enable_progress_bar: false, default_root_dir: {path.parent}}}
""")
    return path


def test_the_cli_builds_each_task_from_its_own_options_and_links_the_joint_sizes(conll_slice, sst2_slice, cache,
                                                                                  tmp_path):
    from seqlab.cli import SeqlabCLI

    config = cli_config(tmp_path / "multitask.yaml", conll_slice, sst2_slice, cache)
    cli = SeqlabCLI(run=False, args=["--config", str(config), "--data.init_args.tasks.ner.init_args.batch_size", "8",
                                     "--seed_everything", "4"])
    data, model = cli.datamodule, cli.model
    ner, sst = data.tasks["ner"], data.tasks["sst"]
    assert isinstance(data, MultiTaskData) and isinstance(data.sampling, Temperature)
    assert (ner.batch_size, ner.hparams.tag_scheme, sst.hparams.lowercase) == (8, "BIOES", True)  # their own options
    assert any(label.startswith("S-") for label in ner.labels) and data.seed == 4
    assert model.hparams.vocab_size == data.vocab_size == len(data.words) and ner.words is sst.words is data.words
    assert model.hparams.char_vocab_size == data.char_vocab_size == len(ner.chars)
    assert model.hparams.task_labels == data.task_labels == {"ner": ner.labels, "sst": sst.labels}
    recorded = data.hparams["tasks"]["ner"]  # what a checkpoint records: plain configuration
    assert recorded["class_path"].endswith("TokenClassificationData") and recorded["init_args"]["batch_size"] == 8


def test_a_bad_multitask_option_is_one_line_from_the_cli(conll_slice, sst2_slice, cache, tmp_path, capsys):
    from seqlab.cli import main

    config = cli_config(tmp_path / "multitask.yaml", conll_slice, sst2_slice, cache)
    with pytest.raises(SystemExit) as exit:
        main(["fit", "--config", str(config), "--data.init_args.predict_tasks", "[ner, pos]"])
    assert exit.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "seqlab: error: --data.init_args.predict_tasks: no task pos (tasks: ner, sst)")
