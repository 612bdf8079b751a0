"""Speech frame recognition data: audio with time-aligned phone segments -> log-mel frames with one phone label each."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Literal, Optional, TypedDict, Union

import datasets
import numpy as np
import torch
from pytorch_lightning.utilities import rank_zero_warn

from seqlab import SeqlabError
from seqlab.data_modules.audio import (
    IGNORE_INDEX,
    CMVNStats,
    FeatureConfig,
    frame_labels,
    is_audio_file,
    read_audio,
    resample,
    single_thread,
)
from seqlab.data_modules.base import ListDataset, SequenceDataModule, generate_dataset
from seqlab.data_modules.phones import SILENCE_PHONES, PhoneMap
from seqlab.data_modules.sources import SPLIT_ALIASES, SPLIT_PATTERNS, SPLITS, file_signature, iter_lines, resolve_local

#: the TIMIT folding table's file name, looked for beside the data with ``phone_map: auto``
DEFAULT_PHONE_MAP = "phones.60-48-39.map"

_RAW = datasets.Features({
    "id": datasets.Value("string"),
    "audio_path": datasets.Value("string"),
    "audio_bytes": datasets.Value("binary"),
    "starts": datasets.Sequence(datasets.Value("float64")),
    "ends": datasets.Sequence(datasets.Value("float64")),
    "phones": datasets.Sequence(datasets.Value("string")),
    "where": datasets.Sequence(datasets.Value("string")),  # each segment's file:line, for errors
    "units": datasets.Value("float64"),  # segment units per second; 0 = samples at the audio file's own rate
    "source": datasets.Value("string"),  # the alignment (or manifest line) the row comes from
})


def _encoded_features(feature_size: int) -> datasets.Features:
    return datasets.Features({
        "id": datasets.Value("string"),
        "source": datasets.Value("string"),
        "features": datasets.Array2D((None, feature_size), "float32"),
        "label_ids": datasets.Sequence(datasets.Value("int32")),
        "phone_ids": datasets.Sequence(datasets.Value("int32")),
        "length": datasets.Value("int64"),
        "index": datasets.Value("int64"),
        "duration": datasets.Value("float64"),
        "overrun": datasets.Value("float64"),
    })


class FrameBatch(TypedDict):
    """features (B, T, F) float, 0 on padding; mask (B, T) bool, True = real frame; lengths (B,) frames;
    label_ids (B, T) phone label per frame, -100 on padding and on frames without a label (and for predict input);
    index (B,) positions in the split; ids: utterance ids (the file for predict input); phone_ids: each utterance's
    reference phone sequence (label ids, deleted phones left out; empty for predict input); durations (B,) seconds."""

    features: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    label_ids: torch.Tensor
    index: torch.Tensor
    ids: list[str]
    phone_ids: list[list[int]]
    durations: torch.Tensor


# --------------------------------------------------------------------------------------------- alignments
def read_phn(path: Path) -> tuple[list[float], list[float], list[str], list[str]]:
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


def _manifest_segments(segments, at: str) -> tuple[list[float], list[float], list[str]]:
    starts, ends, phones = [], [], []
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
    return starts, ends, phones


def _speech_rows(entries, signature, manifest_units):
    """Raw rows for ``entries`` (utterance id, audio file, alignment file or '', inline segments JSON or '',
    source); ``signature`` only keys the cache (paths, sizes and mtimes of every file read)."""
    for utterance, audio, alignment, inline, source in entries:
        if alignment:
            starts, ends, phones, where = read_phn(Path(alignment))
            units = 0.0
        elif inline:
            starts, ends, phones = _manifest_segments(json.loads(inline), source)
            where = [f"{source}, segment {k + 1}" for k in range(len(phones))]
            units = manifest_units
        else:
            starts, ends, phones, where, units = [], [], [], [], 0.0
        check_segments(starts, ends, where)
        yield {"id": utterance, "audio_path": audio, "audio_bytes": None, "starts": starts, "ends": ends,
               "phones": phones, "where": where, "units": units, "source": alignment or source}


# --------------------------------------------------------------------------------------------- the data module
class SpeechFrameData(SequenceDataModule):
    """Audio with a phone label per frame (TIMIT-style), for frame classification.

    Sources (``path``):

    - a local folder with an utterance table (``utterance_table``, default ``utterances.tsv``: ``utt_id`` and
      ``split_column`` (train/dev/test), optionally an ``audio`` column), audio files in ``audio/`` (or the folder)
      named ``<utt_id>.flac``/``.wav``..., and TIMIT alignments ``phn/<utt_id>.phn`` (``start end phone`` in samples);
    - a local folder with ``train/``, ``dev/``, ``test/`` subfolders of audio files, each with its ``.phn`` beside it;
    - JSONL manifests (``train.jsonl``, ``dev.jsonl``... or ``data_files``), one utterance per line:
      ``{"audio": "a.flac", "segments": [[start, end, "phone"], ...], "id": "optional"}``, paths relative to the
      manifest, segments in ``segment_units`` (samples of the audio file, or seconds);
    - a hub dataset with the ``timit_asr`` schema: ``audio`` (read as ``Audio(decode=False)``) and
      ``phonetic_detail`` with ``start``, ``stop``, ``utterance`` (sample indices).

    Audio is decoded with soundfile, downmixed to mono, resampled to ``sample_rate`` when the file's rate differs,
    and turned into log-mel frames (see ``FeatureConfig``: ``features`` fbank or mel, ``num_mel_bins``, 25 ms / 10 ms
    frames, ``deltas``, ``cmvn`` per utterance or global, the global statistics fitted on train and stored in
    checkpoints), once, by a cached ``datasets.map``. Each frame takes the phone covering its centre; frames no
    segment covers get ``uncovered_label`` (e.g. ``h#``) or are ignored (None).

    Labels: with a phone map (``phone_map``: a file, or ``auto`` for ``phones.60-48-39.map`` beside the data) the
    model is trained on the ``train_labels`` column (61, 48 or 39 phones) and scored on ``score_labels`` (39 by
    default); phones the map lists without targets (``q``) are ignored. Without one, labels are the phones seen in
    train. ``silence`` names the scoring labels that phone error rate drops (default: what ``h#``/``pau``/``epi``
    fold to).

    Bad input stops with one line naming the file: unreadable or truncated audio, a malformed alignment, a phone
    missing from the phone map, an alignment past the end of its audio (``alignment_overrun: error``; with ``clip``,
    the default, it is clipped and counted in a warning).
    """

    batch_columns = ("features", "label_ids", "phone_ids", "length", "index", "id", "duration")

    def __init__(
        self,
        path: str = "timit_asr",
        name: Optional[str] = None,
        data_files: Optional[dict[str, Union[str, list[str]]]] = None,
        predict_path: Optional[str] = None,
        utterance_table: str = "utterances.tsv",
        split_column: str = "split",
        audio_field: str = "audio",
        phonetic_field: str = "phonetic_detail",
        segment_units: Literal["samples", "seconds"] = "samples",
        phone_map: Optional[str] = "auto",
        train_labels: Literal["61", "48", "39"] = "39",
        score_labels: Literal["61", "48", "39"] = "39",
        silence: Optional[list[str]] = None,
        uncovered_label: Optional[str] = None,
        alignment_overrun: Literal["clip", "error"] = "clip",
        features: Literal["fbank", "mel"] = "fbank",
        sample_rate: int = 16000,
        num_mel_bins: int = 40,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 10.0,
        deltas: int = 0,
        cmvn: Literal["utterance", "global", "none"] = "utterance",
        batch_size: int = 16,
        eval_batch_size: Optional[int] = None,
        max_tokens: Optional[int] = None,
        bucket_size: int = 100,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: Optional[str] = None,
    ) -> None:
        """max_tokens caps the padded frames of a training batch."""
        self.utterance_table = utterance_table
        self.split_column = split_column
        self.audio_field = audio_field
        self.phonetic_field = phonetic_field
        self.segment_units = segment_units
        self.phone_map = phone_map
        self.train_labels = str(train_labels)
        self.score_labels = str(score_labels)
        self.silence = list(silence) if silence is not None else None
        self.uncovered_label = uncovered_label
        self.alignment_overrun = alignment_overrun
        self.feature_config = FeatureConfig(features, sample_rate, num_mel_bins, frame_length_ms, frame_shift_ms,
                                            deltas, cmvn)
        self.phones: Optional[PhoneMap] = None
        self.label_names: Optional[list[str]] = None
        self.scoring: Optional[list[str]] = None
        self.silence_set: Optional[list[str]] = None
        self.cmvn_stats: Optional[CMVNStats] = None
        super().__init__(
            path, name, data_files, predict_path, batch_size, eval_batch_size, max_tokens, bucket_size,
            num_workers, seed, cache_dir,
        )
        self.save_hyperparameters()

    # ----------------------------------------------------------------- sizes linked into the model
    @property
    def feature_size(self) -> int:
        return self.feature_config.feature_size

    @property
    def labels(self) -> list[str]:
        self.prepare_vocabularies()
        return list(self.label_names)

    @property
    def scoring_labels(self) -> list[str]:
        """For each label in ``labels``, the label it is scored as (its 39-phone folding by default)."""
        self.prepare_vocabularies()
        return list(self.scoring)

    @property
    def silence_labels(self) -> list[str]:
        """Scoring labels left out of phone sequences for phone error rate."""
        self.prepare_vocabularies()
        return list(self.silence_set)

    @property
    def frame_shift(self) -> float:
        """Seconds between frames."""
        return self.feature_config.hop / self.feature_config.sample_rate

    @property
    def frame_length(self) -> float:
        """Seconds of audio per frame."""
        return self.feature_config.window / self.feature_config.sample_rate

    # ----------------------------------------------------------------- sources
    def raw_split(self, split: str) -> datasets.Dataset:
        if split not in self._raw:
            if split == "predict" and self.predict_path and Path(self.predict_path).expanduser().is_dir():
                self._raw[split] = self.read_predict_files([Path(self.predict_path).expanduser()])
                if len(self._raw[split]) == 0:
                    raise SeqlabError(f"no audio files in {self.predict_path}")
            elif split != "predict" and self.is_local and self._sources is None:
                self._sources = self.resolve_sources()
        return super().raw_split(split)

    def resolve_sources(self) -> dict[str, list[Path]]:
        """Split -> files: the utterance table (one per split present in it), split subfolders, or manifests."""
        root = Path(self.path).expanduser()
        if not self.data_files and root.is_dir():
            table = root / self.utterance_table
            if table.is_file():
                return {split: [table] for split in self._table_splits(table)}
            folders = {}
            for split in SPLITS:
                found = next((root / stem for stem in SPLIT_PATTERNS[split] if (root / stem).is_dir()), None)
                if found is not None:
                    folders[split] = [found]
            if folders:
                return folders
        return resolve_local(self.path, self.data_files)

    def _table(self, table: Path) -> list[tuple[int, dict]]:
        lines = [line for _, line in iter_lines(table)]
        rows = list(csv.DictReader(lines, delimiter="\t" if table.suffix != ".csv" else ","))
        if not rows:
            raise SeqlabError(f"{table}: the utterance table has no rows")
        columns = set(rows[0])
        if not columns & {"utt_id", "id"}:
            raise SeqlabError(f"{table}:1: no 'utt_id' (or 'id') column (columns: {', '.join(rows[0])})")
        return [(number + 2, row) for number, row in enumerate(rows)]

    def _table_splits(self, table: Path) -> list[str]:
        rows = self._table(table)
        if self.split_column not in rows[0][1]:
            raise SeqlabError(f"{table}:1: no '{self.split_column}' column; set --data.split_column")
        found = {SPLIT_ALIASES.get(row[self.split_column], row[self.split_column]) for _, row in rows}
        return [split for split in SPLITS if split in found] + sorted(found - set(SPLITS))

    def _table_entries(self, split: str, table: Path) -> list[tuple]:
        root = table.parent
        entries = []
        for number, row in self._table(table):
            row_split = row.get(self.split_column)
            if row_split is not None and SPLIT_ALIASES.get(row_split, row_split) != split:
                continue
            utterance = (row.get("utt_id") or row.get("id") or "").strip()
            if not utterance:
                raise SeqlabError(f"{table}:{number}: empty utterance id")
            named = (row.get("audio") or row.get("path") or "").strip()
            if named:
                audio = root / named
                if not audio.is_file():
                    raise SeqlabError(f"{table}:{number}: audio file not found: {audio}")
            else:
                audio = next((folder / f"{utterance}{suffix}" for folder in (root / "audio", root)
                              for suffix in (".flac", ".wav", ".FLAC", ".WAV", ".ogg", ".sph")
                              if (folder / f"{utterance}{suffix}").is_file()), None)
                if audio is None:
                    raise SeqlabError(f"{table}:{number}: no audio file for utterance '{utterance}' "
                                      f"(looked for {root / 'audio' / utterance}.flac/.wav...)")
            alignment = next((p for p in (root / "phn" / f"{utterance}.phn", root / f"{utterance}.phn",
                                          audio.with_suffix(".phn"), audio.with_suffix(".PHN")) if p.is_file()), None)
            if alignment is None:
                raise SeqlabError(f"{table}:{number}: no alignment for utterance '{utterance}' "
                                  f"(looked for {root / 'phn' / utterance}.phn)")
            entries.append((utterance, str(audio), str(alignment), "", f"{table}:{number}"))
        return entries

    @staticmethod
    def _folder_entries(folder: Path, labelled: bool = True) -> list[tuple]:
        entries = []
        for audio in sorted(p for p in folder.rglob("*") if p.is_file() and is_audio_file(p.name)):
            alignment = ""
            if labelled:
                found = next((p for p in (audio.with_suffix(".phn"), audio.with_suffix(".PHN")) if p.is_file()), None)
                if found is None:
                    raise SeqlabError(f"{audio}: no alignment file beside it ({audio.with_suffix('.phn').name})")
                alignment = str(found)
            name = str(audio.relative_to(folder).with_suffix("")) if labelled else str(audio)
            entries.append((name, str(audio), alignment, "", str(audio)))
        return entries

    @staticmethod
    def _manifest_entries(manifest: Path, labelled: bool = True) -> list[tuple]:
        entries = []
        for number, line in iter_lines(manifest):
            if not line.strip():
                continue
            at = f"{manifest}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise SeqlabError(f"{at}: invalid JSON ({error.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("audio"), str):
                raise SeqlabError(f"{at}: no 'audio' field (the audio file's path)")
            audio = Path(row["audio"]).expanduser()
            audio = audio if audio.is_absolute() else manifest.parent / audio
            if not audio.is_file():
                raise SeqlabError(f"{at}: audio file not found: {audio}")
            segments = row.get("segments")
            if labelled and not segments:
                raise SeqlabError(f"{at}: no 'segments' (a list of [start, end, label])")
            inline = json.dumps(segments) if labelled else ""
            entries.append((str(row.get("id") or audio), str(audio), "", inline, at))
        return entries

    def _entries_dataset(self, split: str, files: list[Path], entries: list[tuple]) -> datasets.Dataset:
        referenced = sorted({Path(p) for entry in entries for p in entry[1:3] if p})
        return generate_dataset(
            _speech_rows, _RAW, self.cache_dir, entries=tuple(entries),
            signature=tuple(map(tuple, file_signature(list(files) + referenced))),
            manifest_units=1.0 if self.segment_units == "seconds" else 0.0,
        )

    def read_files(self, split: str, files: list[Path]) -> datasets.Dataset:
        entries = []
        for file in files:
            if file.is_dir():
                entries += self._folder_entries(file)
            elif file.suffix.lower() in (".tsv", ".csv"):
                entries += self._table_entries(split, file)
            elif file.name.endswith((".jsonl", ".json")):
                entries += self._manifest_entries(file)
            else:
                raise SeqlabError(f"{file}: speech data comes as an utterance table (.tsv), a folder of audio with "
                                  ".phn alignments, or a JSONL manifest")
        if not entries:
            raise SeqlabError(f"no utterances for split '{split}' in {', '.join(map(str, files))}")
        return self._entries_dataset(split, files, entries)

    def read_predict_files(self, files: list[Path]) -> datasets.Dataset:
        """An audio file, a folder of audio files (recursive), a text file listing audio paths (one per line,
        relative to the list), or a JSONL manifest (segments, if any, are ignored)."""
        entries: list[tuple] = []
        for file in files:
            if file.is_dir():
                entries += self._folder_entries(file, labelled=False)
            elif is_audio_file(file.name):
                entries.append((str(file), str(file), "", "", str(file)))
            elif file.name.endswith((".jsonl", ".json")):
                entries += self._manifest_entries(file, labelled=False)
            else:
                for number, line in iter_lines(file):
                    if line.strip():
                        audio = Path(line.strip()).expanduser()
                        audio = audio if audio.is_absolute() else file.parent / audio
                        if not audio.is_file():
                            raise SeqlabError(f"{file}:{number}: audio file not found: {audio}")
                        entries.append((line.strip(), str(audio), "", "", f"{file}:{number}"))
        return self._entries_dataset("predict", files, entries)

    def from_hub(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        """Rows with ``audio`` and ``phonetic_detail`` (``start``, ``stop``, ``utterance``, in samples)."""
        source = f"{self.path}[{split}]"
        for field in (self.audio_field, self.phonetic_field):
            if field not in dataset.column_names:
                raise SeqlabError(f"{source}: no field '{field}' (fields: {', '.join(dataset.column_names)}); "
                                  "set --data.audio_field / --data.phonetic_field")
        dataset = dataset.cast_column(self.audio_field, datasets.Audio(decode=False))
        audio_field, phonetic_field = self.audio_field, self.phonetic_field

        def standardize(batch: dict, indices: list[int]) -> dict:
            out = {name: [] for name in _RAW}
            for row, audio, detail, utterance in zip(indices, batch[audio_field], batch[phonetic_field],
                                                     batch.get("id") or [None] * len(indices)):
                at = f"{source}: row {row + 1}"
                if isinstance(detail, list):  # a list of {start, stop, utterance}
                    detail = {key: [d[key] for d in detail] for key in ("start", "stop", "utterance")}
                starts = [float(v) for v in detail.get("start") or []]
                ends = [float(v) for v in detail.get("stop") or []]
                phones = list(detail.get("utterance") or [])
                if not (len(starts) == len(ends) == len(phones)):
                    raise SeqlabError(f"{at}: {phonetic_field} has {len(starts)} starts, {len(ends)} stops and "
                                      f"{len(phones)} phones")
                where = [f"{at}, segment {k + 1}" for k in range(len(phones))]
                check_segments(starts, ends, where)
                out["id"].append(str(utterance or (audio or {}).get("path") or f"{split}-{row}"))
                out["audio_path"].append((audio or {}).get("path") or "")
                out["audio_bytes"].append((audio or {}).get("bytes"))
                out["starts"].append(starts)
                out["ends"].append(ends)
                out["phones"].append(phones)
                out["where"].append(where)
                out["units"].append(0.0)
                out["source"].append(at)
            return out

        return dataset.map(standardize, batched=True, with_indices=True, remove_columns=dataset.column_names,
                           features=_RAW, desc="standardizing")

    # ----------------------------------------------------------------- labels
    @property
    def vocabularies_ready(self) -> bool:
        return self.label_names is not None

    def _read_phone_map(self) -> Optional[PhoneMap]:
        if self.phone_map is None or self.phone_map in ("", "none"):
            return None
        if self.phone_map == "auto":
            root = Path(self.path).expanduser()
            candidate = (root if root.is_dir() else root.parent) / DEFAULT_PHONE_MAP
            return PhoneMap.read(candidate) if self.is_local and candidate.is_file() else None
        return PhoneMap.read(Path(self.phone_map).expanduser())

    def fit_vocabularies(self, train: datasets.Dataset) -> None:
        phones = self._read_phone_map()
        if phones is not None:
            labels = phones.labels(self.train_labels)
            fold = phones.folding(self.train_labels, self.score_labels)
        else:
            labels = sorted({p for row in train["phones"] for p in row})
            fold = {label: label for label in labels}
        if len(labels) < 2:
            raise SeqlabError(f"the training data of {self.path} has fewer than two phone labels ({labels})")
        scoring = [fold[label] for label in labels]
        if self.silence is not None:
            silence = list(self.silence)
        elif phones is not None:
            silence = sorted({phones.fold(p, self.score_labels) for p in SILENCE_PHONES
                              if p in phones and phones.fold(p, self.score_labels) is not None})
        else:
            silence = sorted(set(SILENCE_PHONES) & set(labels))
        unknown = sorted(set(silence) - set(scoring))
        if unknown:
            raise SeqlabError(f"silence labels {unknown} are not scoring labels ({' '.join(sorted(set(scoring)))})")
        self.phones, self.label_names, self.scoring, self.silence_set = phones, labels, scoring, list(silence)
        if self.uncovered_label is not None:
            self._label_id(self.uncovered_label, "--data.uncovered_label")

    def _label_id(self, phone: str, where: str) -> int:
        """The training label id of a phone as it appears in alignments; IGNORE_INDEX for a deleted phone."""
        if self.phones is not None:
            if phone not in self.phones:
                raise SeqlabError(f"{where}: phone '{phone}' is not in the phone map {self.phones.source}")
            label = self.phones.fold(phone, self.train_labels)
            return IGNORE_INDEX if label is None else self.label_names.index(label)
        if phone not in self.label_names:
            raise SeqlabError(f"{where}: phone '{phone}' does not occur in the training data "
                              f"(known: {' '.join(self.label_names)})")
        return self.label_names.index(phone)

    def state_dict(self) -> dict:
        if not self.vocabularies_ready:
            return {}
        return {
            "labels": list(self.label_names), "scoring_labels": list(self.scoring),
            "silence_labels": list(self.silence_set),
            "phone_map": self.phones.state_dict() if self.phones is not None else None,
            "cmvn": self.cmvn_stats.state_dict() if self.cmvn_stats is not None else None,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            self.label_names = list(state_dict["labels"])
            self.scoring = list(state_dict["scoring_labels"])
            self.silence_set = list(state_dict["silence_labels"])
            self.phones = PhoneMap.from_state_dict(state_dict["phone_map"]) if state_dict.get("phone_map") else None
            self.cmvn_stats = CMVNStats.from_state_dict(state_dict["cmvn"]) if state_dict.get("cmvn") else None

    # ----------------------------------------------------------------- features and frame labels
    def encode(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        phone_ids = {}
        for phones, where in zip(dataset["phones"], dataset["where"]):  # fail fast, before decoding any audio
            for phone, at in zip(phones, where):
                if phone not in phone_ids:
                    phone_ids[phone] = self._label_id(phone, at)
        uncovered = IGNORE_INDEX if self.uncovered_label is None else self._label_id(self.uncovered_label, "")
        config = self.feature_config

        def encode_batch(batch: dict, indices: list[int]) -> dict:
            out = {name: [] for name in ("id", "source", "features", "label_ids", "phone_ids", "length", "index",
                                         "duration", "overrun")}
            for k, index in enumerate(indices):
                name = batch["audio_path"][k] or f"{batch['source'][k]} (audio bytes)"
                waveform, rate = read_audio(batch["audio_bytes"][k] or batch["audio_path"][k], name)
                duration = len(waveform) / rate
                features = config(resample(torch.from_numpy(waveform), rate, config.sample_rate)).numpy()  # (T, F)
                if features.shape[0] == 0:
                    raise SeqlabError(f"{name}: {duration:.3f} s of audio is shorter than one "
                                      f"{config.frame_length_ms:g} ms frame")
                units = batch["units"][k] or rate  # segment units per second
                starts = np.asarray(batch["starts"][k], dtype=np.float64)
                ends = np.asarray(batch["ends"][k], dtype=np.float64)
                limit = duration * units
                overrun = max(0.0, float(ends.max()) - limit) / units if len(ends) else 0.0
                keep = starts < limit
                starts, ends = starts[keep], np.minimum(ends[keep], limit)
                ids = np.asarray([phone_ids[p] for p, kept in zip(batch["phones"][k], keep) if kept], dtype=np.int64)
                scale = config.sample_rate / units
                centres = config.frame_centres(features.shape[0])
                out["label_ids"].append(frame_labels(starts * scale, ends * scale, ids, centres, uncovered))
                out["phone_ids"].append(ids[ids >= 0])
                out["features"].append(features)
                out["length"].append(features.shape[0])
                out["index"].append(index)
                out["duration"].append(duration)
                out["overrun"].append(overrun)
                out["id"].append(batch["id"][k])
                out["source"].append(batch["source"][k])
            return out

        with single_thread():
            encoded = dataset.map(encode_batch, batched=True, batch_size=32, with_indices=True,
                                  remove_columns=dataset.column_names, features=_encoded_features(config.feature_size),
                                  desc=f"features {split}")
        self._check_overrun(split, encoded)
        return encoded.with_format("numpy", columns=["features", "label_ids", "phone_ids"], output_all_columns=True)

    def _check_overrun(self, split: str, encoded: datasets.Dataset) -> None:
        overrun = np.asarray(encoded["overrun"], dtype=np.float64)
        bad = np.flatnonzero(overrun > 0)
        if not len(bad):
            return
        first = encoded[int(bad[0])]
        message = (f"{first['source']}: the alignment runs {overrun[bad[0]]:.4f} s past the end of the audio "
                   f"({first['duration']:.4f} s)")
        if self.alignment_overrun == "error":
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise SeqlabError(f"{message}{more}; --data.alignment_overrun clip clips such alignments")
        rank_zero_warn(f"{split}: clipped {len(bad)} alignments at the end of their audio (first: {message})")

    def setup(self, stage: Optional[str] = None) -> None:
        super().setup(stage)
        for split, data in self._encoded.items():
            if not isinstance(data.columns["length"], list):  # arrow columns -> arrays, once
                self._encoded[split] = ListDataset(_materialize(data.columns))
        if self.feature_config.cmvn == "global" and self.cmvn_stats is None:
            self.cmvn_stats = CMVNStats.fit(self.encoded("train").columns["features"])

    def collate(self, examples: list[dict]) -> FrameBatch:
        batch, longest = len(examples), max(e["length"] for e in examples)
        features = np.zeros((batch, longest, self.feature_size), dtype=np.float32)
        label_ids = np.full((batch, longest), IGNORE_INDEX, dtype=np.int64)
        for row, example in enumerate(examples):
            length = example["length"]
            frames = example["features"]
            features[row, :length] = frames if self.cmvn_stats is None else self.cmvn_stats.apply(frames)
            label_ids[row, :length] = example["label_ids"]
        lengths = torch.tensor([e["length"] for e in examples])
        return FrameBatch(
            features=torch.from_numpy(features),
            mask=torch.arange(longest).unsqueeze(0) < lengths.unsqueeze(1),
            lengths=lengths,
            label_ids=torch.from_numpy(label_ids),
            index=torch.tensor([e["index"] for e in examples]),
            ids=[e["id"] for e in examples],
            phone_ids=[list(e["phone_ids"]) for e in examples],
            durations=torch.tensor([e["duration"] for e in examples], dtype=torch.float64),
        )


def _materialize(columns: dict) -> dict[str, list]:
    """Arrow-backed columns -> lists of numpy arrays and Python scalars (fast per-example access in collate)."""
    out = {}
    for name, column in columns.items():
        values = list(column)
        if name == "features":
            values = [np.asarray(v, dtype=np.float32) for v in values]
        elif name in ("label_ids", "phone_ids"):
            values = [np.asarray(v, dtype=np.int64) for v in values]
        elif name == "id":
            values = [str(v) for v in values]
        out[name] = values
    return out
