"""Reading checkpoints: once, with one-line errors; finding a run's newest ``last``/``best`` checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Union

import torch

from seqlab import SeqlabError


def read_checkpoint(checkpoint: Union[str, Path, dict]) -> dict:
    """A checkpoint's dictionary (given as a path, or already read); a missing, truncated or foreign file is a
    SeqlabError naming it."""
    if isinstance(checkpoint, dict):
        return checkpoint
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise SeqlabError(f"checkpoint not found: {checkpoint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SeqlabError(f"cannot read checkpoint {checkpoint}: {detail}") from None


def find_checkpoint(roots: list[Path], kind: str) -> Optional[Path]:
    """The most recently written readable ``{kind}*.ckpt`` (``last`` or ``best``) below any of ``roots``; a file
    cut short by a killed run is skipped with a warning, so resuming falls back to the previous one."""
    found = sorted((p for root in roots if root.is_dir() for p in root.rglob(f"{kind}*.ckpt")),
                   key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for path in found:
        try:
            read_checkpoint(path)
            return path
        except SeqlabError as error:
            print(f"seqlab: skipping unreadable checkpoint {path} ({error})", file=sys.stderr)
    return None
