"""Phone sets and their foldings: the TIMIT 61 -> 48 -> 39 table (``phones.60-48-39.map``) and label sets for
training and scoring."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from seqlab import SeqlabError
from seqlab.data_modules.sources import iter_lines

#: the map's columns, by the size of the phone set they hold
LEVELS = ("61", "48", "39")

#: phones that mark silence in TIMIT (``h#`` at the ends, pauses, epenthetic silence) and in folded sets
SILENCE_PHONES = ("h#", "pau", "epi", "sil")


class PhoneMap:
    """A folding table: each phone as it appears in alignments (the ``61`` column) -> its ``48`` and ``39`` labels.
    A phone listed without targets (TIMIT's glottal stop ``q``) is deleted: its frames are ignored, and it is left out
    of reference phone sequences, as in the Kaldi TIMIT recipe."""

    def __init__(self, table: dict[str, Optional[list[str]]], source: str = "phone map") -> None:
        self.table = {phone: (list(targets) if targets else None) for phone, targets in table.items()}
        self.source = source

    @classmethod
    def read(cls, path: Path) -> "PhoneMap":
        """Lines ``phone [label48 label39]`` (whitespace-separated); a phone alone is deleted."""
        if not path.is_file():
            raise SeqlabError(f"phone map not found: {path}")
        table: dict[str, Optional[list[str]]] = {}
        for number, line in iter_lines(path):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) not in (1, len(LEVELS)):
                raise SeqlabError(f"{path}:{number}: expected 'phone' or 'phone label48 label39', got {line.strip()!r}")
            if fields[0] in table:
                raise SeqlabError(f"{path}:{number}: phone '{fields[0]}' is listed twice")
            table[fields[0]] = fields[1:] or None
        if not table:
            raise SeqlabError(f"{path}: the phone map is empty")
        return cls(table, str(path))

    def __contains__(self, phone: str) -> bool:
        return phone in self.table

    def fold(self, phone: str, level: str) -> Optional[str]:
        """The label of ``phone`` at ``level`` (``61``: the phone itself), None when deleted; KeyError if unknown."""
        targets = self.table[phone]
        if targets is None:
            return None
        return phone if level == LEVELS[0] else targets[LEVELS.index(level) - 1]

    def labels(self, level: str) -> list[str]:
        """The label set at ``level``, sorted."""
        return sorted({label for phone in self.table if (label := self.fold(phone, level)) is not None})

    def folding(self, source: str, target: str) -> dict[str, str]:
        """``source``-level label -> ``target``-level label; an error unless every source label has one target."""
        if LEVELS.index(target) < LEVELS.index(source):
            raise SeqlabError(f"cannot score {source}-phone labels on the finer {target}-phone set "
                              f"(score_labels must be as coarse as train_labels or coarser)")
        mapping: dict[str, str] = {}
        for phone in self.table:
            low, high = self.fold(phone, source), self.fold(phone, target)
            if low is None:
                continue
            if mapping.setdefault(low, high) != high:
                raise SeqlabError(f"{self.source}: the {source}-phone label '{low}' folds to both "
                                  f"'{mapping[low]}' and '{high}' at the {target}-phone level")
        return mapping

    def state_dict(self) -> dict:
        return {"table": {phone: targets for phone, targets in self.table.items()}, "source": self.source}

    @classmethod
    def from_state_dict(cls, state: dict) -> "PhoneMap":
        return cls(state["table"], state.get("source", "phone map"))

