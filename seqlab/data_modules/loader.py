"""The training DataLoader that Lightning can stop and resume mid-epoch: its position is saved in checkpoints."""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader

from seqlab.data_modules.sampler import BucketBatchSampler


class ResumableDataLoader(DataLoader):
    """A DataLoader over a ``BucketBatchSampler`` with Lightning's ``state_dict``/``load_state_dict`` protocol.

    Lightning keeps the state of a training loader that has both methods in the fit loop's checkpoint state and
    gives it back before iterating again, so a run resumed from a mid-epoch checkpoint continues the epoch after
    the batches it had trained on (``batches``: those handed to the training loop, not those prefetched by
    workers), with the same order (``seed``, ``epoch``).

    Iterating starts nothing until the first batch is asked for: Lightning creates the iterator before it sets the
    epoch. Each pass seeds the loader's own generator from the seed and epoch, so worker seeds are reproducible and
    creating the iterator draws nothing from torch's global generator (which dropout uses): a resumed run draws
    the same random numbers as an uninterrupted one.
    """

    batch_sampler: BucketBatchSampler

    def __init__(self, dataset: Any, batch_sampler: BucketBatchSampler, **kwargs: Any) -> None:
        kwargs.setdefault("generator", torch.Generator())
        super().__init__(dataset, batch_sampler=batch_sampler, **kwargs)
        self.consumed = 0  # batches of the current pass handed out, the skipped ones of a resumed pass included

    def __iter__(self) -> Iterator[Any]:
        return self._batches()

    def _batches(self) -> Iterator[Any]:
        sampler = self.batch_sampler
        self.generator.manual_seed((sampler.seed * 1_000_003 + sampler.epoch) % 2**63)
        self.consumed = sampler.resume_point()
        for batch in super().__iter__():
            self.consumed += 1
            yield batch

    def state_dict(self) -> dict:
        return {**self.batch_sampler.state_dict(), "batches": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.load_state_dict(state)
