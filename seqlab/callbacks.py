"""Lightning callbacks shipped with seqlab."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter
from pytorch_lightning.utilities import rank_zero_info


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
