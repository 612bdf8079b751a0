"""Lightning callbacks shipped with seqlab."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter, WeightAveraging
from pytorch_lightning.utilities import rank_zero_info

from seqlab import SeqlabError


class JsonlPredictionWriter(BasePredictionWriter):
    """Writes ``predict`` records (dicts with an ``index`` key) as JSON lines in input order; with several predict
    loaders (a multi-task model's tasks, records with ``task``), each input's records one after another, in the
    loaders' order.

    ``output_path`` defaults to ``predictions.jsonl`` in the trainer's log directory. Under DDP each rank writes
    ``<stem>.rank<R>.jsonl`` (its share of the input).
    """

    def __init__(self, output_path: Optional[str] = None) -> None:
        super().__init__(write_interval="epoch")
        self.output_path = output_path

    def write_on_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, predictions: Any,
                           batch_indices: Any) -> None:
        several = bool(predictions) and bool(predictions[0]) and isinstance(predictions[0][0], list)
        per_loader = predictions if several else [predictions]  # loader -> batches -> records
        keyed = [(record["index"], loader, record) for loader, batches in enumerate(per_loader)
                 for batch in batches for record in batch]
        records = [record for _, _, record in sorted(keyed, key=lambda item: item[:2])]
        path = Path(self.output_path or Path(trainer.log_dir or ".") / "predictions.jsonl")
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            for record in records:
                record = {k: v for k, v in record.items() if k != "index"}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        rank_zero_info(f"wrote {len(records)} predictions to {path}")


class EpochWeightAveraging(WeightAveraging):
    """The plain mean of the weights at the end of each training epoch from ``start_epoch`` (0-based) on:
    stochastic weight averaging (Izmailov et al. 2018) under the task's own learning-rate schedule.

    An epoch's weights join the mean after its last training step, before its validation, so from ``start_epoch``
    on validation scores the mean of epochs ``start_epoch..e`` and checkpoints hold it as ``state_dict`` (the
    current weights under ``current_model_state``): ``--ckpt_path best``, ``seqlab.load`` and export use the mean.
    Before ``start_epoch`` both are the current weights, as without the callback.
    """

    def __init__(self, start_epoch: int = 0) -> None:
        if start_epoch < 0:
            raise SeqlabError("--trainer.callbacks: EpochWeightAveraging start_epoch must be at least 0, "
                              f"got {start_epoch}")
        super().__init__(use_buffers=True)
        self.start_epoch = start_epoch

    def should_update(self, step_idx: Optional[int] = None, epoch_idx: Optional[int] = None) -> bool:
        return False  # on_train_batch_end updates on the epoch's last step itself

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if (trainer.is_last_batch and trainer.current_epoch >= self.start_epoch
                and trainer.global_step > self._latest_update_step):
            self._average_model.update_parameters(pl_module)
            self._latest_update_step = trainer.global_step

    def _averaging(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._averaging():
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._averaging():
            super().on_validation_epoch_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if self._averaging():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._averaging():
            super().on_train_end(trainer, pl_module)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if "averaging_state" in checkpoint:  # saved once averaging began; before, the mean starts afresh
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
