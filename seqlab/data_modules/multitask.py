"""Multi-task data: several task data modules (the children) under one word vocabulary. Training draws a task per
step by a sampling scheme and serves that task's next batch; evaluation runs every child in turn. Every batch is
its child's own, plus ``"task"``: the child's name."""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.utilities import CombinedLoader

from seqlab import SeqlabError
from seqlab.data.loader import EpochOrder, ResumableDataLoader
from seqlab.data.streaming import InMemory
from seqlab.data_modules.base import SequenceDataModule, linked
from seqlab.data_modules.words import WordVectorsData, WordVocabularyLinks
from seqlab.encoders.vocab import Vocabulary


class TaskSampling:
    """How often each task is drawn: ``probabilities(sizes)``, sizes (K,) = each task's training batches per epoch
    (its examples / batch size) -> p (K,)."""

    def probabilities(self, sizes: Sequence[int]) -> np.ndarray:
        raise NotImplementedError


class Temperature(TaskSampling):
    """p_i ~ n_i^(1/T) (Arivazhagan et al. 2019): T = 1 is proportional to size, T -> inf uniform; in between,
    small tasks are drawn more often than their size alone would have them."""

    def __init__(self, temperature: float = 2.0) -> None:
        if not temperature > 0:
            raise SeqlabError(f"--data.init_args.sampling.init_args.temperature must be positive, got {temperature}")
        self.temperature = temperature

    def probabilities(self, sizes: Sequence[int]) -> np.ndarray:
        weights = np.asarray(sizes, dtype=np.float64) ** (1.0 / self.temperature)  # T = inf: n^0 = 1
        return weights / weights.sum()


class Proportional(Temperature):
    """p_i ~ n_i: with ``steps_per_epoch`` = the sum of the tasks' batches, an epoch serves each batch once."""

    def __init__(self) -> None:
        super().__init__(1.0)


class Uniform(Temperature):
    """p_i = 1 / K, whatever the sizes."""

    def __init__(self) -> None:
        super().__init__(math.inf)


def step_counts(probabilities: np.ndarray, steps: int, offset: float) -> np.ndarray:
    """How many of ``steps`` each task gets (K,): floor or ceil of p_i x steps, summing to ``steps``; over ``offset``
    ~ U[0, 1) each count's mean is exactly p_i x steps (systematic sampling)."""
    bounds = np.round(np.cumsum(probabilities) * steps, 9)
    bounds[-1] = steps
    return np.diff(np.floor(np.concatenate([[0.0], bounds]) + offset)).astype(np.int64)


def with_task(collate: Callable[[list[dict]], dict], task: str, examples: list[dict]) -> dict:
    return {**collate(examples), "task": task}


class TaskSampledLoader(EpochOrder):
    """The training iterable: per step a task, then that task's next batch.

    Epoch e: each task gets floor or ceil of p_i x ``steps`` steps (``step_counts``), in an order shuffled by
    ``(seed, e)``: the same on every rank (the children's samplers shard their batches over ranks and pad them to
    equal counts). A task's batches continue where the previous epoch left them; when its loader runs out it starts
    its next epoch's order. Where each task stands at step k of epoch e follows from the counts of epochs 0..e-1 and
    the first k draws, so a pass does not depend on which passes ran before it in this process.

    Lightning gives the epoch to ``loader.sampler.set_epoch`` (an ``EpochOrder``: itself); without it, each
    pass is the next epoch. ``state_dict`` (the epoch and the steps served, which Lightning keeps in checkpoints)
    and ``load_state_dict``: a run resumed mid-epoch continues that epoch after the steps it had trained on, each
    task at the batch where it stopped.
    """

    def __init__(self, loaders: dict[str, ResumableDataLoader], sampling: TaskSampling,
                 steps: Optional[int] = None, seed: int = 0) -> None:
        self.loaders = loaders
        sizes = [len(loader) for loader in loaders.values()]
        self.probabilities = sampling.probabilities(sizes)
        self.steps = steps or sum(sizes)
        self.seed = seed
        self.served = (0, 0)  # (epoch, steps) of the current pass
        self._lengths: dict[tuple[int, int], int] = {}

    def __len__(self) -> int:
        return self.steps

    def state_dict(self) -> dict:
        return {"epoch": self.served[0], "steps": self.served[1]}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self._resume = (self.epoch, int(state["steps"]))

    def _generator(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch])

    def counts(self, epoch: int) -> np.ndarray:
        """Steps per task (K,) in ``epoch``."""
        return step_counts(self.probabilities, self.steps, self._generator(epoch).random())

    def order(self, epoch: int) -> np.ndarray:
        """The task of each step (steps,) in ``epoch``."""
        generator = self._generator(epoch)
        counts = step_counts(self.probabilities, self.steps, generator.random())
        return generator.permutation(np.repeat(np.arange(len(counts)), counts))

    def __iter__(self) -> Iterator[dict]:
        epoch, skip = self.epoch, self.resume_point()
        self.epoch, self._resume, order = epoch + 1, None, self.order(epoch)
        start = sum((self.counts(e) for e in range(epoch)), np.bincount(order[:skip], minlength=len(self.loaders)))
        streams = [self.batches_from(loader, int(position)) for loader, position in zip(self.loaders.values(), start)]
        self.served = (epoch, skip)
        for task in order[skip:]:
            batch = next(streams[task])
            self.served = (epoch, self.served[1] + 1)
            yield batch

    def batches_from(self, loader: ResumableDataLoader, position: int) -> Iterator[dict]:
        """The loader's batches from ``position`` on in the endless sequence of its epochs 0, 1, 2... (each epoch in
        its own order): the next epoch starts where one runs out."""
        sampler, epoch = loader.batch_sampler, 0
        while True:
            sampler.set_epoch(epoch)
            key = (id(loader), epoch)  # an epoch's batch count, which max_tokens makes depend on its order
            batches = self._lengths[key] = self._lengths.get(key) or len(sampler)
            if position < batches:
                sampler.load_state_dict({**sampler.state_dict(), "batches": position})  # skip the first ``position``
                yield from loader
                position = batches
            position, epoch = position - batches, epoch + 1


@contextmanager
def task_options(name: str) -> Iterator[None]:
    """A task's SeqlabError names its options as the multi-task configuration has them (``--data.batch_size`` ->
    ``--data.init_args.tasks.ner.init_args.batch_size``); other messages (files, lines) get the task in front."""
    try:
        yield
    except SeqlabError as error:
        message, option = str(error), f"--data.init_args.tasks.{name}"
        named = re.sub(r"--data(?=[.:])", f"{option}.init_args", message)
        raise SeqlabError(named if named != message else f"{option}: {message}") from None


class MultiTaskData(WordVocabularyLinks, SequenceDataModule):
    """Several tasks' data for one multi-task model: ``tasks`` maps a task name to its data module (a
    ``TokenClassificationData`` or ``TextClassificationData``, with its own files, options and labels).

    One word vocabulary: the first task's (with its normalisation: ``lowercase``, ``normalize_digits``), extended with
    the words of the others, used by every task; the same for the character vocabulary of the tasks that have one.
    ``vectors`` (pretrained rows for that vocabulary) come from the first task that names them.

    Training: per step a task drawn by ``sampling`` (``Proportional`` to the tasks' training batches, ``Uniform``,
    ``Temperature``; see ``TaskSampledLoader``), ``steps_per_epoch`` steps (default: all the tasks' training batches);
    ``seed`` seeds the draws and the children's own orders (those without a ``seed``). Validation and test: every
    task's batches, one task after another. ``predict_tasks`` (default all) read ``predict_path``.

    Linked into the model: ``vocab_size``, ``char_vocab_size`` (0: no task has characters), ``padding_idx``,
    ``word_vectors`` and ``task_labels`` (task name -> its labels). The checkpoint holds every task's encoders.
    """

    def __init__(
        self,
        tasks: dict[str, SequenceDataModule],
        sampling: TaskSampling = Proportional(),
        steps_per_epoch: Optional[int] = None,
        predict_tasks: Optional[list[str]] = None,
        seed: Optional[int] = None,
        predict_path: Optional[str] = None,
    ) -> None:
        pl.LightningDataModule.__init__(self)  # no files of its own: its children have theirs
        if not tasks:
            raise SeqlabError("--data.init_args.tasks: a multi-task data module needs at least one task")
        for name, child in tasks.items():
            if not isinstance(child, WordVectorsData):
                raise SeqlabError(f"--data.init_args.tasks.{name}: {type(child).__name__} has no word vocabulary to "
                                  "share; the tasks of one model read words (TokenClassificationData, "
                                  "TextClassificationData)")
            if not isinstance(child.dataset, InMemory):
                raise SeqlabError(f"--data.init_args.tasks.{name}.init_args.dataset: the tasks of a multi-task model are "
                                  f"read in memory ({type(child.dataset).__name__} is not supported here yet)")
        unknown = [name for name in predict_tasks or [] if name not in tasks]
        if unknown:
            raise SeqlabError(f"--data.init_args.predict_tasks: no task {', '.join(unknown)} (tasks: "
                              f"{', '.join(tasks)})")
        if steps_per_epoch is not None and steps_per_epoch < 1:
            raise SeqlabError(f"--data.init_args.steps_per_epoch must be at least 1, got {steps_per_epoch}")
        self.save_hyperparameters()
        self.tasks = dict(tasks)
        self.sampling = sampling
        self.steps_per_epoch = steps_per_epoch
        self.predict_tasks = list(predict_tasks or tasks)
        self.seed = seed
        self.predict_path = predict_path
        for index, child in enumerate(self.tasks.values()):
            if child.seed is None:
                child.seed = int(np.random.SeedSequence([seed or 0, index]).generate_state(1)[0])
        for name in self.predict_tasks:
            if predict_path is not None:
                self.tasks[name].predict_path = predict_path
        self.vectors = next((child.vectors for child in self.tasks.values() if child.vectors), None)
        self.words: Optional[Vocabulary] = None
        self.chars: Optional[Vocabulary] = None

    def __str__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{name}: {child}' for name, child in self.tasks.items())})"

    # ----------------------------------------------------------------- what the model is built from
    char_vocab_size = linked(lambda self: len(self.chars) if self.chars is not None else 0)
    task_labels = linked(lambda self: {name: list(child.labels) for name, child in self.tasks.items()},
                         "Task name -> that task's labels, in the order of ``tasks``.")

    # ----------------------------------------------------------------- encoders
    @property
    def encoders_ready(self) -> bool:
        return self.words is not None and all(child.encoders_ready for child in self.tasks.values())

    def prepare_encoders(self) -> None:
        """Each task's encoders fitted on its train (unless restored), then the vocabularies shared."""
        if self.encoders_ready:
            return
        for name, child in self.tasks.items():
            with task_options(name):
                child.prepare_encoders()
        self.share_vocabularies()

    def share_vocabularies(self) -> None:
        """One word vocabulary, the first task's extended with the others' words, used by every task from now on;
        the same for characters among the tasks that have them."""
        self.words = joined(child.words for child in self.tasks.values())
        self.chars = joined(getattr(child, "chars", None) for child in self.tasks.values())
        self._word_vectors = None
        for name, child in self.tasks.items():
            with task_options(name):
                child.words = self.words
                if getattr(child, "chars", None) is not None:
                    child.chars = self.chars
            child._encoded.clear()  # anything encoded with the task's own vocabulary

    def state_dict(self) -> dict:
        if not self.encoders_ready:
            return {}
        return {name: child.state_dict() for name, child in self.tasks.items()}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            for name, child in self.tasks.items():
                child.load_state_dict(state_dict.get(name) or {})
            self.share_vocabularies()

    # ----------------------------------------------------------------- loaders
    def setup(self, stage: Optional[str] = None) -> None:
        self.prepare_encoders()
        for name in self.predict_tasks if stage == "predict" else self.tasks:
            with task_options(name):
                self.tasks[name].setup(stage)

    def _loaders(self, split: str) -> dict:
        """Each task's loader of ``split`` (of ``predict``: the ``predict_tasks``'), its batches carrying the task's
        name."""
        self.prepare_encoders()
        loaders = {}
        for name in self.predict_tasks if split == "predict" else self.tasks:
            child = self.tasks[name]
            child.trainer = self.trainer  # pinned memory on CUDA, as the trainer's own data module
            with task_options(name):
                loaders[name] = child.sampled_loader(split, shuffle=split == "train",
                                                     collate=partial(with_task, child.collate, name))
        return loaders

    def train_dataloader(self) -> TaskSampledLoader:
        return TaskSampledLoader(self._loaders("train"), self.sampling, self.steps_per_epoch,
                                 self.seed if self.seed is not None else 0)

    def evaluation_loader(self, split: str) -> CombinedLoader:
        """Every task's batches of ``split``, one task after another."""
        return CombinedLoader(self._loaders(split), mode="sequential")


def joined(vocabularies: Iterator[Optional[Vocabulary]]) -> Optional[Vocabulary]:
    """A copy of the first vocabulary given (None ones skipped) with the others' tokens appended in their order,
    normalised as the first normalises; None when none is given."""
    joint = None
    for vocabulary in vocabularies:
        if vocabulary is None:
            continue
        if joint is None:
            joint = Vocabulary.from_state_dict(vocabulary.state_dict())
            continue
        for token in vocabulary.itos[len(vocabulary.specials):]:
            joint.add(token)
    return joint
