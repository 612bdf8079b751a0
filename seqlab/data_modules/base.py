"""The shared base of every seqlab data module: a split source, the bad-row policy, caching, encoders fitted on train
and restored from checkpoints, bucketed loaders. A task data module declares its readers, encoders and collator."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union
import uuid

import datasets
import pytorch_lightning as pl
from pytorch_lightning.accelerators import CUDAAccelerator
from torch.utils.data import DataLoader

from seqlab import SeqlabError
from seqlab.data.loader import ResumableDataLoader
from seqlab.data.policy import OnBadRow, apply_policy, check_policy
from seqlab.data.rows import ListDataset, generate_dataset, rowwise
from seqlab.data.sampler import BucketBatchSampler
from seqlab.data.sources import SPLITS, SplitSource, file_signature
from seqlab.data.streaming import InMemory, TrainingSplit


def part_option(value: Any, kind: type, option: str) -> Any:
    """An option that is a part (a class): given as an object, or as its configuration (``class_path`` and
    ``init_args``, as a checkpoint's data hyperparameters hold it), which is instantiated."""
    if value is None or isinstance(value, kind):
        return value
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument(f"--{option}", type=Optional[kind])
    return getattr(parser.instantiate_classes(parser.parse_object({option: value})), option)


def linked(value: Callable[[Any], Any], doc: str = "") -> property:
    """A value the CLI links into the model: from the fitted (or restored) encoders and the options, reading nothing."""

    def read(self: "SequenceDataModule") -> Any:
        self.require_encoders()
        return value(self)

    return property(read, doc=doc)


class SequenceDataModule(pl.LightningDataModule):
    """Base for seqlab data modules: ``path`` (``SplitSource``: a hub id, a local directory, one file),
    ``data_files`` (split -> files), ``predict_path`` (the input of ``predict``), ``on_bad_row`` (``error`` | ``skip``
    | ``warn``: what a bad input row does, the same in every task), ``dataset`` (how the training split is held:
    ``InMemory``, the default, or ``Streaming`` for data larger than memory) and the loaders' options.

    A task module implements: ``row_reader`` (a split's local files -> a generator of rows, each with
    ``source``/``line`` and an ``error`` message column for the bad-row policy; or ``read`` itself), ``read_predict``,
    ``standardize`` (hub rows), ``fit_encoders`` and ``encoders_ready``, ``batch_encoder`` (what ``encode`` maps, to
    ``batch_columns``), ``collate`` (-> the task's Batch) and the encoders' ``state_dict``/``load_state_dict``.
    Encoders are fitted on train by ``prepare_encoders`` (called by ``setup`` and by the CLI before it links sizes
    into the model), or restored from a checkpoint: ``from_checkpoint``. A module that streams names the
    ``raw_columns`` that ``batch_encoder`` reads.
    """

    #: columns that ``encode`` produces and the loaders serve (and those served when a split has them)
    batch_columns: Sequence[str] = ()
    optional_columns: Sequence[str] = ()
    #: renamed options of checkpoints written by older versions: old name -> (new name, value -> new value)
    renamed_options: dict[str, tuple[str, Callable[[Any], Any]]] = {}

    def __init__(
        self,
        path: str,
        name: Optional[str] = None,
        data_files: Optional[dict[str, Union[str, list[str]]]] = None,
        predict_path: Optional[str] = None,
        on_bad_row: OnBadRow = "error",
        batch_size: int = 32,
        eval_batch_size: Optional[int] = None,
        max_tokens: Optional[int] = None,
        bucket_size: int = 100,
        num_workers: int = 0,
        seed: Optional[int] = None,
        cache_dir: Optional[str] = None,
        dataset: Optional[TrainingSplit] = None,
    ) -> None:
        """batch_size: examples per training batch; max_tokens: optional cap on padded tokens per batch;
        eval_batch_size: examples per evaluation batch (default: 2 x batch_size); bucket_size: batches per
        length-sorting pool; seed: the shuffling seed (the epoch is added each epoch; by default the run's
        ``--seed_everything``, which the CLI fills in, else 0). The options of every class in the chain of
        constructors are saved as ``hparams`` (which checkpoints keep)."""
        super().__init__()
        self.save_hyperparameters()
        for option, value in (("batch_size", batch_size), ("bucket_size", bucket_size),
                              ("eval_batch_size", eval_batch_size), ("max_tokens", max_tokens)):
            if value is not None and value < 1:
                raise SeqlabError(f"--data.{option} must be at least 1, got {value}")
        if num_workers < 0:
            raise SeqlabError(f"--data.num_workers must be at least 0 (0 loads in the main process), got {num_workers}")
        self.path = path
        self.source = SplitSource(path, name, data_files, cache_dir)
        self.predict_path = predict_path
        self.on_bad_row = check_policy(on_bad_row)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or 2 * batch_size
        self.max_tokens = max_tokens
        self.bucket_size = bucket_size
        self.num_workers = num_workers
        self.seed = seed
        self.cache_dir = cache_dir
        self.dataset = part_option(dataset, TrainingSplit, "dataset") or InMemory()
        self._raw: dict[str, datasets.Dataset] = {}
        self._encoded: dict[str, ListDataset] = {}

    def __str__(self) -> str:
        """Names the data (Lightning's ``__str__`` builds every loader, and jsonargparse formats the data module in
        each link it skips)."""
        return f"{type(self).__name__}({self.path})"

    @classmethod
    def migrate_options(cls, options: dict) -> dict:
        """A checkpoint's data options with renamed ones given their new names (a one-time migration)."""
        options = dict(options)
        for old, (new, convert) in cls.renamed_options.items():
            if old in options:
                value = options.pop(old)
                options.setdefault(new, convert(value))
        return options

    @classmethod
    def from_checkpoint(cls, checkpoint: Union[str, Path, dict], **overrides: Any) -> "SequenceDataModule":
        """The data module a checkpoint was trained with (its options, ``overrides`` on top; parts, such as a
        multi-task module's tasks, built from their configuration), encoders restored; nothing is read."""
        from jsonargparse import ArgumentParser

        from seqlab.checkpoints import class_of, migrate_checkpoint, read_checkpoint

        source = checkpoint
        checkpoint = migrate_checkpoint(read_checkpoint(checkpoint))
        saved = checkpoint.get("datamodule_hyper_parameters") or {}
        saved_class = class_of(str(saved.get("_class_path", "")))
        if cls is SequenceDataModule:
            if not (isinstance(saved_class, type) and issubclass(saved_class, SequenceDataModule)):
                named = "" if isinstance(source, dict) else f"{source}: "
                raise SeqlabError(f"{named}the checkpoint records no seqlab data module (was it written by "
                                  "`seqlab fit`?)")
            return saved_class.from_checkpoint(checkpoint, **overrides)
        options = {key: copy.deepcopy(value) for key, value in saved.items()  # parsing makes Namespaces in place
                   if not key.startswith("_")}
        parser = ArgumentParser(exit_on_error=False)
        parser.add_class_arguments(cls, "data", fail_untyped=False)
        data = parser.instantiate(parser.parse_object({"data": {**options, **overrides}})).data
        data.load_state_dict(checkpoint.get(cls.__qualname__) or {})
        return data

    # ----------------------------------------------------------------- to implement
    #: the columns of the rows ``row_reader``'s generator yields
    row_features: datasets.Features

    def row_reader(self, split: str, files: list[Path]) -> tuple[Callable[..., Iterator[dict]], dict]:
        """(a generator of the split's rows, its keyword arguments): what ``read`` caches and ``read_lazily``
        streams; the arguments key the cache, so they hold the files' ``signature``."""
        raise NotImplementedError

    def input_rows(self, inputs: list) -> datasets.Dataset:
        """In-memory inputs of the Python API (texts; audio files for speech) -> the rows ``read_predict`` gives."""
        raise NotImplementedError

    def from_hub(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        return self.standardize(split, dataset, source=f"{self.path}[{split}]")

    def standardize(self, split: str, dataset: datasets.Dataset, source: str) -> datasets.Dataset:
        """Rows of a hub or parquet/JSON dataset -> the columns the module's readers give."""
        raise NotImplementedError

    def map_rows(self, split: str, dataset: datasets.Dataset, columns: Sequence[str], convert: Callable[..., dict]
                 ) -> datasets.Dataset:
        """A hub/parquet/JSON dataset -> ``row_features``: ``convert(row_number, *values of columns)`` gives each
        row's values (``error`` set for a bad row), then the bad-row policy. Cached by ``datasets``."""
        return self.checked(split, dataset.map(rowwise(convert, columns), batched=True, with_indices=True,
                                               features=self.row_features, remove_columns=dataset.column_names,
                                               desc="standardizing", **self.map_options(split)))

    @staticmethod
    def map_options(split: str) -> dict:
        """``datasets.map`` options per split: the ``predict`` split (a program's or a server's inputs, encoded once)
        gets a fresh fingerprint, so ``datasets`` does not hash the encoding function and its vocabulary at every
        call (about 0.3 s, most of a one-sentence prediction)."""
        return {"new_fingerprint": f"seqlab-predict-{uuid.uuid4().hex}"} if split == "predict" else {}

    @staticmethod
    def require_columns(dataset: datasets.Dataset, source: str, **columns: str) -> None:
        """Each ``option=column`` must be a column of ``dataset``: else one line naming the option to set."""
        for option, column in columns.items():
            if column not in dataset.column_names:
                raise SeqlabError(f"{source}: no field '{column}' (fields: {', '.join(dataset.column_names)}); "
                                  f"set --data.{option}")

    #: the columns of the read rows that ``batch_encoder`` encodes
    raw_columns: Sequence[str] = ()

    def batch_encoder(self, split: str) -> Callable[[dict, list[int]], dict]:
        """What ``encode`` maps over a split: (columns of rows, their indices) -> the encoded columns, with an
        ``error`` message (or a ``long`` flag) for a row to drop."""
        raise NotImplementedError

    def encode_rows(self, split: str, rows: list[dict]) -> list[dict]:
        """For a ``Streaming`` dataset: rows (with ``index``) -> the encoded examples, those to drop left out."""
        columns = {name: [row[name] for row in rows] for name in (*self.raw_columns, "index")}
        encoded = {**columns, **self.batch_encoder(split)(columns, columns["index"])}
        examples = (dict(zip(encoded, values)) for values in zip(*encoded.values()))
        return [example for example in examples if not example.get("error") and not example.get("long")]

    def local_files(self, split: str) -> list[Path]:
        """The split's local files; a hub id cannot be read lazily."""
        if not self.source.is_local:
            raise SeqlabError(f"a Streaming dataset reads local files; {self.path} is a hub id: pass --data.path "
                              "/path/to/dir (with train/valid/test files) or --data.data_files")
        return self.source.files(split)

    # ----------------------------------------------------------------- shared machinery
    signature = staticmethod(file_signature)

    def generated(self, split: str, generator: Callable[..., Iterator[dict]],
                  features: Optional[datasets.Features] = None, /, **arguments: Any) -> datasets.Dataset:
        """The rows of ``generator(**arguments)`` (``row_features`` by default), cached, after the bad-row policy."""
        return self.checked(split, generate_dataset(generator, features or self.row_features, self.cache_dir,
                                                    **arguments))

    def read(self, split: str, files: list[Path]) -> datasets.Dataset:
        """The split's local files read by ``row_reader``."""
        generator, arguments = self.row_reader(split, files)
        return self.generated(split, generator, **arguments)

    def read_lazily(self, split: str) -> Callable[[], Iterator[dict]]:
        """For a ``Streaming`` dataset: a callable giving the split's rows (as ``read`` reads them, with their
        ``error`` message), read from its files again at each call."""
        generator, arguments = self.row_reader(split, self.local_files(split))
        return functools.partial(generator, **arguments)

    def encode(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        """``batch_encoder`` mapped over the split (cached by ``datasets``), then the bad-row policy on the ``error``
        column it gives, if any."""
        encoded = dataset.map(self.batch_encoder(split), batched=True, with_indices=True, desc=f"encoding {split}",
                              **self.map_options(split))
        return self.checked(split, encoded) if "error" in encoded.column_names else encoded

    def checked(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        """The rows of ``dataset`` after the bad-row policy (its ``error`` column)."""
        return apply_policy(dataset, self.on_bad_row, split)

    def raw_split(self, split: str) -> datasets.Dataset:
        """The split as read, before encoding (cached in memory and by ``datasets`` on disk)."""
        if split not in self._raw:
            if split == "predict":
                if not self.predict_path:
                    raise SeqlabError("predict needs an input file: --data.predict_path sentences.txt")
                predict = Path(self.predict_path).expanduser()
                if not predict.exists():
                    raise SeqlabError(f"predict input not found: {self.predict_path}")
                self._raw[split] = self.read_predict(predict)
            elif self.source.is_local:
                self._raw[split] = self.read(split, self.source.files(split))
            else:
                self._raw[split] = self.from_hub(split, self.source.hub_split(split))
            if len(self._raw[split]) == 0:
                where = self.predict_path if split == "predict" else self.path
                raise SeqlabError(f"the '{split}' split of {where} is empty")
        return self._raw[split]

    def require_encoders(self) -> None:
        if not self.encoders_ready:
            raise SeqlabError(f"{type(self).__name__}: encoders not fitted; call prepare_encoders() first "
                              "(or build the data module with from_checkpoint)")

    def prepare_encoders(self) -> None:
        """Fit the encoders on train, unless they were restored from a checkpoint."""
        if not self.encoders_ready:
            self.fit_encoders(self.dataset.fitting_rows(self))

    def splits_for(self, stage: Optional[str]) -> tuple[str, ...]:
        return {
            "fit": ("train", "validation"),
            "validate": ("validation",),
            "test": ("test",),
            "predict": ("predict",),
        }.get(stage or "", SPLITS)

    def setup(self, stage: Optional[str] = None) -> None:
        for split in self.splits_for(stage):
            if split == "train":
                self.dataset.prepare(self)
            else:
                self.encoded(split)

    def encoded_split(self, split: str) -> ListDataset:
        encoded = self.encode(split, self.raw_split(split))
        optional = [c for c in self.optional_columns if c in encoded.column_names]
        return ListDataset({c: encoded[c] for c in (*self.batch_columns, *optional)})

    def encoded_inputs(self, inputs: Sequence) -> ListDataset:
        """Inputs of the Python API encoded as the ``predict`` split is; a bad input stops with one line."""
        self.require_encoders()
        rows = self.input_rows(list(inputs))
        bad = next((message for message in rows["error"] if message), None)
        if bad is not None:
            raise SeqlabError(bad)
        self._raw["predict"] = rows
        self._encoded.pop("predict", None)
        return self.encoded("predict")

    def encoded(self, split: str) -> ListDataset:
        """The split encoded for the loaders (the encoders fitted first if need be), once."""
        if split not in self._encoded:
            self.prepare_encoders()
            self._encoded[split] = self.encoded_split(split)
        return self._encoded[split]

    def batch_sampler(self, split: str, shuffle: bool) -> BucketBatchSampler:
        data = self.encoded(split)
        return BucketBatchSampler(
            data.columns["length"],
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            max_tokens=self.max_tokens if shuffle else None,
            shuffle=shuffle,
            bucket_size=self.bucket_size,
            seed=self.seed if self.seed is not None else 0,
        )

    @property
    def pins_memory(self) -> bool:
        """Whether batches are page-locked, so that the copies to the device are asynchronous: on CUDA only."""
        return self.trainer is not None and isinstance(self.trainer.accelerator, CUDAAccelerator)

    def sampled_loader(self, split: str, shuffle: bool, collate: Optional[Callable[[list[dict]], dict]] = None
                       ) -> DataLoader:
        """Training (``shuffle``): a ``ResumableDataLoader``, whose position the checkpoints keep; evaluation: a
        plain DataLoader. ``collate``: instead of ``self.collate`` (a multi-task module's, which names the task)."""
        try:
            sampler = self.batch_sampler(split, shuffle)
        except ValueError as error:
            raise SeqlabError(f"--data: {error}") from None
        loader = ResumableDataLoader if shuffle else DataLoader
        return loader(
            self.encoded(split),
            batch_sampler=sampler,
            collate_fn=collate or self.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pins_memory,
        )

    def train_dataloader(self) -> DataLoader:
        return self.dataset.loader(self)

    def evaluation_loader(self, split: str) -> DataLoader:
        """The loader of ``validation``, ``test`` or ``predict``: each example once, in batches of similar length."""
        return self.sampled_loader(split, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return self.evaluation_loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self.evaluation_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.evaluation_loader("predict")

