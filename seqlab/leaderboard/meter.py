"""A callback the leaderboard adds to its ``seqlab fit``/``test`` runs: real tokens (frames) per second, peak memory.

Counts ``batch["lengths"].sum()`` (real tokens or frames, padding left out; translation: ``source_lengths``) over
the training and test batches, times the training epochs without the validation inside them and the test epoch, and
writes one JSON object to ``output_path`` at the end of each stage (the file is rewritten, so after ``fit`` it holds
the ``train`` numbers and after ``test`` the ``test`` numbers).
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Callback


def _count(batch: Any) -> int:
    """Real tokens (frames) of a batch: ``lengths``, or a translation batch's ``source_lengths``."""
    if not isinstance(batch, dict):
        return 0
    lengths = batch.get("lengths", batch.get("source_lengths"))
    return int(lengths.sum()) if isinstance(lengths, torch.Tensor) else 0


class ThroughputMeter(Callback):
    """``--trainer.callbacks+='{"class_path": "seqlab.leaderboard.meter.ThroughputMeter",
    "init_args": {"output_path": "stats.json"}}'``."""

    def __init__(self, output_path: str) -> None:
        self.output_path = output_path
        self.stats: dict[str, Any] = {}
        self._tokens = {"train": 0, "test": 0}
        self._seconds = {"train": 0.0, "test": 0.0}
        self._batches = {"train": 0, "test": 0}
        self._epoch_start = 0.0
        self._val_start = 0.0
        self._val_seconds = 0.0

    # training: epoch time minus the validation run inside it
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start, self._val_seconds = time.perf_counter(), 0.0

    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.training or self._epoch_start:
            self._val_seconds += time.perf_counter() - self._val_start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._tokens["train"] += _count(batch)
        self._batches["train"] += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._epoch_start:
            self._seconds["train"] += time.perf_counter() - self._epoch_start - self._val_seconds
        self._epoch_start, self._val_seconds = 0.0, 0.0

    def on_train_end(self, trainer, pl_module) -> None:
        if self._epoch_start:  # stopped mid-epoch (max_time, max_steps)
            self.on_train_epoch_end(trainer, pl_module)
        self._write(trainer, pl_module, "train")

    # test
    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.perf_counter()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._tokens["test"] += _count(batch)
        self._batches["test"] += 1

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._seconds["test"] += time.perf_counter() - self._epoch_start
        self._epoch_start = 0.0

    def on_test_end(self, trainer, pl_module) -> None:
        self._write(trainer, pl_module, "test")

    def _write(self, trainer, pl_module, stage: str) -> None:
        if trainer.global_rank != 0:
            return
        seconds, tokens = self._seconds[stage], self._tokens[stage]
        device = pl_module.device
        stats = {
            "stage": stage,
            "tokens": tokens * trainer.world_size,  # rank 0's count; samplers shard evenly over ranks
            "batches": self._batches[stage],
            "seconds": seconds,
            "tokens_per_s": tokens * trainer.world_size / seconds if seconds > 0 else None,
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "world_size": trainer.world_size,
            "device": str(device.type),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "torch_threads": torch.get_num_threads(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cuda_max_allocated_mb": (torch.cuda.max_memory_allocated(device) / 2**20
                                      if device.type == "cuda" else None),
            "trainable_params": sum(p.numel() for p in pl_module.parameters() if p.requires_grad),
        }
        Path(self.output_path).parent.mkdir(parents=True, exist_ok=True)
        Path(self.output_path).write_text(json.dumps(stats), encoding="utf-8")
