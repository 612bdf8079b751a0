"""Text classification (sentiment) data: TSV/CSV/JSONL/parquet files with a text and a label field, or a hub dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, TypedDict, Union

import datasets
import numpy as np
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from seqlab import SeqlabError
from seqlab.data_modules.base import SequenceDataModule, generate_dataset
from seqlab.data_modules.readers import read_labelled_rows
from seqlab.data_modules.sources import file_format
from seqlab.data_modules.text_encoders import SubwordEncoder, TextEncoder, WhitespaceEncoder
from seqlab.data_modules.vocab import Vocabulary

_FEATURES = datasets.Features(
    {
        "text": datasets.Value("string"),
        "label": datasets.Value("string"),
        "source": datasets.Value("string"),
        "line": datasets.Value("int64"),
        "error": datasets.Value("string"),
    }
)


class SentenceBatch(TypedDict):
    """token_ids (B, T), padding = padding_idx; mask (B, T) bool, True = real token; lengths (B,); label_ids (B,),
    -1 for unlabelled (predict) input; index (B,) example positions in their split; tokens: the tokens read."""

    token_ids: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    label_ids: torch.Tensor
    index: torch.Tensor
    tokens: list[list[str]]


def where(source: str, line: int) -> str:
    """``file:line`` for line-based files, ``file: row R`` for row-based data (line 0, the row in ``source``)."""
    return f"{source}:{line}" if line > 0 else source


class TextClassificationData(SequenceDataModule):
    """One label per text.

    Local files: TSV/CSV with a header line (or ``column_names``), JSONL, or parquet, with ``text_field`` and
    ``label_field``; hub datasets (``nyu-mll/glue`` with ``name: sst2``, ``stanfordnlp/imdb``) the same. Labels are
    integers or strings. ``label_names`` fixes the label set and its order (integer labels index into it, e.g.
    ``[negative, positive]`` for SST-2's 0/1); otherwise the set is read from train (a hub ClassLabel keeps its
    names). A label in validation/test outside the set is an error naming the file and line.

    Tokens: whitespace words looked up in a vocabulary fitted on ``vocab_splits`` (default train; adding the words,
    never the labels, of validation/test lets pretrained vectors cover them), with ``min_freq`` and ``lowercase``; or
    ``tokenizer``, a ``tokenizers`` JSON file or a transformers model name/directory. ``max_length`` truncates
    longer texts (the number truncated is logged per split).

    Bad rows (a missing field, an empty text, a label outside the set, invalid UTF-8) stop reading with a one-line
    error, unless ``skip_invalid`` is set: then they are skipped and counted in the log.
    """

    batch_columns = ("token_ids", "label_id", "length", "index", "tokens")

    def __init__(
        self,
        path: str = "nyu-mll/glue",
        name: Optional[str] = "sst2",
        data_files: Optional[dict[str, Union[str, list[str]]]] = None,
        predict_path: Optional[str] = None,
        text_field: str = "sentence",
        label_field: str = "label",
        column_names: Optional[list[str]] = None,
        label_names: Optional[list[str]] = None,
        tokenizer: Optional[str] = None,
        lowercase: bool = False,
        min_freq: int = 1,
        vocab_splits: list[str] = ["train"],
        max_length: Optional[int] = None,
        skip_invalid: bool = False,
        batch_size: int = 32,
        eval_batch_size: Optional[int] = None,
        max_tokens: Optional[int] = None,
        bucket_size: int = 100,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: Optional[str] = None,
    ) -> None:
        self.text_field = text_field
        self.label_field = label_field
        self.column_names = column_names
        self.label_names = list(label_names) if label_names else None
        self.tokenizer = tokenizer
        self.lowercase = lowercase
        self.min_freq = min_freq
        self.vocab_splits = list(vocab_splits)
        self.max_length = max_length
        self.skip_invalid = skip_invalid
        self.text_encoder: Optional[TextEncoder] = None
        self.label_vocab: Optional[Vocabulary] = None
        super().__init__(
            path, name, data_files, predict_path, batch_size, eval_batch_size, max_tokens, bucket_size,
            num_workers, seed, cache_dir,
        )
        self.save_hyperparameters()

    # ----------------------------------------------------------------- sizes linked into the model
    @property
    def vocab_size(self) -> int:
        self.prepare_vocabularies()
        return self.text_encoder.vocab_size

    @property
    def padding_idx(self) -> int:
        self.prepare_vocabularies()
        return self.text_encoder.pad_index

    @property
    def labels(self) -> list[str]:
        self.prepare_vocabularies()
        return list(self.label_vocab.itos)

    @property
    def words(self) -> Optional[Vocabulary]:
        """The word vocabulary (whitespace tokens), which pretrained word vectors initialise; None for subwords."""
        return self.text_encoder.words if self.text_encoder is not None else None

    # ----------------------------------------------------------------- reading
    @property
    def _column_names(self) -> Optional[tuple[str, ...]]:
        """A tuple: ``datasets`` would take a list in a generator's arguments for shards to split."""
        return tuple(self.column_names) if self.column_names else None

    def read_files(self, split: str, files: list[Path]) -> datasets.Dataset:
        formats = {file_format(f) for f in files}
        if formats == {"parquet"}:
            loaded = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train",
                                           cache_dir=self.cache_dir)
            return self._standardize(loaded, source=str(files[0]))
        if "parquet" in formats:
            raise SeqlabError(f"split '{split}' mixes parquet with other formats: {', '.join(map(str, files))}")
        return self._checked(split, generate_dataset(
            _labelled_examples, _FEATURES, self.cache_dir, signature=self.source_signature(split, files),
            text_field=self.text_field, label_field=self.label_field, column_names=self._column_names,
        ))

    def read_predict_files(self, files: list[Path]) -> datasets.Dataset:
        """Plain text, one input per line; or TSV/CSV/JSONL with ``text_field`` (labels, if any, are ignored)."""
        if file_format(files[0]) in ("tsv", "csv", "json"):
            dataset = generate_dataset(
                _labelled_examples, _FEATURES, self.cache_dir, signature=self.source_signature("predict", files),
                text_field=self.text_field, label_field=None, column_names=self._column_names,
            )
        else:
            dataset = generate_dataset(_plain_lines, _FEATURES, self.cache_dir,
                                       signature=self.source_signature("predict", files))
        return self._checked("predict", dataset)

    def from_hub(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        return self._standardize(dataset, source=f"{self.path}[{split}]")

    def _standardize(self, dataset: datasets.Dataset, source: str) -> datasets.Dataset:
        """Rows with ``text_field``/``label_field`` -> the reader's columns; ClassLabel ids become their names."""
        for field in (self.text_field, self.label_field):
            if field not in dataset.column_names:
                raise SeqlabError(f"{source}: no field '{field}' (fields: {', '.join(dataset.column_names)}); "
                                  "set --data.text_field / --data.label_field")
        feature = dataset.features[self.label_field]
        names = feature.names if isinstance(feature, datasets.ClassLabel) else None
        if names and self.label_names is None:
            self.label_names = list(names)
        text_field, label_field = self.text_field, self.label_field

        def standardize(batch: dict, indices: list[int]) -> dict:
            out = {"text": [], "label": [], "source": [], "line": [], "error": []}
            for row, text, label in zip(indices, batch[text_field], batch[label_field]):
                at = f"{source}: row {row + 1}"
                text = (text or "").strip()
                label = "" if label is None else str(label).strip()
                error = "" if text else f"{at}: empty text"
                if not error and not label:
                    error = f"{at}: empty label"
                out["text"].append(text)
                out["label"].append(label)
                out["source"].append(at)
                out["line"].append(0)
                out["error"].append(error)
            return out

        standardized = dataset.map(standardize, batched=True, with_indices=True, remove_columns=dataset.column_names,
                                   features=_FEATURES, desc="standardizing")
        return self._checked(source, standardized)

    def _checked(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        """Fail on the first bad row, or (``skip_invalid``) drop the bad rows and log how many."""
        bad = [i for i, error in enumerate(dataset["error"]) if error]
        if not bad:
            return dataset
        first = dataset[bad[0]]["error"]
        if not self.skip_invalid:
            extra = f" (and {len(bad) - 1} more bad rows; --data.skip_invalid true skips them)" if len(bad) > 1 else ""
            raise SeqlabError(first + extra)
        rank_zero_warn(f"{split}: skipped {len(bad)} invalid rows of {len(dataset)} (first: {first})")
        keep = sorted(set(range(len(dataset))) - set(bad))
        return dataset.select(keep)

    # ----------------------------------------------------------------- vocabularies
    @property
    def vocabularies_ready(self) -> bool:
        return self.label_vocab is not None and self.text_encoder is not None

    def build_text_encoder(self) -> TextEncoder:
        if self.tokenizer:
            return SubwordEncoder.load(self.tokenizer)
        return WhitespaceEncoder(min_freq=self.min_freq, lowercase=self.lowercase)

    def fit_vocabularies(self, train: datasets.Dataset) -> None:
        label_names = self.label_names  # a hub ClassLabel sets them while train is read
        encoder = self.build_text_encoder()
        encoder.fit(text for split in dict.fromkeys(["train", *self.vocab_splits])
                    for text in (train if split == "train" else self.raw_split(split))["text"])
        if self.label_names is not None:
            label_names = self.label_names
        if label_names is None:
            found = set(train["label"])
            label_names = sorted(found, key=lambda x: (0, int(x), x) if x.lstrip("-").isdigit() else (1, 0, x))
        if len(label_names) < 2:
            raise SeqlabError(f"the training data of {self.path} has fewer than two labels ({label_names})")
        self.text_encoder = encoder
        self.label_vocab = Vocabulary(label_names, specials=())

    def state_dict(self) -> dict:
        if not self.vocabularies_ready:
            return {}
        return {"text_encoder": self.text_encoder.state_dict(), "labels": self.label_vocab.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            self.text_encoder = TextEncoder.from_state_dict(state_dict["text_encoder"])
            self.label_vocab = Vocabulary.from_state_dict(state_dict["labels"])

    # ----------------------------------------------------------------- encoding and batching
    def label_id(self, label: str) -> int:
        """The id of a raw label: its name, or (with ``label_names``) an integer index into the names. Raises
        KeyError for a label outside the set."""
        vocab = self.label_vocab
        if label in vocab.stoi:
            return vocab.stoi[label]
        if self.label_names is not None and label.lstrip("-").isdigit() and 0 <= int(label) < len(vocab):
            return int(label)
        raise KeyError(label)

    def encode(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        text_encoder, max_length, label_id = self.text_encoder, self.max_length, self.label_id
        labels = ", ".join(self.label_vocab.itos)
        integer_names = self.label_names is not None

        def encode_batch(batch: dict, indices: list[int]) -> dict:
            out = {"token_ids": [], "tokens": [], "label_id": [], "length": [], "index": [], "truncated": [],
                   "error": []}
            for index, text, label, source, line in zip(
                indices, batch["text"], batch["label"], batch["source"], batch["line"]
            ):
                tokens, ids = text_encoder.encode(text)
                error = "" if ids else f"{where(source, line)}: no tokens in the text"
                truncated = max_length is not None and len(ids) > max_length
                if truncated:
                    tokens, ids = tokens[:max_length], ids[:max_length]
                target = -1
                if label and not error:
                    try:
                        target = label_id(label)
                    except KeyError:
                        hint = f" (ids 0..{labels.count(',')} index them)" if integer_names else ""
                        error = f"{where(source, line)}: label '{label}' is not in the label set: {labels}{hint}"
                out["token_ids"].append(ids)
                out["tokens"].append(tokens)
                out["label_id"].append(target)
                out["length"].append(len(ids))
                out["index"].append(index)
                out["truncated"].append(truncated)
                out["error"].append(error)
            return out

        encoded = dataset.map(encode_batch, batched=True, with_indices=True, desc=f"encoding {split}")
        encoded = self._checked(split, encoded)
        truncated = int(np.sum(encoded["truncated"])) if len(encoded) else 0
        if truncated:
            rank_zero_info(f"{split}: truncated {truncated} of {len(encoded)} texts to max_length={max_length}")
        return encoded

    def collate(self, examples: list[dict]) -> SentenceBatch:
        batch, longest = len(examples), max(e["length"] for e in examples)
        token_ids = np.full((batch, longest), self.text_encoder.pad_index, dtype=np.int64)
        for row, example in enumerate(examples):
            token_ids[row, : example["length"]] = example["token_ids"]
        lengths = torch.tensor([e["length"] for e in examples])
        return SentenceBatch(
            token_ids=torch.from_numpy(token_ids),
            mask=torch.arange(longest).unsqueeze(0) < lengths.unsqueeze(1),
            lengths=lengths,
            label_ids=torch.tensor([e["label_id"] for e in examples]),
            index=torch.tensor([e["index"] for e in examples]),
            tokens=[e["tokens"] for e in examples],
        )


def _labelled_examples(signature, text_field, label_field, column_names):
    yield from read_labelled_rows([Path(entry[0]) for entry in signature], text_field, label_field, column_names)


def _plain_lines(signature):
    from seqlab.data_modules.readers import iter_lines_lenient

    for entry in signature:
        path = Path(entry[0])
        for number, line in iter_lines_lenient(path):
            row = {"text": "", "label": "", "source": str(path), "line": number, "error": ""}
            if isinstance(line, SeqlabError):
                row["error"] = str(line)
            elif not line.strip():
                row["error"] = f"{path}:{number}: empty text (every line must hold one input)"
            else:
                row["text"] = line.strip()
            yield row
