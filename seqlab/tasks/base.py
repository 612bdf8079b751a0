"""What every seqlab task shares: optimizer and scheduler from config, checkpoints keyed on the task's metric."""

from __future__ import annotations

from typing import Any, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from pytorch_lightning.utilities import rank_zero_info

STAGES = ("train", "val", "test")


class SequenceTask(pl.LightningModule):
    """Base LightningModule. Subclasses implement ``shared_step(batch, stage) -> loss`` and ``predict_step``, and
    set ``monitor`` (a logged key, e.g. ``val/f1``) and ``monitor_mode``. Metrics are logged as ``{stage}/{name}``.

    Checkpoints: ``best-epochNN.ckpt`` by ``monitor``, ``last.ckpt`` at every validation, and ``last-step.ckpt``
    every ``checkpoint_every_n_steps`` training steps, so a run killed mid-epoch resumes with ``--ckpt_path last``
    (the newest of them).
    """

    monitor: str = "val/loss"
    monitor_mode: str = "min"

    def __init__(
        self,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
        checkpoint_every_n_steps: int = 200,
    ) -> None:
        super().__init__()
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.checkpoint_every_n_steps = checkpoint_every_n_steps

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "test")

    def shared_step(self, batch: dict, stage: str) -> torch.Tensor:
        raise NotImplementedError

    def init_word_vectors(self, stage: str, word_embedding: Any) -> None:
        """Before fitting (and before any checkpoint is restored over it), let ``word_embedding`` initialise rows
        from pretrained vectors for the data module's word vocabulary (``datamodule.words``, when it has one)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        words = getattr(datamodule, "words", None) if datamodule is not None else None
        if stage == "fit" and words is not None:
            found = word_embedding.init_from_vocabulary(words.itos)
            if found:
                rank_zero_info(f"pretrained vectors for {found} of {len(words)} vocabulary words")

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(p for p in self.parameters() if p.requires_grad)
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler = self.lr_scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor, "interval": "epoch"},
        }

    def configure_callbacks(self) -> list[pl.Callback]:
        best = ModelCheckpoint(
            monitor=self.monitor, mode=self.monitor_mode, save_top_k=1, save_last=True,
            filename="best-epoch{epoch:02d}", auto_insert_metric_name=False,
        )
        # keeps one file, last-step.ckpt, rewritten every N steps: what a run killed mid-epoch resumes from
        periodic = ModelCheckpoint(every_n_train_steps=self.checkpoint_every_n_steps, save_top_k=1,
                                   filename="last-step", enable_version_counter=False)
        return [best, periodic]
