"""Random generator states kept in checkpoints, so that a resumed run draws the numbers (dropout masks, SpecAugment
masks) the uninterrupted run would have drawn."""

from __future__ import annotations

import random
from typing import Any, Optional

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist


def capture() -> dict:
    """This process's generator states: torch (CPU, and each CUDA device once CUDA is initialised), numpy and
    Python's ``random``, as tensors, lists and numbers (a checkpoint read with ``weights_only=True`` holds them)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    version, python_state, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": list(python_state), "gauss": python_gauss},
    }


def restore(state: dict) -> None:
    """Set the generators to a state given by ``capture``."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["gauss"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))


class RandomStateCheckpoint(pl.Callback):
    """Saves every rank's generator states with each checkpoint; after a resume, each rank gets its own back (rank
    0's when the number of processes changed) just before the first training step, after whatever the restart
    itself drew (the sanity-check validation, building loaders)."""

    def __init__(self) -> None:
        self._pending: Optional[dict] = None

    def state_dict(self) -> dict[str, Any]:
        states = [capture()]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            states = [None] * dist.get_world_size()
            dist.all_gather_object(states, capture())  # every rank saves a checkpoint's state together
        return {"ranks": states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = state_dict.get("ranks") or []
        if states:
            distributed = dist.is_available() and dist.is_initialized()
            rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
            self._pending = states[rank] if len(states) == world else states[0]

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._pending is not None:
            restore(self._pending)
            self._pending = None
