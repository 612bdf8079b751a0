"""The shared base of every seqlab data module: sources, caching, vocabularies in checkpoints, bucketed loaders."""

from __future__ import annotations

import contextlib
import contextvars
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import datasets
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from seqlab import SeqlabError
from seqlab.data_modules.sampler import BucketBatchSampler
from seqlab.data_modules.sources import (
    SPLITS,
    file_signature,
    load_hub,
    looks_local,
    resolve_local,
)

_RESTORED_STATE: contextvars.ContextVar[Optional[dict]] = contextvars.ContextVar("seqlab_restored_state", default=None)


@contextlib.contextmanager
def restoring_state(state: Optional[dict]) -> Iterator[None]:
    """Data modules built inside this block take their vocabularies from ``state`` (a checkpoint's) instead of
    fitting them, so model sizes linked from the data module match the checkpoint without reading train data."""
    token = _RESTORED_STATE.set(state)
    try:
        yield
    finally:
        _RESTORED_STATE.reset(token)


class ListDataset:
    """Columns (lists, or ``datasets`` columns read lazily from Arrow), indexed by example; ``__getitems__`` serves
    whole batches to the DataLoader, reading each lazy column once per batch (one Arrow take, not one per
    example: ~15x faster for token batches)."""

    def __init__(self, columns: dict[str, Sequence]) -> None:
        self.columns = columns
        self.length = len(next(iter(columns.values())))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        return {name: values[index] for name, values in self.columns.items()}

    def __getitems__(self, indices: list[int]) -> list[dict]:
        indices = list(indices)
        fetched = {
            name: [values[i] for i in indices] if isinstance(values, list) else values[indices]
            for name, values in self.columns.items()
        }
        return [dict(zip(fetched, row)) for row in zip(*fetched.values())]


def generate_dataset(generator: Callable[..., Iterator[dict]], features: datasets.Features, cache_dir=None,
                     **gen_kwargs: Any) -> datasets.Dataset:
    """``datasets.Dataset.from_generator`` (cached by the generator and its arguments) that lets seqlab's own
    input errors through as they are, instead of wrapped in a DatasetGenerationError."""
    try:
        return datasets.Dataset.from_generator(
            generator, features=features, gen_kwargs=gen_kwargs, cache_dir=cache_dir
        )
    except datasets.exceptions.DatasetGenerationError as error:
        cause = error.__cause__ or error.__context__
        while cause is not None and not isinstance(cause, SeqlabError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise


class SequenceDataModule(pl.LightningDataModule):
    """Base for seqlab data modules.

    ``path`` is what ``datasets.load_dataset`` takes: a hub id (``owner/name``, with config ``name``), or a local
    directory whose files are matched to splits by name (``train``, ``valid``/``dev``/``eng.testa``, ``test``...),
    or a single local file (train). ``data_files`` maps split names to files explicitly. ``predict_path`` is the
    input of ``predict``.

    Subclasses implement ``read_files`` (local files -> Dataset), ``from_hub`` (hub split -> the same columns),
    ``fit_vocabularies``, ``encode`` (a cached ``datasets.map``), ``collate``, and the vocabulary state.
    """

    #: columns that ``encode`` produces and the loaders serve
    batch_columns: Sequence[str] = ()

    def __init__(
        self,
        path: str,
        name: Optional[str] = None,
        data_files: Optional[dict[str, Union[str, list[str]]]] = None,
        predict_path: Optional[str] = None,
        batch_size: int = 32,
        eval_batch_size: Optional[int] = None,
        max_tokens: Optional[int] = None,
        bucket_size: int = 100,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: Optional[str] = None,
    ) -> None:
        """batch_size: examples per training batch; max_tokens: optional cap on padded tokens per batch;
        eval_batch_size: examples per evaluation batch (default: 2 x batch_size); bucket_size: batches per
        length-sorting pool; seed: the shuffling seed (the epoch is added each epoch)."""
        super().__init__()
        self.path = path
        self.name = name
        self.data_files = data_files
        self.predict_path = predict_path
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or 2 * batch_size
        self.max_tokens = max_tokens
        self.bucket_size = bucket_size
        self.num_workers = num_workers
        self.seed = seed
        self.cache_dir = cache_dir
        self._raw: dict[str, datasets.Dataset] = {}
        self._encoded: dict[str, ListDataset] = {}
        self._sources: Optional[dict[str, list[Path]]] = None
        self._hub: Optional[datasets.DatasetDict] = None
        restored = _RESTORED_STATE.get()
        if restored is not None:
            self.load_state_dict(restored)

    # ----------------------------------------------------------------- to implement
    def read_files(self, split: str, files: list[Path]) -> datasets.Dataset:
        raise NotImplementedError

    def read_predict_files(self, files: list[Path]) -> datasets.Dataset:
        raise NotImplementedError

    def from_hub(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        raise NotImplementedError

    def fit_vocabularies(self, train: datasets.Dataset) -> None:
        raise NotImplementedError

    @property
    def vocabularies_ready(self) -> bool:
        raise NotImplementedError

    def encode(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        raise NotImplementedError

    def collate(self, examples: list[dict]) -> dict:
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state_dict: dict) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------------- shared machinery
    @property
    def is_local(self) -> bool:
        return self.data_files is not None or looks_local(self.path)

    def raw_split(self, split: str) -> datasets.Dataset:
        """The split as read, before encoding (cached in memory and by ``datasets`` on disk)."""
        if split not in self._raw:
            if split == "predict":
                if not self.predict_path:
                    raise SeqlabError("predict needs an input file: --data.predict_path sentences.txt")
                predict_file = Path(self.predict_path)
                if not predict_file.is_file():
                    raise SeqlabError(f"predict input not found: {self.predict_path}")
                self._raw[split] = self.read_predict_files([predict_file])
            elif self.is_local:
                if self._sources is None:
                    self._sources = resolve_local(self.path, self.data_files)
                if split not in self._sources:
                    raise SeqlabError(
                        f"no '{split}' split in {self.path} (found: {', '.join(sorted(self._sources)) or 'none'})"
                    )
                self._raw[split] = self.read_files(split, self._sources[split])
            else:
                if self._hub is None:
                    self._hub = load_hub(self.path, self.name, cache_dir=self.cache_dir)
                if split not in self._hub:
                    raise SeqlabError(f"hub dataset {self.path} has no '{split}' split (has {list(self._hub)})")
                self._raw[split] = self.from_hub(split, self._hub[split])
            if len(self._raw[split]) == 0:
                raise SeqlabError(f"the '{split}' split of {self.path} is empty")
        return self._raw[split]

    def prepare_vocabularies(self) -> None:
        """Fit vocabularies on train unless they were restored from a checkpoint."""
        if not self.vocabularies_ready:
            self.fit_vocabularies(self.raw_split("train"))

    def splits_for(self, stage: Optional[str]) -> tuple[str, ...]:
        return {
            "fit": ("train", "validation"),
            "validate": ("validation",),
            "test": ("test",),
            "predict": ("predict",),
        }.get(stage or "", SPLITS)

    def setup(self, stage: Optional[str] = None) -> None:
        self.prepare_vocabularies()
        for split in self.splits_for(stage):
            if split not in self._encoded:
                encoded = self.encode(split, self.raw_split(split))
                self._encoded[split] = ListDataset({c: encoded[c] for c in self.batch_columns})

    def encoded(self, split: str) -> ListDataset:
        if split not in self._encoded:
            self.setup({"train": "fit", "validation": "validate"}.get(split, split))
        return self._encoded[split]

    def batch_sampler(self, split: str, shuffle: bool) -> BucketBatchSampler:
        data = self.encoded(split)
        return BucketBatchSampler(
            data.columns["length"],
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            max_tokens=self.max_tokens if shuffle else None,
            shuffle=shuffle,
            bucket_size=self.bucket_size,
            seed=self.seed,
        )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.encoded(split),
            batch_sampler=self.batch_sampler(split, shuffle),
            collate_fn=self.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)

    def source_signature(self, split: str, files: list[Path]) -> list:
        """What identifies a split's input for the ``datasets`` cache: file paths, sizes and mtimes."""
        return file_signature(files)
