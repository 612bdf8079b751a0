"""The Streaming dataset: every example exactly once per epoch over 2 ranks x 2 DataLoader workers, a new order each
epoch, length-bucketed batches, ranks evened out, exact mid-epoch resume (also through Lightning), the same vocabulary
and encoding as the in-memory path (translation, NER, sentiment), one-line errors for bad input, and a few training
steps of each text task through the CLI."""

from __future__ import annotations

import collections
import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from seqlab import SeqlabError
from seqlab.cli import SeqlabCLI
from seqlab.data.loader import ResumableDataLoader
from seqlab.data.streaming import StreamingBatches, owners, shuffled
from seqlab.data_modules import (
    InMemory,
    Streaming,
    TextClassificationData,
    TokenClassificationData,
    TranslationData,
)
from tests.cli_helpers import CONFIGS, run_options
from tests.test_bad_input import BAD_FILES, TEXT_TASKS, one_line_error, run_args, spoiled, write_corpus

STREAMING = '{"class_path": "seqlab.data_modules.Streaming", "init_args": {"shuffle_buffer": 300}}'


def streaming_data(path: Path, cache: Path, **options) -> TranslationData:
    options = {"max_vocab_size": 500, "batch_size": 16, "dataset": Streaming(shuffle_buffer=300), **options}
    data = TranslationData(path=str(path), cache_dir=str(cache), **options)
    data.prepare_encoders()
    return data


def batches_of(data: TranslationData, rank: int = 0, ranks: int = 1, workers: int = 1, epoch: int = 0,
               state: dict | None = None, stop_after: int | None = None) -> tuple[list[list[int]], dict]:
    """The example indices of each batch one rank's loader gives in ``epoch`` (``workers`` DataLoader worker
    processes when more than one), resumed from ``state`` if given, stopped after ``stop_after`` batches if given;
    and the loader's state at the end."""
    batches = StreamingBatches(data.dataset.fitting_rows(data), partial(data.encode_rows, "train"), data.batch_size,
                               data.bucket_size, data.dataset.shuffle_buffer, seed=3, workers=workers,
                               num_replicas=ranks, rank=rank)
    batches.set_epoch(epoch)
    loader = ResumableDataLoader(batches, batch_size=None, collate_fn=data.collate,
                                 num_workers=workers if workers > 1 else 0)
    if state is not None:
        loader.load_state_dict(state)
    given = []
    for batch in loader:
        given.append(batch["index"].tolist())
        if len(given) == stop_after:
            break
    return given, loader.state_dict()


@pytest.fixture(scope="module")
def multi30k(multi30k_slice, tmp_path_factory) -> TranslationData:
    """The real Multi30k slice (2,000 pairs) streamed, BPE fitted on it."""
    return streaming_data(multi30k_slice, tmp_path_factory.mktemp("cache"))


@pytest.fixture
def ten_pairs(tmp_path) -> TranslationData:
    """Ten pairs of different lengths, batches of 2: over 2 ranks x 2 workers the shards hold 3, 3, 2, 2 pairs."""
    folder = tmp_path / "ten"
    folder.mkdir()
    (folder / "train.de").write_text("".join(f"{'ein Hund ' * (i + 1)}\n" for i in range(10)), encoding="utf-8")
    (folder / "train.en").write_text("".join(f"{'a dog ' * (i + 1)}\n" for i in range(10)), encoding="utf-8")
    return streaming_data(folder, tmp_path / "cache", tokenizer="word", batch_size=2,
                          dataset=Streaming(shuffle_buffer=4))


# ------------------------------------------------------------------------------------------------ the parts
@pytest.mark.parametrize("count", [0, 1, 7, 8, 1030, 4099])
@pytest.mark.parametrize("shards", [1, 2, 3, 4])
def test_owners_deal_each_example_to_one_shard_evenly(count, shards):
    dealt = list(owners(count, shards, seed=5))
    assert len(dealt) == count
    held = collections.Counter(dealt)
    assert [held[s] for s in range(shards)] == [count // shards + (s < count % shards) for s in range(shards)]
    assert dealt == list(owners(count, shards, seed=5))
    if shards > 1 and count >= 1030:
        assert dealt != list(owners(count, shards, seed=6))


def test_the_shuffle_buffer_permutes_within_its_reach():
    rng = np.random.default_rng(0)
    assert list(shuffled(range(50), 1, rng)) == list(range(50))  # a buffer of one keeps the order
    out = list(shuffled(range(1000), 100, rng))
    assert sorted(out) == list(range(1000)) and out != list(range(1000))
    # an item enters a full buffer when the one 100 places before it leaves: none comes out earlier than that
    assert all(position > item - 100 for position, item in enumerate(out))


# ------------------------------------------------------------------------------------------------ sharding
def test_every_example_once_per_epoch_over_two_ranks_and_two_workers(multi30k):
    count = multi30k.dataset.fitting_rows(multi30k).count
    orders = []
    for epoch in (0, 1):
        ranks = [batches_of(multi30k, rank, ranks=2, workers=2, epoch=epoch)[0] for rank in (0, 1)]
        assert len(ranks[0]) == len(ranks[1]) == math.ceil(count / 4 / multi30k.batch_size) * 2
        seen = [index for batches in ranks for batch in batches for index in batch]
        assert sorted(seen) == list(range(count))  # every example once: none lost, none repeated
        orders.append(ranks)
    assert orders[0] != orders[1]  # a new order each epoch
    assert set(sum(orders[0][0], [])) != set(sum(orders[1][0], []))  # and other examples on a rank
    assert batches_of(multi30k, 1, ranks=2, workers=2, epoch=1)[0] == orders[1][1]  # seeded: the same again


def test_ranks_are_evened_out_by_repeating_whole_batches(ten_pairs):
    ranks = [batches_of(ten_pairs, rank, ranks=2, workers=2)[0] for rank in (0, 1)]
    assert [len(batches) for batches in ranks] == [4, 4]  # shards of 3, 3, 2, 2 pairs: 2 + 2 and 1 + 1 batches
    distinct = [list(map(list, dict.fromkeys(map(tuple, batches)))) for batches in ranks]
    assert [len(batches) for batches in distinct] == [4, 2]  # rank 1 repeats a batch it gave, twice
    assert sorted(index for batches in distinct for batch in batches for index in batch) == list(range(10))


def test_batches_are_cut_from_length_sorted_pools(multi30k_slice, tmp_path):
    data = streaming_data(multi30k_slice, tmp_path / "cache", bucket_size=200)  # one pool holds the whole split
    loader = data.train_dataloader()
    spans = []
    for batch in loader:
        target = batch["target_mask"].sum(1) - 1  # the target with EOS
        lengths = torch.maximum(batch["source_lengths"], target)
        spans.append((int(lengths.min()), int(lengths.max())))
        assert len(lengths) == data.batch_size or len(spans) > 1
    ordered = sorted(spans)
    assert all(low_max <= high_min for (_, low_max), (high_min, _) in zip(ordered, ordered[1:]))
    assert spans != ordered  # the batches themselves come in a random order


# ------------------------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("served", [1, 2, 3])
def test_resume_mid_epoch_gives_the_rest_of_the_epoch(ten_pairs, served):
    # rank 1's workers give 3 and 1 batches: after the second batch the loader takes the first worker's only
    whole, _ = batches_of(ten_pairs, 1, ranks=2, workers=2, epoch=2)
    first, state = batches_of(ten_pairs, 1, ranks=2, workers=2, epoch=2, stop_after=served)
    rest, _ = batches_of(ten_pairs, 1, ranks=2, workers=2, epoch=0, state=state)
    assert first + rest == whole and state["batches"] == served and state["epoch"] == 2


def test_resume_mid_epoch_on_real_data_with_two_workers(multi30k):
    whole, _ = batches_of(multi30k, workers=2, epoch=1)
    first, state = batches_of(multi30k, workers=2, epoch=1, stop_after=7)
    rest, _ = batches_of(multi30k, workers=2, state=state)
    assert first + rest == whole


def test_resume_on_another_number_of_workers_restarts_the_epoch(ten_pairs):
    whole, _ = batches_of(ten_pairs, workers=2, epoch=1)
    _, state = batches_of(ten_pairs, workers=1, epoch=1, stop_after=2)
    with pytest.warns(UserWarning, match="epoch 1 restarts from its first batch"):
        again, _ = batches_of(ten_pairs, workers=2, state=state)
    assert again == whole


# ------------------------------------------------------------------------------------------------ the data module
@pytest.mark.parametrize("options", [{}, {"tokenizer": "word", "joint": False}], ids=["bpe_joint", "word_separate"])
def test_the_vocabulary_equals_the_in_memory_one(multi30k_slice, tmp_path, options):
    streamed = streaming_data(multi30k_slice, tmp_path / "cache", **options)
    in_memory = TranslationData(path=str(multi30k_slice), cache_dir=str(tmp_path / "cache"), max_vocab_size=500,
                                **options)
    in_memory.prepare_encoders()
    assert isinstance(in_memory.dataset, InMemory)
    assert streamed.state_dict() == in_memory.state_dict()
    assert "train" not in streamed._raw  # the streamed split was never read into a dataset


def test_options_of_the_streaming_dataset(multi30k_slice, tmp_path):
    configured = TranslationData(path=str(multi30k_slice), dataset={
        "class_path": "seqlab.data_modules.Streaming", "init_args": {"shuffle_buffer": 7}})  # as a checkpoint has it
    assert isinstance(configured.dataset, Streaming) and configured.dataset.shuffle_buffer == 7
    with pytest.raises(SeqlabError, match="max_tokens does not apply to a Streaming dataset"):
        streaming_data(multi30k_slice, tmp_path / "cache", max_tokens=400).train_dataloader()
    with pytest.raises(SeqlabError, match="reads local files; bentrevett/multi30k is a hub id"):
        TranslationData(dataset=Streaming()).prepare_encoders()
    with pytest.raises(SeqlabError, match="shuffle_buffer must be at least 1"):
        Streaming(shuffle_buffer=0)


@pytest.mark.parametrize("kind", BAD_FILES)
def test_a_bad_training_file_is_one_line_naming_it(kind, tmp_path, capsys):
    spec = TEXT_TASKS["translation"]
    folder = write_corpus(tmp_path / "data", spec.corpus)
    train = folder / spec.train
    content, packed = spoiled(kind, train.read_bytes(), spec.latin1_line)
    if packed:
        train.unlink()
        train = train.with_name(train.name + ".gz")
    train.write_bytes(content)
    line = one_line_error(capsys, run_args(spec.config, folder, tmp_path, *spec.extra,
                                           "--data.init_args.dataset", STREAMING))
    assert (f"{train}:{spec.latin1_line}" if kind == "latin1" else str(train)) in line, line


def test_the_streaming_data_module_trains_through_the_cli(tmp_path, multi30k_slice):
    from tests.test_translation_cli import LSTM, TINY

    tiny = [word for option, value in zip(TINY[::2], TINY[1::2]) if "attention" not in option
            for word in (option, value)]  # the LSTM config has no attention
    cli = SeqlabCLI(args=["fit", "--config", LSTM, *run_options(tmp_path, multi30k_slice), *tiny,
                          "--data.init_args.cache_dir", str(tmp_path / "cache"),
                          "--data.init_args.dataset", STREAMING, "--data.init_args.num_workers", "2",
                          "--trainer.fast_dev_run", "3"])
    assert isinstance(cli.datamodule.dataset, Streaming)
    assert cli.trainer.global_step == 3
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])
    assert {"val/loss", "val/bleu"} <= set(cli.trainer.callback_metrics)


class Killed(Exception):
    pass


class StreamRecorder(pl.LightningModule):
    """A linear model on the streamed batches that records their example indices; at ``stop_at`` it raises, as a
    killed process would stop (after the checkpoint of that step was written)."""

    def __init__(self, data: TranslationData, stop_at: int | None = None) -> None:
        super().__init__()
        self.data, self.stop_at, self.seen = data, stop_at, []
        self.layer = torch.nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        if self.global_step == self.stop_at:
            raise Killed
        self.seen.append(batch["index"].tolist())
        return self.layer(batch["source_lengths"].float().unsqueeze(1)).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-4)

    def train_dataloader(self):
        self.data.trainer = self.trainer  # as when the data module is the Trainer's: the loader reads its epoch
        return self.data.train_dataloader()


def test_a_streamed_run_stopped_mid_epoch_resumes_with_the_same_batches(ten_pairs, tmp_path):
    ten_pairs.num_workers = 2  # two workers of 5 pairs: 3 + 3 batches an epoch

    whole = StreamRecorder(ten_pairs)
    pl.Trainer(default_root_dir=tmp_path / "whole", max_epochs=2, logger=False, enable_progress_bar=False,
               enable_checkpointing=False, enable_model_summary=False).fit(whole)
    assert len(whole.seen) == 12 and sorted(sum(whole.seen[:6], [])) == sorted(sum(whole.seen[6:], [])) == list(
        range(10))
    assert whole.seen[:6] != whole.seen[6:]  # the trainer's epoch reached the loader: another order

    every = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=9, save_top_k=-1)
    first = StreamRecorder(ten_pairs, stop_at=9)  # mid second epoch
    with pytest.raises(Killed):
        pl.Trainer(default_root_dir=tmp_path / "first", max_epochs=2, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, callbacks=[every]).fit(first)
    (checkpoint,) = (tmp_path / "ckpt").glob("*.ckpt")
    resumed = StreamRecorder(ten_pairs)
    pl.Trainer(default_root_dir=tmp_path / "resumed", max_epochs=2, logger=False, enable_progress_bar=False,
               enable_model_summary=False).fit(resumed, ckpt_path=checkpoint)
    assert first.seen + resumed.seen == whole.seen  # no batch twice, none skipped, same order


# ------------------------------------------------------------------------------------------------ NER and sentiment
def classification_data(kind: str, conll_slice: Path, sst2_slice: Path, cache: Path, **options):
    if kind == "ner":
        return TokenClassificationData(path=str(conll_slice), cache_dir=str(cache), batch_size=16, **options)
    return TextClassificationData(path=str(sst2_slice), cache_dir=str(cache), batch_size=16, **options)


@pytest.mark.parametrize("kind", ["ner", "sentiment"])
def test_token_and_text_classification_stream_what_memory_holds(kind, conll_slice, sst2_slice, tmp_path):
    streamed = classification_data(kind, conll_slice, sst2_slice, tmp_path / "cache",
                                   dataset=Streaming(shuffle_buffer=200))
    in_memory = classification_data(kind, conll_slice, sst2_slice, tmp_path / "cache")
    streamed.prepare_encoders()
    in_memory.setup("fit")
    assert streamed.state_dict() == in_memory.state_dict()  # the same vocabularies (and labels or tags)
    batches = list(streamed.train_dataloader())
    assert sorted(i for batch in batches for i in batch["index"].tolist()) == list(range(len(in_memory.encoded(
        "train"))))  # every example once
    for batch in batches[:3]:  # encoded as the in-memory path encodes the same examples
        same = in_memory.collate(in_memory.encoded("train").__getitems__(batch["index"].tolist()))
        for key in ("token_ids", "mask", "tag_ids" if kind == "ner" else "label_ids"):
            assert torch.equal(batch[key], same[key]), key


def test_rows_read_by_datasets_do_not_stream(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"]}\n')
    data = TokenClassificationData(path=str(tmp_path), dataset=Streaming())
    with pytest.raises(SeqlabError, match="train.jsonl: a Streaming dataset reads text files"):
        data.prepare_encoders()


@pytest.mark.parametrize("config", ["ner/conll2003_bilstm_crf.yaml", "sentiment/sst2_bilstm.yaml"])
def test_token_and_text_classification_train_streamed_through_the_cli(config, conll_slice, sst2_slice, tmp_path):
    data = conll_slice if config.startswith("ner") else sst2_slice
    cli = SeqlabCLI(args=["fit", "--config", str(CONFIGS / config), *run_options(tmp_path, data),
                          "--data.init_args.cache_dir", str(tmp_path / "cache"), "--data.init_args.dataset",
                          STREAMING, "--trainer.fast_dev_run", "2"])
    assert isinstance(cli.datamodule.dataset, Streaming) and cli.trainer.global_step == 2
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])
