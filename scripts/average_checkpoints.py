"""Average the weights of several checkpoints of one seqlab run into one checkpoint: each floating-point weight is
the mean over the inputs; everything else (vocabularies, configuration, integer and boolean buffers) comes from the
first input. The offline form of ``seqlab.callbacks.EpochWeightAveraging``, e.g. over the per-epoch checkpoints that
``--trainer.callbacks+=pytorch_lightning.callbacks.ModelCheckpoint --trainer.callbacks.save_top_k -1`` keeps. The
output is for ``seqlab test|predict|export --ckpt_path OUT`` and ``seqlab.load``; a checkpoint written by a weight
averaging callback contributes its averaged weights (``state_dict``), and the output keeps no resumable training
state.

usage: .venv/bin/python scripts/average_checkpoints.py OUT.ckpt IN.ckpt [IN.ckpt ...]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import torch

from seqlab import SeqlabError
from seqlab.checkpoints import read_checkpoint

#: what a checkpoint holds to resume training; meaningless for an average
TRAINING_STATE = ("optimizer_states", "lr_schedulers", "loops", "callbacks", "current_model_state",
                  "averaging_state")


def average_checkpoints(paths: Sequence[str | Path]) -> dict:
    """The first checkpoint with each floating-point weight replaced by its mean over all of ``paths``."""
    if not paths:
        raise SeqlabError("no checkpoints to average")
    checkpoints = [read_checkpoint(path) for path in paths]
    for path, checkpoint in zip(paths, checkpoints):
        if "state_dict" not in checkpoint:
            raise SeqlabError(f"cannot average {path}: it holds no state_dict")
    first = checkpoints[0]["state_dict"]
    for path, checkpoint in zip(paths[1:], checkpoints[1:]):
        weights = checkpoint["state_dict"]
        if weights.keys() != first.keys():
            odd = sorted(weights.keys() ^ first.keys())[0]
            raise SeqlabError(f"cannot average {path} with {paths[0]}: only one of them has the weight {odd}")
        for name, value in weights.items():
            if value.shape != first[name].shape:
                raise SeqlabError(f"cannot average {path} with {paths[0]}: {name} is {tuple(value.shape)} in one "
                                  f"and {tuple(first[name].shape)} in the other")
    averaged = {name: torch.stack([c["state_dict"][name].double() for c in checkpoints]).mean(0).to(value.dtype)
                if value.is_floating_point() else value for name, value in first.items()}
    kept = {key: value for key, value in checkpoints[0].items() if key not in TRAINING_STATE}
    return {**kept, "state_dict": averaged}


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    out, *inputs = argv
    try:
        torch.save(average_checkpoints(inputs), out)
    except SeqlabError as error:
        print(f"average_checkpoints: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote the average of {len(inputs)} checkpoints to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
