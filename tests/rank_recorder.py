"""A callback for tests that run the CLI in other processes: each rank appends the example indices of every training
and validation batch it sees to ``<path>/rank<global rank>.jsonl`` (the sanity check's batches left out)."""

from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl


class RecordExamples(pl.Callback):
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def _write(self, trainer: pl.Trainer, stage: str, batch: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        row = {"rank": trainer.global_rank, "stage": stage, "epoch": trainer.current_epoch,
               "index": batch["index"].tolist()}
        with (self.path / f"rank{trainer.global_rank}.jsonl").open("a") as handle:
            handle.write(json.dumps(row) + "\n")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._write(trainer, "train", batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self._write(trainer, "validate", batch)
