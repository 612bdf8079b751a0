"""Reading checkpoints: once, with one-line errors; finding a run's newest ``last``/``best`` checkpoint."""

from __future__ import annotations

import copy
import importlib
import sys
import zipfile
from pathlib import Path
from typing import Any, Iterator, Optional, Union

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
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if not zipfile.is_zipfile(path):  # torch.save writes zip archives; torch's words for other files say little
            with path.open("rb") as file:
                zip_start = file.read(4) == b"PK\x03\x04"
            detail = ("cut short or damaged (a zip archive without its end)" if zip_start
                      else "not a checkpoint (torch.save writes zip archives, and this file is none)")
        raise SeqlabError(f"cannot read checkpoint {checkpoint}: {detail}") from None
    if not isinstance(loaded, dict):  # torch.save of something else than a Lightning checkpoint
        raise SeqlabError(f"cannot read checkpoint {checkpoint}: it holds a {type(loaded).__name__}, not a "
                          "checkpoint's dictionary")
    return loaded


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


def class_of(class_path: str) -> Optional[type]:
    """The class a checkpoint's ``_class_path`` names, or None when it cannot be imported."""
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def _pretrained_vectors(node: Any) -> Iterator[dict]:
    """The init_args of every ``PretrainedWordEmbedding`` in a model configuration."""
    if isinstance(node, dict):
        if str(node.get("class_path", "")).endswith("PretrainedWordEmbedding") and isinstance(node.get("init_args"),
                                                                                           dict):
            yield node["init_args"]
        for value in node.values():
            yield from _pretrained_vectors(value)
    elif isinstance(node, list):
        for value in node:
            yield from _pretrained_vectors(value)


def migrate_checkpoint(checkpoint: dict) -> dict:
    """A checkpoint's hyperparameters as this version reads them (a one-time migration of older checkpoints): renamed
    data options (``renamed_options`` of the data module class), and the pretrained vectors named in the model's
    ``PretrainedWordEmbedding`` (before 0e9487c) moved to the data module's ``vectors``. The weights are untouched."""
    data = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    model = copy.deepcopy(dict(checkpoint.get("hyper_parameters") or {}))
    data_class = class_of(str(data.get("_class_path", "")))
    if data_class is not None and hasattr(data_class, "migrate_options"):
        data = data_class.migrate_options(data)
    for init_args in _pretrained_vectors(model):
        vectors = init_args.pop("vectors", None)
        if vectors is not None:
            data.setdefault("vectors", vectors)
    return {**checkpoint, "datamodule_hyper_parameters": data, "hyper_parameters": model}
