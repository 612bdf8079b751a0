"""How a data module holds its training split, a part chosen with ``--data.dataset``: ``InMemory`` (the default) or
``Streaming``, for a training split larger than memory.

``Streaming`` reads the split's local files lazily, as a torch ``IterableDataset`` over the data module's own
readers, rather than through ``datasets`` streaming or a memory-mapped Arrow copy: the text files already are the
on-disk store (an Arrow copy doubles the disk and its pages, once read, count in the process's resident memory), the
readers keep each row's ``file:line`` for errors, and ``datasets`` shards an iterable dataset by file, so one large
file would feed one DataLoader worker only; here examples are dealt to ranks and workers one by one.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any, Callable, Iterable, Iterator, Optional

import numpy as np
from pytorch_lightning.utilities import rank_zero_warn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from seqlab import SeqlabError
from seqlab.data.loader import EpochOrder, ResumableDataLoader
from seqlab.data.policy import bad_row_error, report_dropped
from seqlab.data.sampler import _world


class RowStream:
    """A split's rows, read from its files again at every pass (``read()`` gives a fresh iterator of the reader's
    rows, each with its ``error`` message or ""), under the bad-row policy: ``error`` stops at the first bad row (one
    line naming its file and line), ``skip``/``warn`` drop bad rows, reported once, after the first complete pass,
    which also counts the good rows (``count``). ``stream[column]`` iterates one column over a pass: what
    ``fit_encoders`` reads of a ``datasets.Dataset``, so encoders are fitted in one pass per column read, never
    holding the split."""

    def __init__(self, read: Callable[[], Iterable[dict]], on_bad_row: str, split: str, where: str) -> None:
        self.read, self.on_bad_row, self.split, self.where = read, on_bad_row, split, where
        self.count: Optional[int] = None

    def __iter__(self) -> Iterator[dict]:
        good, dropped, first = 0, 0, []
        for row in self.read():
            if not row["error"]:
                good += 1
                yield row
            elif self.on_bad_row == "error":
                raise bad_row_error(row["error"])
            else:
                dropped, first = dropped + 1, first if len(first) == 3 else [*first, row["error"]]
        if self.count is None:
            if dropped:
                report_dropped(self.on_bad_row, self.split, first, dropped, good + dropped)
            if not good:
                raise SeqlabError(f"the '{self.split}' split of {self.where} is empty")
            self.count = good

    def __getitem__(self, column: str) -> Iterator:
        return (row[column] for row in self)

    def counted(self) -> "RowStream":
        """Itself, after a pass that counts the rows (and applies the policy) if none has yet."""
        if self.count is None:
            for _ in self:
                pass
        return self


def owners(count: int, shards: int, seed: int) -> Iterator[int]:
    """The shard of each of ``count`` examples in turn: every block of ``shards`` consecutive examples is dealt to the
    shards in a random order drawn from ``seed`` (the last, partial block in shard order), so each example is in
    exactly one shard, shard ``s`` holds ``count // shards + (s < count % shards)``, and which examples share a
    shard changes with the seed."""
    rng, blocks = np.random.default_rng(seed), count // shards
    for start in range(0, blocks, 1024):
        yield from rng.random((min(1024, blocks - start), shards)).argsort(axis=1).ravel().tolist()
    yield from range(count % shards)


def shuffled(items: Iterable, size: int, rng: np.random.Generator) -> Iterator:
    """``items`` in a random order from a buffer of ``size``: each new item takes the place of a random held one,
    which is given out; what is held at the end comes out shuffled."""
    buffer: list = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        slot = int(rng.integers(size))
        buffer[slot], item = item, buffer[slot]
        yield item
    rng.shuffle(buffer)
    yield from buffer


class StreamingBatches(EpochOrder, IterableDataset):
    """Training batches of a ``RowStream`` (with its ``count``), encoded on the fly by ``encode`` (rows -> the
    examples kept, each with ``length``), as lists of examples for the collator.

    Each epoch the ``count`` examples are dealt to ``num_replicas`` ranks x ``workers`` DataLoader workers
    (``owners``, seeded by seed + epoch: each example in exactly one shard); each worker reads the files, encodes
    its own examples, passes them through a shuffle buffer of ``shuffle_buffer`` examples, and cuts pools of
    ``bucket_size`` batches, sorted by length, into batches of ``batch_size`` given out in a random order. A worker
    gives ``ceil(its examples / batch_size)`` batches; the first worker of a rank with fewer batches than another
    rank repeats its last one until they are even, so every rank runs as many steps (``len``). Examples ``encode``
    drops (pairs over ``max_length``) leave a batch short or repeated the same way.

    Resuming (``state_dict``/``load_state_dict``, through ``ResumableDataLoader``) is exact on the same number of
    ranks and workers: the epoch's batches are made again and the ones already served skipped, each worker knowing
    its share from the order in which a DataLoader takes batches from its workers (in turn, passing over those that
    are done). On another number of ranks or workers the interrupted epoch restarts from its first batch (with a
    warning): its examples seen before the interruption are seen again.
    """

    def __init__(self, rows: RowStream, encode: Callable[[list[dict]], list[dict]], batch_size: int,
                 bucket_size: int = 100, shuffle_buffer: int = 10000, seed: int = 0, workers: int = 1,
                 num_replicas: Optional[int] = None, rank: Optional[int] = None) -> None:
        world_rank, world_size = _world()
        self.rows, self.encode, self.batch_size, self.bucket_size = rows.counted(), encode, batch_size, bucket_size
        self.shuffle_buffer, self.seed, self.workers = shuffle_buffer, seed, workers
        self.num_replicas = num_replicas if num_replicas is not None else world_size
        self.rank = rank if rank is not None else world_rank
        shards = self.num_replicas * workers
        if rows.count < shards:
            raise SeqlabError(f"the training split's {rows.count} examples cannot feed {self.num_replicas} processes x "
                              f"{workers} loader workers: use fewer --data.num_workers or devices")

    # ----------------------------------------------------------------- the order's protocol (see ResumableDataLoader)
    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "batches": 0, "num_replicas": self.num_replicas,
                "workers": self.workers}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])
        self._resume = (self.epoch, int(state["batches"]))
        if (state.get("num_replicas"), state.get("workers")) != (self.num_replicas, self.workers):
            rank_zero_warn(f"the checkpoint's streaming position is on {state.get('num_replicas')} processes x "
                           f"{state.get('workers')} loader workers, this run has {self.num_replicas} x {self.workers}: "
                           f"epoch {self.epoch} restarts from its first batch")
            self._resume = None

    # ----------------------------------------------------------------- how many batches, from which worker
    def plan(self) -> list[int]:
        """The batches each worker of this rank gives in an epoch."""
        count, shards = self.rows.count, self.num_replicas * self.workers
        per_shard = [math.ceil((count // shards + (s < count % shards)) / self.batch_size) for s in range(shards)]
        ranks = [per_shard[r * self.workers:(r + 1) * self.workers] for r in range(self.num_replicas)]
        mine = ranks[self.rank]
        mine[0] += max(map(sum, ranks)) - sum(mine)
        return mine

    def __len__(self) -> int:
        return sum(self.plan())

    def resumed(self, plan: list[int]) -> tuple[list[int], list[int]]:
        """(served, roles): how many batches each worker had given when the loader had handed out ``resume_point()``
        of them (taken in turn from the workers not yet done), and which worker's part each DataLoader worker plays,
        so that taking them in turn again continues the interleaving where it stopped."""
        left, served, turn = list(plan), [0] * len(plan), 0
        for _ in range(min(self.resume_point(), sum(plan))):
            while not left[turn]:
                turn = (turn + 1) % len(plan)
            left[turn], served[turn], turn = left[turn] - 1, served[turn] + 1, (turn + 1) % len(plan)
        rotated = [(turn + i) % len(plan) for i in range(len(plan))]
        return served, [w for w in rotated if left[w]] + [w for w in rotated if not left[w]]

    def __iter__(self) -> Iterator[list[dict]]:
        info = get_worker_info()
        if (info.num_workers if info is not None else 1) != self.workers:
            raise RuntimeError(f"StreamingBatches was planned for {self.workers} loader workers")
        plan = self.plan()
        served, roles = self.resumed(plan)
        part = roles[info.id if info is not None else 0]
        batches = self.padded(self.batches(self.rank * self.workers + part), plan[part])
        return itertools.islice(batches, served[part], None)

    # ----------------------------------------------------------------- one worker's batches
    def examples(self, shard: int) -> Iterator[dict]:
        """The shard's examples, encoded in chunks; ``index``: the example's position among the split's rows."""
        deal = owners(self.rows.count, self.num_replicas * self.workers, self.seed + self.epoch)
        mine = (dict(row, index=i) for i, (row, owner) in enumerate(zip(self.rows, deal)) if owner == shard)
        while chunk := list(itertools.islice(mine, 256)):
            yield from self.encode(chunk)

    def batches(self, shard: int) -> Iterator[list[dict]]:
        rng = np.random.default_rng([self.seed + self.epoch, shard])
        examples = shuffled(self.examples(shard), self.shuffle_buffer, rng)
        while pool := list(itertools.islice(examples, self.batch_size * self.bucket_size)):
            order = np.argsort([-example["length"] for example in pool], kind="stable")
            cut = [order[start:start + self.batch_size] for start in range(0, len(pool), self.batch_size)]
            for batch in rng.permutation(len(cut)):
                yield [pool[i] for i in cut[batch]]

    @staticmethod
    def padded(batches: Iterator[list[dict]], total: int) -> Iterator[list[dict]]:
        """``total`` batches: those of ``batches``, then its last one again as often as needed."""
        last, given = None, 0
        for given, last in enumerate(itertools.islice(batches, total), 1):
            yield last
        if given < total and last is None:
            raise SeqlabError("a training stream has no example left (are all pairs over max_length?)")
        for _ in range(total - given):
            yield last


# --------------------------------------------------------------------------------------------- the option
class TrainingSplit:
    """How a data module holds and batches its training split (``--data.dataset``): ``fitting_rows`` (what the
    encoders are fitted on), ``prepare`` (at ``setup``) and ``loader`` (the training DataLoader)."""

    def fitting_rows(self, data: Any) -> Any:
        raise NotImplementedError

    def prepare(self, data: Any) -> None:
        raise NotImplementedError

    def loader(self, data: Any) -> DataLoader:
        raise NotImplementedError


class InMemory(TrainingSplit):
    """The default: the split read into a ``datasets`` Arrow cache and encoded by a cached ``datasets.map`` (both
    memory-mapped), its lengths in memory; batches from ``BucketBatchSampler`` (length pools over the whole shuffled
    split), resumable mid-epoch exactly."""

    def fitting_rows(self, data: Any) -> Any:
        return data.raw_split("train")

    def prepare(self, data: Any) -> None:
        data.encoded("train")

    def loader(self, data: Any) -> DataLoader:
        return data.sampled_loader("train", shuffle=True)


class Streaming(TrainingSplit):
    """The training split read lazily from its local files at every epoch and encoded on the fly
    (``StreamingBatches``): memory holds ``shuffle_buffer`` examples and a pool of ``bucket_size`` batches per loader
    worker, whatever the split's size. Encoders are fitted in one pass over the split per text column they read
    (translation: sources, then targets, as the in-memory path feeds them); the first pass also counts the rows and
    applies ``on_bad_row``. Batches hold ``batch_size`` examples (``max_tokens`` is refused: each rank must know its
    number of batches in advance). Validation and test splits stay in memory.

    ``yaml: dataset: {class_path: seqlab.data_modules.Streaming, init_args: {shuffle_buffer: 10000}}``
    """

    def __init__(self, shuffle_buffer: int = 10000) -> None:
        if shuffle_buffer < 1:
            raise SeqlabError(f"--data.dataset.shuffle_buffer must be at least 1, got {shuffle_buffer}")
        self.shuffle_buffer = shuffle_buffer
        self._rows: dict[int, RowStream] = {}  # per data module: the training rows, counted once

    def fitting_rows(self, data: Any) -> RowStream:
        if id(data) not in self._rows:
            self._rows[id(data)] = RowStream(data.read_lazily("train"), data.on_bad_row, "train", data.path)
        return self._rows[id(data)]

    def prepare(self, data: Any) -> None:
        """Nothing: the training split is read when the loader is."""

    def loader(self, data: Any) -> DataLoader:
        if data.max_tokens is not None:
            raise SeqlabError("--data.max_tokens does not apply to a Streaming dataset (its batches hold "
                              "--data.batch_size examples); leave it unset")
        batches = StreamingBatches(self.fitting_rows(data), functools.partial(data.encode_rows, "train"),
                                   data.batch_size, data.bucket_size, self.shuffle_buffer,
                                   seed=data.seed if data.seed is not None else 0, workers=max(1, data.num_workers))
        return ResumableDataLoader(batches, batch_size=None, collate_fn=data.collate, num_workers=data.num_workers,
                                   pin_memory=data.pins_memory,
                                   epoch=lambda: data.trainer.current_epoch if data.trainer is not None else None)
