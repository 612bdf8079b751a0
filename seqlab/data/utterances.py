"""Where a speech corpus's utterances are: each split's entries (``SpeechSource``) read by the reader for what they are,
recognised by content: a folder of audio with ``.phn`` alignments beside it, an utterance table (``UtteranceTable``), a
JSONL manifest, and, for predict input, an audio file or a list of audio paths. ``utterance_rows`` reads their
alignments into raw rows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

import datasets

from seqlab import SeqlabError
from seqlab.data.readers import DelimitedReader, JsonlReader, Reader
from seqlab.data.sources import SPLIT_ALIASES, SPLITS, SplitSource
from seqlab.encoders.audio import AUDIO_SUFFIXES, is_audio_file
from seqlab.encoders.phones import check_segments, manifest_segments, read_phn
from seqlab.files import iter_lines

_STRING, _FLOATS = datasets.Value("string"), datasets.Sequence(datasets.Value("float64"))
#: the raw rows of every layout (and of the hub's ``timit_asr`` schema)
RAW = datasets.Features({
    "id": _STRING, "audio_path": _STRING, "audio_bytes": datasets.Value("binary"), "starts": _FLOATS, "ends": _FLOATS,
    "phones": datasets.Sequence(_STRING), "where": datasets.Sequence(_STRING),  # each segment's file:line
    "units": datasets.Value("float64"),  # segment units per second; 0 = samples at the audio file's own rate
    "source": _STRING,  # the alignment (or manifest line) the row comes from
})


class Utterance(NamedTuple):
    """One utterance to read: its id, audio file, alignment (a ``.phn`` file, or a manifest's segments as JSON; none
    for predict input) and where it is listed."""

    id: str
    audio: str
    alignment: str = ""
    segments: str = ""
    source: str = ""


def audio_file(name: str, base: Path, at: str) -> Path:
    audio = base / Path(name).expanduser()  # an absolute name stays as it is
    if not audio.is_file():
        raise SeqlabError(f"{at}: audio file not found: {audio}")
    return audio


def beside(audio: Path, name: str, labelled: bool, source: str = "", *places: Path) -> Utterance:
    """An audio file with (``labelled``) its alignment: the first of ``places`` that exists, or the ``.phn`` beside."""
    alignment = next((p for p in (*places, audio.with_suffix(".phn"), audio.with_suffix(".PHN")) if p.is_file()), None)
    if labelled and alignment is None:
        raise SeqlabError(f"{source or audio}: no alignment for {audio.name} (looked for "
                          f"{(places or (audio.with_suffix('.phn'),))[0]})")
    return Utterance(name, str(audio), str(alignment) if labelled else "", "", source or str(audio))


def checked_records(reader: Reader, path: Path) -> Iterator[dict]:
    for row in reader.rows(path):
        if row["error"]:
            raise SeqlabError(row["error"])
        yield row


def read_folder(folder: Path, labelled: bool) -> list[Utterance]:
    """The audio files of a folder (recursively), named by their path in it (by their full path for predict)."""
    audio = sorted(p for p in folder.rglob("*") if p.is_file() and is_audio_file(p.name))
    return [beside(a, str(a.relative_to(folder).with_suffix("")) if labelled else str(a), labelled) for a in audio]


def read_manifest(manifest: Path, labelled: bool) -> list[Utterance]:
    """JSON lines ``{"audio": "a.flac", "segments": [[start, end, "phone"], ...], "id": "optional"}``, audio paths
    relative to the manifest (segments are not needed, and ignored, for predict input)."""
    entries = []
    for row in checked_records(JsonlReader(), manifest):
        fields, at = row["fields"], f"{manifest}:{row['line']}"
        if not isinstance(fields.get("audio"), str):
            raise SeqlabError(f"{at}: no 'audio' field (the audio file's path)")
        if labelled and not fields.get("segments"):
            raise SeqlabError(f"{at}: no 'segments' (a list of [start, end, label])")
        audio = audio_file(fields["audio"], manifest.parent, at)
        segments = json.dumps(fields["segments"]) if labelled else ""
        entries.append(Utterance(str(fields.get("id") or audio), str(audio), "", segments, at))
    return entries


def read_list(listing: Path, labelled: bool) -> list[Utterance]:
    """Lines of audio paths (relative to the list), each with its ``.phn`` beside it when ``labelled``."""
    return [beside(audio_file(line.strip(), listing.parent, f"{listing}:{n}"), line.strip(), labelled,
                   f"{listing}:{n}") for n, line in iter_lines(listing) if line.strip()]


class UtteranceTable:
    """A table of utterances (TSV, or CSV): ``utt_id`` (or ``id``), ``split_column`` (train/dev/test), optionally
    ``audio`` (a path); audio otherwise ``<utt_id>.flac`` (``.wav``...) in ``audio/`` or beside the table, alignments
    ``phn/<utt_id>.phn``, beside the table or beside the audio."""

    def __init__(self, path: Path, split_column: str = "split") -> None:
        self.rows = list(checked_records(DelimitedReader(), path))
        if not self.rows:
            raise SeqlabError(f"{path}: the utterance table has no rows")
        if not set(self.rows[0]["fields"]) & {"utt_id", "id"}:
            raise SeqlabError(f"{path}:1: no 'utt_id' (or 'id') column (columns: {', '.join(self.rows[0]['fields'])})")
        self.path, self.split_column = path, split_column

    def splits(self) -> list[str]:
        if self.split_column not in self.rows[0]["fields"]:
            raise SeqlabError(f"{self.path}:1: no '{self.split_column}' column; set --data.split_column")
        named = {row["fields"].get(self.split_column) for row in self.rows} - {None, ""}
        found = {SPLIT_ALIASES.get(split, split) for split in named}
        return [split for split in SPLITS if split in found] + sorted(found - set(SPLITS))

    def entries(self, split: Optional[str], labelled: bool = True) -> list[Utterance]:
        """The utterances of ``split`` (all rows when the table has no split column, or ``split`` is None)."""
        root, entries = self.path.parent, []
        for row in self.rows:
            fields, at = row["fields"], f"{self.path}:{row['line']}"
            found = fields.get(self.split_column)
            if split is not None and found is not None and SPLIT_ALIASES.get(found, found) != split:
                continue
            utterance, named = (fields.get("utt_id") or fields.get("id") or "").strip(), (fields.get("audio") or "")
            if not utterance:
                raise SeqlabError(f"{at}: empty utterance id")
            audio = audio_file(named.strip(), root, at) if named.strip() else next(
                (p for folder in (root / "audio", root) for suffix in AUDIO_SUFFIXES + (".FLAC", ".WAV")
                 if (p := folder / f"{utterance}{suffix}").is_file()), None)
            if audio is None:
                raise SeqlabError(f"{at}: no audio file for utterance '{utterance}' "
                                  f"(looked for {root / 'audio' / utterance}.flac/.wav...)")
            entries.append(beside(audio, utterance, labelled, at, root / "phn" / f"{utterance}.phn",
                                  root / f"{utterance}.phn"))
        return entries


def entry_kind(path: Path) -> str:
    """What a split's entry is, by content: ``folder``, ``audio`` (not text), ``manifest`` (JSON lines), ``table`` (a
    header with ``utt_id`` or ``id``) or ``list`` (lines of audio paths)."""
    if path.is_dir():
        return "folder"
    if is_audio_file(path.name):
        return "audio"
    first = next((line for _, line in iter_lines(path, lenient=True) if not isinstance(line, str) or line.strip()), "")
    if not isinstance(first, str):
        return "audio"
    if first.lstrip().startswith("{"):
        return "manifest"
    return "table" if {"utt_id", "id"} & set(re.split(r"[\t,]", first.strip())) else "list"


READERS = {
    "folder": read_folder, "manifest": read_manifest, "list": read_list,
    "audio": lambda path, labelled: [beside(path, path.stem if labelled else str(path), labelled)],
}


def read_entry(entry: Path, split: Optional[str], split_column: str = "split") -> list[Utterance]:
    """The utterances of ``split`` an entry holds, read by the reader for what it is (``split`` None: predict input,
    alignments not needed)."""
    kind = entry_kind(entry)
    if kind == "table":
        return UtteranceTable(entry, split_column).entries(split, labelled=split is not None)
    return READERS[kind](entry, split is not None)


def utterance_rows(entries: tuple[Utterance, ...], signature: tuple, manifest_units: float) -> Iterator[dict]:
    """Raw rows for ``entries``; ``signature`` only keys the cache (paths, sizes and mtimes of every file read)."""
    for utterance in entries:
        starts, ends, phones, where = (
            read_phn(Path(utterance.alignment)) if utterance.alignment
            else manifest_segments(json.loads(utterance.segments or "[]"), utterance.source)
        )
        check_segments(starts, ends, where)
        yield {"id": utterance.id, "audio_path": utterance.audio, "audio_bytes": None, "starts": starts, "ends": ends,
               "phones": phones, "where": where, "units": manifest_units if utterance.segments else 0.0,
               "source": utterance.alignment or utterance.source}


class SpeechSource(SplitSource):
    """``SplitSource`` (split folders or manifests found by name, ``data_files``, a hub id), except that a directory
    holding an utterance table gives that table to each split it lists."""

    def __init__(self, source: SplitSource, table: str, split_column: str) -> None:
        super().__init__(source.path, source.name, source.data_files, source.cache_dir)
        self.table, self.split_column = table, split_column

    def resolve(self) -> dict[str, list[Path]]:
        table = self.root / self.table
        if not self.data_files and table.is_file():
            return {split: [table] for split in UtteranceTable(table, self.split_column).splits()}
        return super().resolve()
