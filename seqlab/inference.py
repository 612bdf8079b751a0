"""After training: ``seqlab.load(path)`` gives a ``Predictor``, the checkpoint's encoders and model without a Trainer,
a config file or the training data, and ``predict(inputs)`` gives the records ``seqlab predict`` writes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence, Union

import datasets
import torch

from seqlab import SeqlabError
from seqlab.checkpoints import class_of, migrate_checkpoint, read_checkpoint
from seqlab.data_modules.base import SequenceDataModule
from seqlab.data_modules.sampler import BucketBatchSampler
from seqlab.tasks.base import SequenceTask


class Predictor:
    """A trained model with its data module's encoders. ``predict(inputs, batch_size)``: texts (NER, sentiment,
    translation) or audio files (speech) -> one record per input, in input order, as ``seqlab predict`` writes them."""

    def __init__(self, task: SequenceTask, data: SequenceDataModule, device: Union[str, torch.device] = "cpu") -> None:
        self.device = torch.device(device)
        self.task = task.to(self.device).eval()
        self.data = data

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
        saved = {name: getattr(self.task, self.task.optional_outputs[name]) for name in outputs}
        try:
            for name, wanted in outputs.items():
                setattr(self.task, self.task.optional_outputs[name], bool(wanted))
            return self._predict(inputs, batch_size)
        finally:
            for name, value in saved.items():
                setattr(self.task, self.task.optional_outputs[name], value)

    def _predict(self, inputs: Sequence, batch_size: int) -> list[dict]:
        if isinstance(inputs, (str, Path)):
            raise TypeError("predict takes a list of inputs: predict([text]), not predict(text)")
        if batch_size < 1:
            raise SeqlabError(f"batch_size must be at least 1, got {batch_size}")
        if len(inputs) == 0:
            return []
        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # a library call prints nothing
        try:
            encoded = self.data.encoded_inputs(inputs)
        finally:
            if bars:
                datasets.enable_progress_bars()
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


def load(path: Union[str, Path], device: Union[str, torch.device] = "cpu") -> Predictor:
    """The predictor of a checkpoint written by ``seqlab fit`` (any of the four tasks; older checkpoints migrated).
    The file is read once; nothing else is needed: no config, no training data, no network."""
    checkpoint = migrate_checkpoint(read_checkpoint(path))
    task_class = class_of(str((checkpoint.get("hyper_parameters") or {}).get("_class_path", "")))
    if task_class is None or not issubclass(task_class, SequenceTask):
        raise SeqlabError(f"{path}: no seqlab task class recorded in the checkpoint (was it written by `seqlab fit`?)")
    data = SequenceDataModule.from_checkpoint(checkpoint)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)  # the migrated checkpoint, for Lightning's loader
    buffer.seek(0)
    task = task_class.load_from_checkpoint(buffer, map_location=torch.device(device), weights_only=True)
    if hasattr(task, "target_encoder") and hasattr(data, "target_encoder"):
        task.target_encoder = data.target_encoder  # the detokenizer of translation, linked as in the CLI
    return Predictor(task, data, device)
