"""Speech frame recognition data: audio with time-aligned phone segments -> log-mel frames with one phone label each.
The parts: ``utterances`` (where the utterances are), ``audio`` (features, CMVN, frame labels), ``phones`` (alignments,
phone maps, labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Optional, TypedDict

import datasets
import numpy as np
import torch
from pytorch_lightning.utilities import rank_zero_warn

from seqlab import SeqlabError
from seqlab.data.policy import OnBadRow
from seqlab.data.rows import ListDataset, generate_dataset
from seqlab.data.utterances import RAW, SpeechSource, Utterance, read_entry, utterance_rows
from seqlab.data_modules.base import SequenceDataModule, linked
from seqlab.encoders.audio import CMVN, IGNORE_INDEX, CMVNStats, FeatureConfig, single_thread
from seqlab.encoders.phones import PhoneLabels, PhoneMap, check_segments, detail_segments

#: the TIMIT folding table's file name, looked for beside the data with ``phone_map: auto``
DEFAULT_PHONE_MAP = "phones.60-48-39.map"

_INT, _INTS, _STRING = datasets.Value("int64"), datasets.Sequence(datasets.Value("int32")), datasets.Value("string")


def encoded_features(feature_size: int) -> datasets.Features:
    """Of an encoded utterance: features (T, F) before CMVN, label_ids (T,), phone_ids, and ``error``: an alignment
    past the end of the audio, or ""."""
    return datasets.Features({
        "features": datasets.Array2D((None, feature_size), "float32"), "label_ids": _INTS, "phone_ids": _INTS,
        "length": _INT, "index": _INT, "duration": datasets.Value("float64"), "id": _STRING, "error": _STRING,
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


# --------------------------------------------------------------------------------------------- the data module
class SpeechFrameData(SequenceDataModule):
    """Audio with a phone label per frame (TIMIT-style), for frame classification.

    ``path``: a folder with an utterance table (``utterance_table``, its ``split_column``), split folders (``train/``,
    ``dev/``...) of audio with ``.phn`` alignments (``start end phone`` in samples), JSONL manifests (``train.jsonl``
    ..., segments in ``segment_units``), or a hub dataset with ``audio_field`` and ``phonetic_field`` (``timit_asr``).

    Audio is decoded with soundfile, downmixed, resampled to ``sample_rate`` and turned into log-mel frames
    (``FeatureConfig``) by a cached ``datasets.map``, then normalised by the ``cmvn`` step (per utterance, or global
    statistics fitted on train and kept in checkpoints). Each frame takes the phone covering its centre; frames no
    segment covers get ``uncovered_label`` (e.g. ``h#``) or are ignored (None).

    Labels (``PhoneLabels``): with a phone map (``phone_map``: a file, or ``auto`` for ``phones.60-48-39.map`` beside
    the data) the model is trained on ``train_labels`` (61, 48 or 39 phones) and scored on ``score_labels``; phones
    the map lists without targets (``q``) are ignored. Without one, labels are the phones seen in train. ``silence``:
    the scoring labels phone error rate drops (default: what ``h#``/``pau``/``epi`` fold to).

    An alignment past the end of its audio is a bad row (``on_bad_row``): ``error`` stops, ``warn`` (the default)
    clips it with a warning, ``skip`` drops the utterance. Unreadable audio, a malformed alignment or a phone missing
    from the phone map stop with one line naming the file, whatever ``on_bad_row``.
    """

    batch_columns = ("features", "label_ids", "phone_ids", "length", "index", "id", "duration")
    renamed_options = {"alignment_overrun": ("on_bad_row", lambda v: "warn" if v == "clip" else "error")}

    def __init__(
        self,
        path: str = "timit_asr",
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
        features: Literal["fbank", "mel"] = "fbank",
        sample_rate: int = 16000,
        num_mel_bins: int = 40,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 10.0,
        deltas: int = 0,
        cmvn: Literal["utterance", "global", "none"] = "utterance",
        on_bad_row: OnBadRow = "warn",
        batch_size: int = 16,
        **kwargs: Any,
    ) -> None:
        """max_tokens caps the padded frames of a training batch."""
        super().__init__(path, on_bad_row=on_bad_row, batch_size=batch_size, **kwargs)
        if cmvn not in CMVN:
            raise SeqlabError(f"--data.cmvn must be one of {', '.join(CMVN)}, got {cmvn!r}")
        self.source = SpeechSource(self.source, utterance_table, split_column)
        self.split_column, self.audio_field, self.phonetic_field = split_column, audio_field, phonetic_field
        self.manifest_units = 1.0 if segment_units == "seconds" else 0.0  # 0: samples at the audio's own rate
        self.phone_map, self.train_labels, self.score_labels = phone_map, str(train_labels), str(score_labels)
        self.silence, self.uncovered_label = silence, uncovered_label
        try:
            self.feature_config = FeatureConfig(features, sample_rate, num_mel_bins, frame_length_ms, frame_shift_ms,
                                                deltas)
        except ValueError as error:  # its message starts with the option's name
            raise SeqlabError(f"--data.{error}") from None
        self.cmvn = CMVN[cmvn]()
        self.phone_labels: Optional[PhoneLabels] = None

    # ----------------------------------------------------------------- sizes linked into the model
    labels = linked(lambda self: list(self.phone_labels.labels), "The model's classes.")
    scoring_labels = linked(lambda self: list(self.phone_labels.scoring),
                            "For each label in ``labels``, the label it is scored as (its 39-phone folding, default).")
    silence_labels = linked(lambda self: list(self.phone_labels.silence),
                            "Scoring labels left out of phone sequences for phone error rate.")
    feature_size = linked(lambda self: self.feature_config.feature_size, "Features per frame.")
    frame_shift = linked(lambda self: self.feature_config.hop / self.feature_config.sample_rate,
                         "Seconds between frames.")
    frame_length = linked(lambda self: self.feature_config.window / self.feature_config.sample_rate,
                          "Seconds of audio per frame.")

    @property
    def cmvn_stats(self) -> Optional[CMVNStats]:
        """The global CMVN statistics; None for other CMVN, or before they are fitted."""
        return getattr(self.cmvn, "stats", None)

    # ----------------------------------------------------------------- reading
    def rows(self, files: list[Path], entries: list[Utterance]) -> datasets.Dataset:
        referenced = sorted({Path(p) for entry in entries for p in (entry.audio, entry.alignment) if p})
        return generate_dataset(utterance_rows, RAW, self.cache_dir, entries=tuple(entries),
                                signature=self.signature(list(files) + referenced), manifest_units=self.manifest_units)

    def read(self, split: str, files: list[Path]) -> datasets.Dataset:
        return self.rows(files, [entry for file in files for entry in read_entry(file, split, self.split_column)])

    def read_lazily(self, split: str) -> Callable[[], Iterator[dict]]:
        raise SeqlabError(f"{type(self).__name__} has no streaming path: leave --data.dataset unset (in memory)")

    def read_predict(self, path: Path) -> datasets.Dataset:
        """An audio file, a folder of audio files (recursive), a text file listing audio paths (one per line,
        relative to the list), a JSONL manifest or an utterance table (alignments, if any, are ignored)."""
        return self.rows([path], read_entry(path, None, self.split_column))

    def input_rows(self, inputs: list) -> datasets.Dataset:
        """Audio files (paths), each read as a predict input (a folder: its audio files)."""
        for number, item in enumerate(inputs, 1):
            if not str(item).strip():  # Path("") would be the working directory, read as a folder of audio
                raise SeqlabError(f"input {number}: empty path (an audio file, or a folder of them)")
        files = [Path(item).expanduser() for item in inputs]
        for number, path in enumerate(files, 1):
            if not path.exists():
                raise SeqlabError(f"input {number}: audio file not found: {path}")
        rows = self.rows(files, [entry for path in files for entry in read_entry(path, None, self.split_column)])
        return rows.add_column("error", [""] * len(rows))

    def from_hub(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        """Rows with ``audio`` and ``phonetic_detail`` (``start``, ``stop``, ``utterance``, in samples)."""
        audio_field, phonetic_field, source = self.audio_field, self.phonetic_field, f"{self.path}[{split}]"
        self.require_columns(dataset, source, audio_field=audio_field, phonetic_field=phonetic_field)

        def standardize(row: dict, index: int) -> dict:
            at, audio = f"{source}: row {index + 1}", row[audio_field] or {}
            starts, ends, phones, where = detail_segments(row[phonetic_field], at)
            check_segments(starts, ends, where)
            return {"id": str(row.get("id") or audio.get("path") or f"{split}-{index}"), "audio_path": audio.get("path")
                    or "", "audio_bytes": audio.get("bytes"), "starts": starts, "ends": ends, "phones": phones,
                    "where": where, "units": 0.0, "source": at}

        return dataset.cast_column(audio_field, datasets.Audio(decode=False)).map(
            standardize, with_indices=True, remove_columns=dataset.column_names, features=RAW, desc="standardizing")

    # ----------------------------------------------------------------- encoders
    @property
    def encoders_ready(self) -> bool:
        return self.phone_labels is not None

    def fit_encoders(self, train: datasets.Dataset) -> None:
        phones = None
        if self.phone_map not in (None, "", "none", "auto"):
            phones = PhoneMap.read(Path(self.phone_map).expanduser())
        elif self.phone_map == "auto" and self.source.is_local:  # beside the data, if there is one
            root = self.source.root
            found = (root if root.is_dir() else root.parent) / DEFAULT_PHONE_MAP
            phones = PhoneMap.read(found) if found.is_file() else None
        seen = (phone for row in train["phones"] for phone in row)
        self.phone_labels = PhoneLabels.fit(phones, seen, self.train_labels, self.score_labels, self.silence, self.path)
        if self.uncovered_label is not None:
            self.phone_labels.label_id(self.uncovered_label, "--data.uncovered_label")

    def state_dict(self) -> dict:
        """The checkpoint's data state: ``labels``, ``scoring_labels``, ``silence_labels``, ``phone_map``, ``cmvn``."""
        return {**self.phone_labels.state_dict(), "cmvn": self.cmvn.state_dict()} if self.encoders_ready else {}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            self.phone_labels = PhoneLabels.from_state_dict(state_dict, self.train_labels)
            self.cmvn.load_state_dict(state_dict.get("cmvn"))

    # ----------------------------------------------------------------- features and frame labels
    def encode(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        """Each utterance's features (T, F) before CMVN and frame labels (T,), with an ``error`` message for an
        alignment past the end of its audio (clipped there), then the bad-row policy."""
        labels = self.phone_labels
        ids = {}  # fail fast on unknown phones, before decoding any audio
        for phones, where in zip(dataset["phones"], dataset["where"]):
            ids.update({phone: labels.label_id(phone, at) for phone, at in zip(phones, where) if phone not in ids})
        uncovered = IGNORE_INDEX if self.uncovered_label is None else labels.label_id(self.uncovered_label, "")
        config = self.feature_config

        def encode_row(row: dict, index: int) -> dict:
            features, duration, rate = config.extract(row["audio_bytes"] or row["audio_path"],
                                                      row["audio_path"] or f"{row['source']} (audio bytes)")
            label_ids, phone_ids, overrun = config.targets(row["starts"], row["ends"], [ids[p] for p in row["phones"]],
                                                           row["units"] or rate, duration, len(features), uncovered)
            error = f"{row['source']}: the alignment runs {overrun:.4f} s past the end of the audio ({duration:.4f} s)"
            return {"features": features, "label_ids": label_ids, "phone_ids": phone_ids, "length": len(features),
                    "index": index, "duration": duration, "id": row["id"], "error": error if overrun > 0 else ""}

        with single_thread():
            encoded = dataset.map(encode_row, with_indices=True, remove_columns=dataset.column_names,
                                  features=encoded_features(config.feature_size), desc=f"features {split}")
        clipped = [message for message in encoded["error"] if message]
        if clipped and self.on_bad_row == "warn":
            rank_zero_warn(f"{split}: clipped {len(clipped)} alignments at the end of their audio "
                           f"(first: {clipped[0]})")
        return encoded if self.on_bad_row == "warn" else self.checked(split, encoded)

    def encoded_split(self, split: str) -> ListDataset:
        """The encoded split: features and frame labels stay in the ``datasets`` cache on disk and are read per batch
        (``collate`` applies the CMVN step); the per-utterance values are read into memory. Global CMVN statistics are
        fitted on train first, in one pass over its features."""
        if not self.cmvn.fitted and split != "train":
            self.encoded("train")
        encoded = self.encode(split, self.raw_split(split))
        arrays = encoded.with_format("numpy")
        if not self.cmvn.fitted:
            self.cmvn.fit(features for batch in arrays.iter(batch_size=64) for features in batch["features"])
        return ListDataset({"features": arrays["features"], "label_ids": arrays["label_ids"],
                            "phone_ids": list(arrays["phone_ids"]),
                            **{name: list(encoded[name]) for name in ("length", "index", "id", "duration")}})

    def collate(self, examples: list[dict]) -> FrameBatch:
        lengths = [example["length"] for example in examples]
        features = np.zeros((len(examples), max(lengths), self.feature_config.feature_size), dtype=np.float32)
        label_ids = np.full(features.shape[:2], IGNORE_INDEX, dtype=np.int64)  # (B, T)
        for row, example in enumerate(examples):
            features[row, :lengths[row]] = self.cmvn(example["features"])
            label_ids[row, :lengths[row]] = example["label_ids"]
        frames = torch.tensor(lengths)
        return FrameBatch(features=torch.from_numpy(features), mask=torch.arange(max(lengths)) < frames[:, None],
                          lengths=frames, label_ids=torch.from_numpy(label_ids),
                          index=torch.tensor([e["index"] for e in examples]), ids=[e["id"] for e in examples],
                          phone_ids=[e["phone_ids"].tolist() for e in examples],
                          durations=torch.tensor([e["duration"] for e in examples], dtype=torch.float64))
