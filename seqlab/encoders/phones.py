"""Phones: time-aligned phone segments (TIMIT ``.phn`` files, manifest segments), phone sets and their foldings (the
TIMIT 61 -> 48 -> 39 table ``phones.60-48-39.map``), and ``PhoneLabels``, the label encoder of the speech task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional

from seqlab import SeqlabError
from seqlab.encoders.audio import IGNORE_INDEX
from seqlab.files import iter_lines

#: the map's columns, by the size of the phone set they hold
LEVELS = ("61", "48", "39")

#: phones that mark silence in TIMIT (``h#`` at the ends, pauses, epenthetic silence) and in folded sets
SILENCE_PHONES = ("h#", "pau", "epi", "sil")

#: an alignment: segment starts, ends, phones, and each segment's location (``file:line``) for messages
Segments = tuple[list[float], list[float], list[str], list[str]]


def read_phn(path: Path) -> Segments:
    """A TIMIT ``.phn`` file: lines ``start_sample end_sample phone`` -> starts, ends, phones, locations."""
    starts, ends, phones, where = [], [], [], []
    for number, line in iter_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise SeqlabError(f"{path}:{number}: expected 'start_sample end_sample phone', got {line.strip()!r}")
        try:
            start, end = int(fields[0]), int(fields[1])
        except ValueError:
            raise SeqlabError(f"{path}:{number}: start and end must be sample numbers, got {line.strip()!r}") from None
        starts.append(float(start))
        ends.append(float(end))
        phones.append(fields[2])
        where.append(f"{path}:{number}")
    return starts, ends, phones, where


def manifest_segments(segments: list, at: str) -> Segments:
    """A manifest's ``segments``: ``[start, end, label]`` lists or ``{start, end, label}`` objects (``at``: its
    line)."""
    starts, ends, phones, where = [], [], [], []
    for k, segment in enumerate(segments or []):
        if isinstance(segment, dict):
            segment = [segment.get("start"), segment.get("end"), segment.get("label", segment.get("phone"))]
        if not isinstance(segment, (list, tuple)) or len(segment) != 3 or not isinstance(segment[2], str) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in segment[:2]
        ):
            raise SeqlabError(f"{at}, segment {k + 1}: expected [start, end, label] or "
                              f"{{start, end, label}}, got {json.dumps(segment)[:80]}")
        starts.append(float(segment[0]))
        ends.append(float(segment[1]))
        phones.append(segment[2])
        where.append(f"{at}, segment {k + 1}")
    return starts, ends, phones, where


def detail_segments(detail, at: str) -> Segments:
    """The hub's ``phonetic_detail`` (``timit_asr``): ``{start, stop, utterance}`` lists (or a list of such objects),
    in samples (``at``: the row)."""
    if isinstance(detail, list):
        detail = {key: [d[key] for d in detail] for key in ("start", "stop", "utterance")}
    starts, ends = [float(v) for v in detail.get("start") or []], [float(v) for v in detail.get("stop") or []]
    phones = list(detail.get("utterance") or [])
    if not (len(starts) == len(ends) == len(phones)):
        raise SeqlabError(f"{at}: the phonetic detail has {len(starts)} starts, {len(ends)} stops and "
                          f"{len(phones)} phones")
    return starts, ends, phones, [f"{at}, segment {k + 1}" for k in range(len(phones))]


def check_segments(starts: list[float], ends: list[float], where: list[str]) -> None:
    """Segments must have end > start >= 0, in time order, without overlapping."""
    previous_end = 0.0
    for start, end, at in zip(starts, ends, where):
        if start < 0 or end <= start:
            raise SeqlabError(f"{at}: segment end {end:g} is not after its start {start:g}")
        if start < previous_end:
            raise SeqlabError(f"{at}: segment starts at {start:g}, before the previous one ends ({previous_end:g}); "
                              "segments must be in time order without overlap")
        previous_end = end


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


class PhoneLabels:
    """The labels of the speech task, fitted on train or restored from a checkpoint: ``labels`` (the model's classes,
    phones at ``level`` of the phone map, or the phones seen in train without one), ``scoring`` (for each label, the
    label it is scored as), ``silence`` (scoring labels that phone error rate leaves out) and the phone map."""

    def __init__(self, labels: list[str], scoring: list[str], silence: list[str], phones: Optional[PhoneMap],
                 level: str) -> None:
        self.labels, self.scoring, self.silence = list(labels), list(scoring), list(silence)
        self.phones, self.level = phones, level

    @classmethod
    def fit(cls, phones: Optional[PhoneMap], seen: Iterable[str], level: str, score_level: str,
            silence: Optional[list[str]], source: str) -> "PhoneLabels":
        """``seen``: the phones of the training alignments (``source``, for messages); ``silence`` None: what
        ``h#``/``pau``/``epi`` fold to."""
        if phones is not None:
            labels, fold = phones.labels(level), phones.folding(level, score_level)
        else:
            labels = sorted(set(seen))
            fold = {label: label for label in labels}
        if len(labels) < 2:
            raise SeqlabError(f"the training data of {source} has fewer than two phone labels ({labels})")
        scoring = [fold[label] for label in labels]
        if silence is None and phones is not None:
            silence = sorted({phones.fold(p, score_level) for p in SILENCE_PHONES if p in phones} - {None})
        elif silence is None:
            silence = sorted(set(SILENCE_PHONES) & set(labels))
        unknown = sorted(set(silence) - set(scoring))
        if unknown:
            raise SeqlabError(f"--data.silence: {unknown} are not scoring labels ({' '.join(sorted(set(scoring)))})")
        return cls(labels, scoring, silence, phones, level)

    def label_id(self, phone: str, where: str) -> int:
        """The label id of a phone as it appears in alignments (at ``where``); IGNORE_INDEX for a deleted phone."""
        if self.phones is not None:
            if phone not in self.phones:
                raise SeqlabError(f"{where}: phone '{phone}' is not in the phone map {self.phones.source}")
            label = self.phones.fold(phone, self.level)
            return IGNORE_INDEX if label is None else self.labels.index(label)
        if phone not in self.labels:
            raise SeqlabError(f"{where}: phone '{phone}' does not occur in the training data "
                              f"(known: {' '.join(self.labels)})")
        return self.labels.index(phone)

    def state_dict(self) -> dict:
        return {"labels": list(self.labels), "scoring_labels": list(self.scoring),
                "silence_labels": list(self.silence),
                "phone_map": self.phones.state_dict() if self.phones is not None else None}

    @classmethod
    def from_state_dict(cls, state: dict, level: str) -> "PhoneLabels":
        phones = PhoneMap.from_state_dict(state["phone_map"]) if state.get("phone_map") else None
        return cls(state["labels"], state["scoring_labels"], state["silence_labels"], phones, level)
