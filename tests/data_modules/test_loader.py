"""ResumableDataLoader and the sampler's resume state: Lightning sets the epoch, a run stopped mid-epoch and resumed
from its checkpoint trains on exactly the batches of the uninterrupted run, iterating draws nothing from torch's
global generator, and the random generator states survive a checkpoint."""

import random

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.data import _set_sampler_epoch

from seqlab.data.loader import ResumableDataLoader
from seqlab.data_modules import BucketBatchSampler
from seqlab.random_state import RandomStateCheckpoint, capture, restore

LENGTHS = np.random.default_rng(0).integers(1, 30, size=70).tolist()


def loader(**kwargs):
    sampler = BucketBatchSampler(LENGTHS, batch_size=4, bucket_size=2, seed=3)
    return ResumableDataLoader(list(range(len(LENGTHS))), sampler, collate_fn=torch.tensor, **kwargs)


@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("served", [0, 1, 5])
def test_sampler_resumes_its_epoch_after_the_served_batches(world, served):
    for rank in range(world):
        full = BucketBatchSampler(LENGTHS, batch_size=4, seed=3, num_replicas=world, rank=rank)
        full.set_epoch(2)
        expected = list(full)
        stopped = BucketBatchSampler(LENGTHS, batch_size=4, seed=3, num_replicas=world, rank=rank)
        stopped.set_epoch(2)
        iterator = iter(stopped)
        for _ in range(served):
            next(iterator)
        state = stopped.state_dict()
        assert state == {"seed": 3, "epoch": 2, "batches": served, "num_replicas": world}
        resumed = BucketBatchSampler(LENGTHS, batch_size=4, seed=0, num_replicas=world, rank=rank)
        resumed.load_state_dict(state)
        assert list(resumed) == expected[served:]
        assert len(resumed) == len(expected)  # Lightning counts the skipped batches as done
        assert list(resumed) == expected  # the next pass of the epoch is whole again
        resumed.load_state_dict(state)
        resumed.set_epoch(3)  # a state of epoch 2 does not cut epoch 3 short
        full.set_epoch(3)
        assert list(resumed) == list(full)


def test_sampler_resumed_on_fewer_ranks_skips_as_many_global_batches():
    state = {"seed": 3, "epoch": 0, "batches": 4, "num_replicas": 2}  # 8 global batches served
    single = BucketBatchSampler(LENGTHS, batch_size=4, seed=3, num_replicas=1, rank=0)
    expected = list(single)[8:]
    single.load_state_dict(state)
    assert list(single) == expected


def test_lightning_sets_the_epoch_so_each_epoch_has_its_own_order():
    data = loader()
    first = [b.tolist() for b in data]
    _set_sampler_epoch(data, 1)  # what Lightning calls at each epoch start
    assert data.batch_sampler.epoch == 1
    second = [b.tolist() for b in data]
    assert first != second and sorted(sum(first, [])) == sorted(sum(second, [])) == list(range(len(LENGTHS)))


def test_iterating_draws_nothing_from_the_global_generator():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    for _ in loader():
        pass
    assert torch.equal(torch.rand(3), expected)


def test_the_state_counts_batches_handed_out_not_those_prefetched_by_workers():
    data = loader(num_workers=1, prefetch_factor=4)
    sampler = data.batch_sampler
    iterator = iter(data)
    taken = [next(iterator).tolist() for _ in range(3)]
    state = data.state_dict()
    assert state["batches"] == 3 and sampler.served > 3  # the worker has asked for more indices already
    del iterator
    resumed = loader()
    resumed.load_state_dict(state)
    assert taken + [b.tolist() for b in resumed] == [b.tolist() for b in loader()]


class Killed(Exception):
    pass


class Recorder(pl.LightningModule):
    """A linear model with dropout that records the example indices of every training batch; at ``stop_at`` it
    raises, as a killed process would stop (after the checkpoint of that step was written)."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.dropout = torch.nn.Dropout(0.5)
        self.seen: list[list[int]] = []
        self.stop_at = stop_at

    def training_step(self, batch, batch_idx):
        if self.stop_at is not None and self.global_step == self.stop_at:
            raise Killed
        self.seen.append(batch.tolist())
        inputs = batch.float().unsqueeze(1)
        return self.dropout(self.layer(inputs)).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-4)

    def train_dataloader(self):
        return loader()

    def configure_callbacks(self):
        return [RandomStateCheckpoint()]


def trainer(tmp_path, **kwargs):
    return pl.Trainer(default_root_dir=tmp_path, max_epochs=2, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, use_distributed_sampler=False, **kwargs)


def test_a_run_stopped_mid_epoch_resumes_with_the_same_batches_and_weights(tmp_path):
    steps_per_epoch = len(loader())
    torch.manual_seed(0)
    whole = Recorder()
    trainer(tmp_path / "whole", enable_checkpointing=False).fit(whole)

    stop = steps_per_epoch + 3  # mid second epoch
    every = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=stop, save_top_k=-1)
    torch.manual_seed(0)
    first = Recorder(stop_at=stop)
    with pytest.raises(Killed):
        trainer(tmp_path / "first", callbacks=[every]).fit(first)
    assert first.seen == whole.seen[:stop]
    (checkpoint,) = (tmp_path / "ckpt").glob("*.ckpt")
    torch.manual_seed(123)  # the resumed run starts from other generator states: the checkpoint brings them back
    resumed = Recorder()
    trainer(tmp_path / "resumed").fit(resumed, ckpt_path=checkpoint)
    assert first.seen + resumed.seen == whole.seen  # no batch seen twice, none skipped, same order
    assert torch.equal(resumed.layer.weight, whole.layer.weight) and torch.equal(resumed.layer.bias, whole.layer.bias)


def test_generator_states_survive_a_checkpoint_read_with_weights_only(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    state = capture()
    expected = (torch.rand(2), np.random.rand(2), random.random())
    torch.save({"random": state}, tmp_path / "state.pt")
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    restore(torch.load(tmp_path / "state.pt", weights_only=True)["random"])
    drawn = (torch.rand(2), np.random.rand(2), random.random())
    assert torch.equal(drawn[0], expected[0]) and np.array_equal(drawn[1], expected[1]) and drawn[2] == expected[2]
