"""Where the data is: one ``SplitSource`` for every task (a hub id, a local directory whose files or folders are named
by split, explicit files, or one file used as train)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional, Union

from seqlab import SeqlabError
from seqlab.encoders.text import first_line
from seqlab.hub import hub_access, unreachable_hub_reason

SPLITS = ("train", "validation", "test")

#: names recognised for each split in a local directory, in order of preference; an entry (file or folder) matches a
#: name when it is the name or starts with the name and a dot (``train.txt.gz``, ``train.de.gz``, ``eng.testa``)
SPLIT_PATTERNS: dict[str, tuple[str, ...]] = {
    "train": ("train", "eng.train", "training"),
    "validation": ("validation", "valid", "dev", "val", "eng.testa", "testa"),
    "test": ("test", "eng.testb", "testb", "test2016", "test_2016_flickr", "newstest2016", "newstest2014"),
}

#: split names (hub or utterance tables) that mean seqlab's canonical ones
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


def matches(entry: Path, stem: str) -> bool:
    name = strip_compression(entry.name)
    return name == stem or name.startswith(stem + ".")


def find_splits(directory: Path, splits=SPLITS) -> dict[str, list[Path]]:
    """Split -> the entries of ``directory`` (files, or folders) named by the first matching pattern of the split."""
    entries = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    found: dict[str, list[Path]] = {}
    for split in splits:
        for stem in SPLIT_PATTERNS[split]:
            matched = [p for p in entries if matches(p, stem)]
            if matched:
                found[split] = matched
                break
    return found


class SplitSource:
    """Finds the data of each split.

    ``path``: a hub id (``owner/name``, config ``name``), a local directory (entries named by split, see
    ``SPLIT_PATTERNS``), or one local file (the train split). ``data_files`` maps split names to files explicitly
    (relative to ``path`` when it is a directory). Local sources give file lists (``files``); hub ones ``datasets``
    splits (``hub_split``), loaded once.
    """

    def __init__(self, path: str, name: Optional[str] = None, data_files: Optional[DataFiles] = None,
                 cache_dir: Optional[str] = None) -> None:
        self.path = path
        self.name = name
        self.data_files = data_files
        self.cache_dir = cache_dir
        self._files: Optional[dict[str, list[Path]]] = None
        self._hub = None

    @property
    def is_local(self) -> bool:
        return self.data_files is not None or looks_local(self.path)

    @property
    def root(self) -> Path:
        return Path(os.path.expanduser(self.path)) if self.path else Path(".")

    def files(self, split: str) -> list[Path]:
        if self._files is None:
            self._files = self.resolve()
        if split not in self._files:
            found = ", ".join(sorted(self._files)) or "none"
            raise SeqlabError(f"no '{split}' split in {self.path} (found: {found})")
        return self._files[split]

    def resolve(self) -> dict[str, list[Path]]:
        root = self.root
        if self.data_files:
            resolved = {}
            for split, names in self.data_files.items():
                names = [names] if isinstance(names, str) else list(names)
                paths = [root / p if root.is_dir() and not Path(p).is_absolute() else Path(p) for p in names]
                for p in paths:
                    if not p.exists():
                        raise SeqlabError(f"data file for split '{split}' not found: {p}")
                resolved[SPLIT_ALIASES.get(split, split)] = paths
            return resolved
        if not root.exists():
            raise SeqlabError(f"data path not found: {self.path}")
        if root.is_file():
            return {"train": [root]}
        found = find_splits(root)
        if not found:
            expected = ", ".join(f"{s}: {'|'.join(SPLIT_PATTERNS[s])}" for s in SPLITS)
            raise SeqlabError(f"no split files found in {root} (expected names like {expected}); "
                              "or pass --data.data_files '{train: a.txt, validation: b.txt}'")
        return found

    def hub_split(self, split: str):
        if self._hub is None:
            self._hub = load_hub(self.path, self.name, cache_dir=self.cache_dir)
        if split not in self._hub:
            raise SeqlabError(f"hub dataset {self.path} has no '{split}' split (has {list(self._hub)})")
        return self._hub[split]


def load_hub(path: str, name: Optional[str] = None, **kwargs):
    """``datasets.load_dataset`` on a hub id, with one clear line when the hub cannot be reached."""
    import datasets

    try:
        with hub_access(path):
            loaded = datasets.load_dataset(path, name, **kwargs)
    except (ConnectionError, OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as error:
        reason = unreachable_hub_reason(path) or first_line(error)
        raise SeqlabError(
            f"could not load '{path}' from the Hugging Face hub ({reason}). Offline? "
            "Pass local files instead: --data.path /path/to/dir (with train/valid/test files) or --data.data_files"
        ) from error
    return datasets.DatasetDict({SPLIT_ALIASES.get(k, k): v for k, v in loaded.items()})


def file_signature(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    """Path, size and mtime of each file: what identifies input files for the ``datasets`` cache, so edited files are
    read again (a tuple: ``datasets`` would split a list across generator shards)."""
    return tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
