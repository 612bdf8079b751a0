"""Learning-rate schedules beyond torch's that the LightningCLI can build from YAML."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


class InverseTimeDecay(LRScheduler):
    """``lr_t = lr_0 / (1 + decay * t)`` after ``t`` scheduler steps (epochs, as seqlab's tasks step schedules): the
    SGD schedule of Ma & Hovy (2016) and NCRF++ (Yang et al. 2018) for BiLSTM-CNN-CRF taggers, decay 0.05 per epoch.
    Its state (``last_epoch``, ``decay``) travels in the checkpoint, so a resumed run continues the same curve."""

    def __init__(self, optimizer: Optimizer, decay: float = 0.05, last_epoch: int = -1) -> None:
        if decay < 0:
            raise ValueError(f"InverseTimeDecay: decay must be >= 0, got {decay}")
        self.decay = decay
        super().__init__(optimizer, last_epoch=last_epoch)

    def get_lr(self) -> list[float]:
        return [base_lr / (1.0 + self.decay * self.last_epoch) for base_lr in self.base_lrs]
