"""Length-bucketing batch sampler that shards across DDP ranks and resumes mid-epoch."""

from __future__ import annotations

import math
from typing import Iterator, Optional, Sequence

import numpy as np
import torch.distributed as dist

from seqlab.data.loader import EpochOrder


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class BucketBatchSampler(EpochOrder):
    """Batches of similar-length examples, capped by ``batch_size`` examples and/or ``max_tokens`` padded tokens.

    Training (``shuffle=True``): each epoch, indices are shuffled with ``seed + epoch``, cut into pools of
    ``bucket_size`` batches, sorted by length within a pool, split into batches, and the batches shuffled. Every rank
    computes the same global batch list and takes batches ``rank, rank + world, ...``; the list is padded with
    repeated batches to a multiple of the world size so that every rank runs the same number of steps.
    Evaluation (``shuffle=False``): examples sorted by length, each example in exactly one batch on exactly one rank
    (no padding), so metrics gathered over ranks see every example once; a split of fewer batches than ranks is cut
    into one smaller batch per rank.

    Resuming: ``state_dict()`` gives the seed, the epoch and how many of this rank's batches of the epoch were
    served; after ``load_state_dict`` the next pass over that epoch skips those batches (``len`` stays the whole
    epoch's, as Lightning counts the skipped ones as done). A pass over another epoch starts from its first batch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int = 32,
        max_tokens: Optional[int] = None,
        shuffle: bool = True,
        bucket_size: int = 100,
        seed: int = 0,
        num_replicas: Optional[int] = None,
        rank: Optional[int] = None,
    ) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if self.lengths.ndim != 1 or len(self.lengths) == 0:
            raise ValueError("BucketBatchSampler needs a non-empty list of lengths")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_tokens is not None and max_tokens < int(self.lengths.max()):
            raise ValueError(f"max_tokens={max_tokens} is smaller than the longest example ({self.lengths.max()})")
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.shuffle = shuffle
        self.bucket_size = bucket_size
        self.seed = seed
        world_rank, world_size = _world()
        self.num_replicas = num_replicas if num_replicas is not None else world_size
        self.rank = rank if rank is not None else world_rank
        self.served = 0  # batches of the current pass yielded so far

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "batches": self.served, "num_replicas": self.num_replicas}

    def load_state_dict(self, state: dict) -> None:
        """Resume the epoch of ``state`` after its first ``batches`` batches (counted on ``num_replicas`` ranks;
        on another number of ranks, after as many global batches as were served)."""
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        served = int(state["batches"]) * int(state.get("num_replicas", self.num_replicas)) // self.num_replicas
        self._resume = (self.epoch, served)

    def _split(self, ordered: np.ndarray) -> list[np.ndarray]:
        """Cut length-sorted indices into consecutive batches under both caps."""
        batches, start = [], 0
        lengths = self.lengths[ordered]
        while start < len(ordered):
            end, longest = start, 0
            while end < len(ordered) and end - start < self.batch_size:
                longest = max(longest, int(lengths[end]))
                if self.max_tokens is not None and longest * (end - start + 1) > self.max_tokens:
                    break
                end += 1
            batches.append(ordered[start:end])
            start = end
        return batches

    def global_batches(self) -> list[np.ndarray]:
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            batches = self._split(order)
            if len(batches) < self.num_replicas:  # every rank needs a batch: cut the examples into one per rank
                if len(order) < self.num_replicas:
                    raise ValueError(f"an evaluation split of {len(order)} examples cannot be shared by "
                                     f"{self.num_replicas} processes: use at most {len(order)} devices")
                batches = [part for part in np.array_split(order, self.num_replicas)]
            return batches
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(len(self.lengths))
        pool = self.batch_size * self.bucket_size
        batches: list[np.ndarray] = []
        for begin in range(0, len(order), pool):
            chunk = order[begin:begin + pool]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches.extend(self._split(chunk))
        batches = [batches[i] for i in rng.permutation(len(batches))]
        original = len(batches)
        while len(batches) % self.num_replicas:  # cyclic, so even fewer batches than ranks gives each rank one
            batches.append(batches[len(batches) % original])
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        skip = self.resume_point()
        self._resume = None
        self.served = skip
        for batch in self.global_batches()[self.rank::self.num_replicas][skip:]:
            self.served += 1
            yield batch.tolist()

    def __len__(self) -> int:
        return math.ceil(len(self.global_batches()) / self.num_replicas) if self.shuffle else len(
            self.global_batches()[self.rank::self.num_replicas]
        )


class DocumentBatchSampler(BucketBatchSampler):
    """Evaluation batches that hold whole documents, for a model that reads a document's sentences together
    (``DocumentEmissionPooling``). ``documents`` (one per example, -1 for one that belongs to none) groups the examples;
    a group (a document's examples, or an example of none alone) is never split across batches, so a document longer
    than ``batch_size`` sentences is a batch of its own. Groups go into batches longest first, as ``BucketBatchSampler``
    sorts examples. A split of fewer batches than ranks is cut as ``BucketBatchSampler`` cuts it, documents with it.
    Training batches are ``BucketBatchSampler``'s."""

    def __init__(self, lengths: Sequence[int], documents: Sequence[int], batch_size: int = 32,
                 max_tokens: Optional[int] = None, shuffle: bool = False, bucket_size: int = 100, seed: int = 0,
                 num_replicas: Optional[int] = None, rank: Optional[int] = None) -> None:
        super().__init__(lengths, batch_size, max_tokens, shuffle, bucket_size, seed, num_replicas, rank)
        self.documents = np.asarray(documents, dtype=np.int64)
        if self.documents.shape != self.lengths.shape:
            raise ValueError(f"{len(self.documents)} document ids for {len(self.lengths)} examples")

    def groups(self) -> list[np.ndarray]:
        """The examples of each document, and each example of none alone, longest group first."""
        by_document: dict[int, list[int]] = {}
        groups = []
        for example, document in enumerate(self.documents.tolist()):
            if document < 0:
                groups.append([example])
            elif document in by_document:
                by_document[document].append(example)
            else:
                by_document[document] = [example]
                groups.append(by_document[document])
        arrays = [np.asarray(group, dtype=np.int64) for group in groups]
        return sorted(arrays, key=lambda group: -int(self.lengths[group].max()))

    def global_batches(self) -> list[np.ndarray]:
        if self.shuffle:
            return super().global_batches()
        batches, current = [], []
        for group in self.groups():
            if current and len(current) + len(group) > self.batch_size:
                batches.append(np.asarray(current, dtype=np.int64))
                current = []
            current.extend(group.tolist())
        if current:
            batches.append(np.asarray(current, dtype=np.int64))
        if len(batches) < self.num_replicas:
            return super().global_batches()
        return batches
