"""The training DataLoader that Lightning can stop and resume mid-epoch: its position is saved in checkpoints."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

import torch
from torch.utils.data import DataLoader


class EpochOrder:
    """The order protocol of ``ResumableDataLoader``: a batch order over epochs (``seed``, ``epoch``, set by
    ``set_epoch``) that a checkpoint can resume mid-epoch (``resume_point``). Lightning calls ``set_epoch`` on
    ``dataloader.batch_sampler.sampler`` (the sampler inside a PyTorch ``BatchSampler``), never on the batch sampler
    itself: an order is its own ``sampler``."""

    seed = 0
    epoch = 0
    _resume: Optional[tuple[int, int]] = None  # (epoch, batches to skip) for the next pass

    @property
    def sampler(self) -> "EpochOrder":
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_point(self) -> int:
        """How many of the current epoch's batches the next pass skips (0 unless resuming this epoch)."""
        return self._resume[1] if self._resume is not None and self._resume[0] == self.epoch else 0


class ResumableDataLoader(DataLoader):
    """A DataLoader with Lightning's ``state_dict``/``load_state_dict`` protocol, over an ``EpochOrder``: its
    ``BucketBatchSampler`` (a map-style dataset), or the dataset itself when that is a ``StreamingBatches`` (an
    iterable one), each with its ``state_dict``/``load_state_dict``.

    Lightning keeps the state of a training loader that has both methods in the fit loop's checkpoint state and
    gives it back before iterating again, so a run resumed from a mid-epoch checkpoint continues the epoch after
    the batches it had trained on (``batches``: those handed to the training loop, not those prefetched by
    workers), with the same order (``seed``, ``epoch``). Lightning sets the epoch of a sampler; an iterable dataset
    has none, so ``epoch`` (a callable giving the trainer's epoch, or None outside a Trainer) sets it instead.

    Iterating starts nothing until the first batch is asked for: Lightning creates the iterator before it sets the
    epoch. Each pass seeds the loader's own generator from the seed and epoch, so worker seeds are reproducible and
    creating the iterator draws nothing from torch's global generator (which dropout uses): a resumed run draws
    the same random numbers as an uninterrupted one.
    """

    def __init__(self, dataset: Any, batch_sampler: Any = None, epoch: Optional[Callable[[], Optional[int]]] = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("generator", torch.Generator())
        super().__init__(dataset, batch_sampler=batch_sampler, **kwargs)
        self.order = batch_sampler if batch_sampler is not None else dataset
        self.current_epoch = epoch
        self.consumed = 0  # batches of the current pass handed out, the skipped ones of a resumed pass included

    def __iter__(self) -> Iterator[Any]:
        return self._batches()

    def _batches(self) -> Iterator[Any]:
        order = self.order
        epoch = self.current_epoch() if self.current_epoch is not None else None
        if epoch is not None:
            order.set_epoch(epoch)
        self.generator.manual_seed((order.seed * 1_000_003 + order.epoch) % 2**63)
        self.consumed = order.resume_point()
        for batch in super().__iter__():
            self.consumed += 1
            yield batch

    def state_dict(self) -> dict:
        return {**self.order.state_dict(), "batches": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.order.load_state_dict(state)
