"""After training: ``seqlab.load(path)`` gives a ``Predictor``, the checkpoint's encoders and model without a Trainer,
a config file or the training data, and ``predict(inputs)`` gives the records ``seqlab predict`` writes."""

from __future__ import annotations

import io
import logging
import operator
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import datasets
import numpy as np
import torch

from seqlab import SeqlabError
from seqlab.checkpoints import class_of, migrate_checkpoint, read_checkpoint
from seqlab.data.sampler import BucketBatchSampler
from seqlab.data_modules.base import ListDataset, SequenceDataModule
from seqlab.data_modules.multitask import MultiTaskData
from seqlab.encoders.vectors import PretrainedVectors
from seqlab.encoders.vocab import Vocabulary
from seqlab.models.embeddings import WordEmbedder
from seqlab.tasks.base import SequenceTask

log = logging.getLogger(__name__)


class OpenVocabulary:
    """Words that training never saw but the pretrained vectors know get their vectors at predict time: ``admit``
    adds each to the data module's word vocabulary and a row to the model's word embedding (through the linear map
    that fine-tuning implies, see ``append_rows``), instead of leaving it UNK. The vectors are those the model was
    trained with (the data module's ``vectors``: the installed package or file, never the network)."""

    def __init__(self, vocabulary: Vocabulary, vectors: PretrainedVectors, embedding: WordEmbedder,
                 device: torch.device) -> None:
        self.vocabulary, self.vectors, self.embedding, self.device = vocabulary, vectors, embedding, device
        self.vectors.vector(Vocabulary.PAD)  # index every word of the vectors once
        reference, known = vectors.rows(vocabulary.itos, vocabulary.pad_index)  # (V, D), (V,) of the training words
        self.reference, self.known = reference.to(device), known.to(device)
        self.admitted = 0

    def admit(self, tokens: Iterable[str]) -> int:
        """Add the tokens that are new to the vocabulary and have a pretrained vector; returns how many."""
        new_words, rows = [], []
        for token in tokens:
            if token in self.vocabulary or self.vocabulary.normalize(token) in new_words:
                continue
            vector = self.vectors.vector(token)
            if vector is not None:
                new_words.append(self.vocabulary.normalize(token))
                rows.append(np.asarray(vector, dtype=np.float32))
        if new_words:
            self.embedding.append_rows(torch.from_numpy(np.stack(rows)).to(self.device), self.reference, self.known)
            for word in new_words:
                self.vocabulary.add(word)
            self.admitted += len(new_words)
        return len(new_words)


def open_vocabulary_of(task: SequenceTask, data: SequenceDataModule, device: torch.device) -> Optional[OpenVocabulary]:
    """The open vocabulary of a model trained with pretrained vectors over a word vocabulary, else None (also when
    the vectors are not installed here: then unseen words stay UNK, with a warning)."""
    name, words = getattr(data, "vectors", None), getattr(data, "words", None)
    embedder = task.word_embedder
    if not name or words is None or not isinstance(embedder, WordEmbedder):
        return None
    try:
        return OpenVocabulary(words, PretrainedVectors(name), embedder, device)
    except SeqlabError as error:
        log.warning("words unseen in training stay unknown: %s", error)
        return None


class Predictor:
    """A trained model with its data module's encoders. ``predict(inputs, batch_size)``: texts (NER, sentiment,
    translation) or audio files (speech) -> one record per input, in input order, as ``seqlab predict`` writes them."""

    def __init__(self, task: SequenceTask, data: SequenceDataModule, device: Union[str, torch.device] = "cpu",
                 open_vocabulary: Optional[OpenVocabulary] = None) -> None:
        self.device = torch.device(device)
        self.task = task.to(self.device).eval()
        self.data = data
        self.open_vocabulary = open_vocabulary

    @property
    def labels(self) -> list[str]:
        return list(getattr(self.task, "labels", []) or [])

    @property
    def optional_outputs(self) -> list[str]:
        """The extra outputs ``predict`` can add: ``marginals`` (NER), ``attention`` (translation), ``posteriors``
        (speech)."""
        return sorted(self.task.optional_outputs)

    def predict(self, inputs: Sequence, batch_size: int = 32, **outputs: bool) -> list[dict]:
        """``outputs``: extra outputs by name (``optional_outputs``), e.g. ``predict(texts, marginals=True)``."""
        unknown = sorted(set(outputs) - set(self.task.optional_outputs))
        if unknown:
            offered = ", ".join(self.optional_outputs) or "none"
            raise SeqlabError(f"predict: no output {', '.join(unknown)} for {type(self.task).__name__} "
                              f"(optional outputs: {offered})")
        for name, wanted in outputs.items():
            if not isinstance(wanted, (bool, np.bool_)):
                raise SeqlabError(f"predict: {name} must be True or False, got {wanted!r}")
        inputs, batch_size = checked_inputs(inputs), checked_batch_size(batch_size)
        saved = {name: getattr(self.task, self.task.optional_outputs[name]) for name in outputs}
        try:
            for name, wanted in outputs.items():
                setattr(self.task, self.task.optional_outputs[name], bool(wanted))
            return self._predict(inputs, batch_size)
        finally:
            for name, value in saved.items():
                setattr(self.task, self.task.optional_outputs[name], value)

    def _predict(self, inputs: list, batch_size: int) -> list[dict]:
        if len(inputs) == 0:
            return []
        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # a library call prints nothing
        try:
            encoded = self.data.encoded_inputs(inputs)
            if self.open_vocabulary is not None and self.open_vocabulary.admit(
                    token for tokens in encoded.columns["tokens"] for token in tokens):
                encoded = self.data.encoded_inputs(inputs)  # again, with the words just admitted
        finally:
            if bars:
                datasets.enable_progress_bars()
        # the columns read out of Arrow once (a contiguous slice), not gathered batch by batch: 0.5 s less per pass
        # over the CoNLL test set, at batch 64 as at batch 1
        encoded = ListDataset({name: values if isinstance(values, list) else values[:]
                               for name, values in encoded.columns.items()})
        sampler = BucketBatchSampler(encoded.columns["length"], batch_size=batch_size, shuffle=False, num_replicas=1,
                                     rank=0)
        records = []
        with torch.inference_mode():
            for indices in sampler:
                batch = self.task.transfer_batch_to_device(self.data.collate(encoded.__getitems__(indices)),
                                                           self.device, 0)
                records.extend(self.task.predict_step(batch, 0))
        records.sort(key=lambda record: record["index"])
        return [{key: value for key, value in record.items() if key != "index"} for record in records]


def checked_inputs(inputs: Iterable) -> list:
    """The inputs of ``predict`` as a list, each a text or a path (audio, for speech); anything else is a SeqlabError
    naming the input (numbered from 1), not a record of its ``str()``."""
    if isinstance(inputs, (str, Path)):
        raise TypeError("predict takes a list of inputs: predict([text]), not predict(text)")
    try:
        inputs = list(inputs)
    except TypeError:
        raise SeqlabError(f"predict takes a list of inputs (texts, or audio paths for speech), got "
                          f"{type(inputs).__name__}") from None
    for number, item in enumerate(inputs, 1):
        text = os.fspath(item) if isinstance(item, os.PathLike) else item
        if not isinstance(text, str):
            raise SeqlabError(f"input {number}: expected a text (or an audio path), got {type(item).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise SeqlabError(f"input {number}: character {error.start + 1} is {text[error.start]!r}, a lone "
                              f"surrogate, not Unicode text") from None
    return inputs


def checked_batch_size(batch_size) -> int:
    try:
        batch_size = operator.index(batch_size)
    except TypeError:
        raise SeqlabError(f"batch_size must be a whole number of at least 1, got {batch_size!r}") from None
    if batch_size < 1:
        raise SeqlabError(f"batch_size must be at least 1, got {batch_size}")
    return batch_size


class MultiTaskPredictor(Predictor):
    """A multi-task model (``MultiTask`` with ``MultiTaskData``). ``predict(inputs, task="ner")``: one record per input
    from that task, as its single-task model gives them; ``predict(inputs)``: one dict per input, task name -> its
    record, for every task. ``tasks``: the task names."""

    @property
    def tasks(self) -> list[str]:
        return list(self.data.tasks)

    @property
    def labels(self) -> dict[str, list[str]]:
        return {name: list(labels) for name, labels in self.task.task_labels.items()}

    def predict(self, inputs: Sequence, batch_size: int = 32, task: Optional[str] = None, **outputs: bool):
        inputs = checked_inputs(inputs)
        if task is not None and task not in self.data.tasks:
            raise SeqlabError(f"predict: no task '{task}' (tasks: {', '.join(self.tasks)})")
        per_task = {name: Predictor(self.task, _OneTask(self.data.tasks[name], name), self.device,
                                    self.open_vocabulary).predict(inputs, batch_size, **outputs)
                    for name in ([task] if task is not None else self.tasks)}
        if task is not None:
            return per_task[task]
        return [{name: {k: v for k, v in records[i].items() if k != "task"} for name, records in per_task.items()}
                for i in range(len(inputs))]


class _OneTask:
    """One task's data module inside a multi-task one, its batches naming the task (what a Predictor reads)."""

    def __init__(self, data: SequenceDataModule, name: str) -> None:
        self.data, self.name = data, name

    def encoded_inputs(self, inputs: Sequence) -> ListDataset:
        return self.data.encoded_inputs(inputs)

    def collate(self, examples: list[dict]) -> dict:
        return {**self.data.collate(examples), "task": self.name}


def torch_device(device: Union[str, torch.device], option: str = "device") -> torch.device:
    """``device`` as a torch device that this machine has and can hold a model on, else a SeqlabError naming
    ``option``."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise SeqlabError(f"{option} {device}: not a torch device (cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise SeqlabError(f"{option} {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SeqlabError(f"{option} {device}: MPS is not available on this machine")
    if device.type == "meta":
        raise SeqlabError(f"{option} {device}: holds no data, so no model (cpu, cuda, cuda:1, mps)")
    return device


def load(path: Union[str, Path], device: Union[str, torch.device] = "cpu", open_vocabulary: bool = True) -> Predictor:
    """The predictor of a checkpoint written by ``seqlab fit`` (any of the four tasks; older checkpoints migrated).
    The file is read once; nothing else is needed: no config, no training data, no network. ``open_vocabulary``:
    for a model trained with pretrained vectors, words unseen in training get their vectors (``OpenVocabulary``)."""
    if not isinstance(path, (str, os.PathLike)):
        raise SeqlabError(f"seqlab.load takes the path of a checkpoint, got {type(path).__name__}")
    device = torch_device(device)
    checkpoint = migrate_checkpoint(read_checkpoint(path))
    task_class = class_of(str((checkpoint.get("hyper_parameters") or {}).get("_class_path", "")))
    if not isinstance(task_class, type) or not issubclass(task_class, SequenceTask):
        raise SeqlabError(f"{path}: no seqlab task class recorded in the checkpoint (was it written by `seqlab fit`?)")
    data = SequenceDataModule.from_checkpoint(checkpoint)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)  # the migrated checkpoint, for Lightning's loader
    buffer.seek(0)
    task = task_class.load_from_checkpoint(buffer, map_location=device, weights_only=True)
    if hasattr(task, "target_encoder") and hasattr(data, "target_encoder"):
        task.target_encoder = data.target_encoder  # the detokenizer of translation, linked as in the CLI
    task = task.to(device)
    predictor = MultiTaskPredictor if isinstance(data, MultiTaskData) else Predictor
    return predictor(task, data, device, open_vocabulary_of(task, data, device) if open_vocabulary else None)
