"""Resolve ``path`` (a hub name, a local directory or files) into per-split data sources."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Iterator, Mapping, Optional, Union

from seqlab import SeqlabError

SPLITS = ("train", "validation", "test")

# File-name stems recognised for each split in a local directory, in order of preference.
SPLIT_PATTERNS: dict[str, tuple[str, ...]] = {
    "train": ("train", "eng.train", "training"),
    "validation": ("validation", "valid", "dev", "val", "eng.testa", "testa"),
    "test": ("test", "eng.testb", "testb", "test2016"),
}

# Hub split names that mean our canonical ones.
SPLIT_ALIASES = {"valid": "validation", "dev": "validation", "val": "validation"}

DataFiles = Mapping[str, Union[str, list[str]]]


def looks_local(path: str) -> bool:
    """A hub id is ``name`` or ``owner/name``; anything with a leading ``.``, ``/``, ``~``, more than one ``/``, or
    that exists on disk is a local path."""
    return (
        os.path.exists(path)
        or path.startswith((".", "/", "~"))
        or path.count("/") > 1
        or os.sep != "/" and os.sep in path
    )


def strip_compression(name: str) -> str:
    return name[:-3] if name.endswith(".gz") else name


def file_format(path: Path) -> str:
    """``conll``, ``json``, ``parquet``, ``csv`` or ``tsv`` from the file name (``.gz`` ignored)."""
    suffix = Path(strip_compression(path.name)).suffix.lower()
    return {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".tsv": "tsv"}.get(
        suffix, "conll"
    )


def find_split_files(directory: Path, splits=SPLITS) -> dict[str, Path]:
    """Map split names to files in ``directory`` by their stems (``train.txt.gz``, ``eng.testa``, ``dev.tsv`` ...)."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    found: dict[str, Path] = {}
    for split in splits:
        for stem in SPLIT_PATTERNS[split]:
            match = [p for p in files if _stem(p) == stem]
            if match:
                found[split] = match[0]
                break
    return found


def _stem(path: Path) -> str:
    name = strip_compression(path.name)
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        return name
    return stem if suffix.lower() in ("txt", "conll", "iob", "bio", "tsv", "csv", "jsonl", "json", "parquet") else name


def resolve_local(path: str, data_files: Optional[DataFiles] = None, splits=SPLITS) -> dict[str, list[Path]]:
    """Local split files for ``path`` (a directory, or a single file used as train) and explicit ``data_files``."""
    root = Path(os.path.expanduser(path)) if path else Path(".")
    if data_files:
        resolved = {}
        for split, files in data_files.items():
            names = [files] if isinstance(files, str) else list(files)
            paths = [p if p.is_absolute() else root / p for p in map(Path, names)] if root.is_dir() else list(
                map(Path, names)
            )
            for p in paths:
                if not p.is_file():
                    raise SeqlabError(f"data file for split '{split}' not found: {p}")
            resolved[SPLIT_ALIASES.get(split, split)] = paths
        return resolved
    if not root.exists():
        raise SeqlabError(f"data path not found: {path}")
    if root.is_file():
        return {"train": [root]}
    found = find_split_files(root, splits)
    if not found:
        expected = ", ".join(f"{s}: {'|'.join(SPLIT_PATTERNS[s])}" for s in splits)
        raise SeqlabError(f"no split files found in {root} (expected file names like {expected}); "
                          "or pass --data.data_files '{train: a.txt, validation: b.txt}'")
    return {split: [file] for split, file in found.items()}


def load_hub(path: str, name: Optional[str] = None, **kwargs):
    """``datasets.load_dataset`` on a hub id, with one clear line when the hub cannot be reached."""
    import datasets

    try:
        loaded = datasets.load_dataset(path, name, **kwargs)
    except (ConnectionError, OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SeqlabError(
            f"could not load '{path}' from the Hugging Face hub ({first[:200]}). Offline? Pass local files "
            f"instead: --data.path /path/to/dir (with train/valid/test files) or --data.data_files"
        ) from error
    return datasets.DatasetDict({SPLIT_ALIASES.get(k, k): v for k, v in loaded.items()})


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` of a UTF-8 file (gzip when it ends in ``.gz``), line ends stripped. Invalid UTF-8 is
    a SeqlabError naming the line."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise SeqlabError(f"{path}:{number}: invalid UTF-8 (byte {error.start} of the line)") from None


def file_signature(paths: list[Path]) -> list[tuple[str, int, int]]:
    """Path, size and mtime of each file: part of the cache fingerprint, so edited files are read again."""
    return [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
