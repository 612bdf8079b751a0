"""Text classification (sentiment) data: CSV/TSV, JSONL, parquet or SST tree files with a text and a label, or a
hub dataset -> token ids and one label per text."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import datasets
import numpy as np
import torch
from pytorch_lightning.utilities import rank_zero_info

from seqlab import SeqlabError
from seqlab.data.readers import (DelimitedReader, JsonlReader, LinesReader, Reader, SSTTreeReader,
                                         choose_reader, is_parquet)
from seqlab.data.rows import pad, rowwise
from seqlab.data.transformer import TRANSFORMER_COLUMNS, TransformerBatch, TransformerInputs
from seqlab.data_modules.base import linked
from seqlab.data_modules.words import WordVectorsData
from seqlab.encoders.pretokenizers import PreTokenizer, TreebankPreTokenizer
from seqlab.encoders.text import SubwordEncoder, TextEncoder, WhitespaceEncoder
from seqlab.encoders.vocab import Vocabulary

_FEATURES = datasets.Features({
    "text": datasets.Value("string"),
    "label": datasets.Value("string"),
    "source": datasets.Value("string"),
    "line": datasets.Value("int64"),
    "error": datasets.Value("string"),
})


class SentenceBatch(TransformerBatch):
    """token_ids (B, T), padding = padding_idx; mask (B, T) bool, True = real token; lengths (B,); label_ids (B,),
    -1 for unlabelled (predict) input; index (B,) example positions in their split; tokens: the tokens read; with a
    ``transformer`` option, its keys (``TransformerBatch``)."""

    token_ids: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    label_ids: torch.Tensor
    index: torch.Tensor
    tokens: list[list[str]]


def where(source: str, line: int) -> str:
    """``file:line`` for line-based files, ``file: row R`` for row-based data (line 0, the row in ``source``)."""
    return f"{source}:{line}" if line > 0 else source


def labelled_text(fields: dict, at: str, text_field: str, label_field: Optional[str]) -> tuple[str, str, str]:
    """(text, label, error) of one row's fields; labels as strings (``1`` and ``"1"`` read the same)."""
    for field in (text_field, label_field):
        if field is not None and fields.get(field) is None:
            present = ", ".join(k for k, v in fields.items() if v is not None)
            return "", "", f"{at}: no field '{field}' (fields: {present})"
    text = str(fields[text_field]).strip()
    label = fields.get(label_field, "") if label_field is not None else ""
    label = str(int(label)) if isinstance(label, bool) else str(label).strip()
    if not text:
        return "", "", f"{at}: empty text"
    if label_field is not None and not label:
        return "", "", f"{at}: empty label"
    return text, label, ""


def _texts(signature: tuple, reader: Reader, split: str, text_field: str, label_field: Optional[str]):
    for path, *_ in signature:
        for row in reader.rows(Path(path), split):
            at = f"{row['source']}:{row['line']}"
            text, label, error = ("", "", row["error"]) if row["error"] else labelled_text(
                row["fields"], at, text_field, label_field)
            yield {"text": text, "label": label, "source": row["source"], "line": row["line"], "error": error}


def label_index(label: str, stoi: dict[str, int], by_index: bool) -> int:
    """The id of a raw label: its name in ``stoi``, or (``by_index``: the label names were given) an integer index
    into the names. Raises KeyError for a label outside the set."""
    if label in stoi:
        return stoi[label]
    if by_index and label.lstrip("-").isdigit() and 0 <= int(label) < len(stoi):
        return int(label)
    raise KeyError(label)


class TextClassificationData(WordVectorsData):
    """One label per text.

    Local files, recognised by content: CSV/TSV with a header line (or ``column_names``; quoted CSV fields may span
    lines), JSONL, parquet, or SST trees (the root's label; ``SSTTreeReader(train_phrases=true)`` adds every labelled
    phrase of train), with ``text_field`` and ``label_field``; hub datasets (``nyu-mll/glue`` with ``name: sst2``,
    ``stanfordnlp/imdb``) the same. ``reader`` declares the format instead. Labels are integers or strings.
    ``label_names`` fixes the label set and its order (integer labels index into it, e.g. ``[negative, positive]``
    for SST-2's 0/1); otherwise the set is read from train (a hub ClassLabel keeps its names). A label in
    validation/test outside the set is an error naming the file and line.

    Tokens: whitespace words looked up in a vocabulary fitted on ``vocab_splits`` (default train), with ``min_freq``
    and ``lowercase``; or ``tokenizer``, a ``tokenizers`` JSON file or a transformers model name/directory.
    ``pre_tokenizer`` splits the texts into words, at training and for ``predict``: by default
    ``TreebankPreTokenizer()`` (PTB conventions, as SST is tokenized: ``great!`` -> ``great !``, ``it's`` ->
    ``it 's``; already tokenized text stays as it is); SST-2's configs add ``lowercase: true``, as GLUE's SST-2 and
    GloVe 6B are lower-cased. Checkpoints written before this default keep what they stored (whitespace).
    ``vectors`` and ``transformer``: see ``WordVectorsData``. ``max_length`` truncates longer texts (the number
    truncated is logged per split).
    """

    default_pre_tokenizer = TreebankPreTokenizer

    batch_columns = ("token_ids", "label_id", "length", "index", "tokens")
    raw_columns = ("text", "label", "source", "line")
    optional_columns = TRANSFORMER_COLUMNS
    renamed_options = {"skip_invalid": ("on_bad_row", lambda skip: "skip" if skip else "error")}

    def __init__(
        self,
        path: str = "nyu-mll/glue",
        name: Optional[str] = "sst2",
        text_field: str = "sentence",
        label_field: str = "label",
        column_names: Optional[list[str]] = None,
        label_names: Optional[list[str]] = None,
        tokenizer: Optional[str] = None,
        pre_tokenizer: Optional[PreTokenizer] = None,
        max_length: Optional[int] = None,
        transformer: Optional[TransformerInputs] = None,
        **kwargs: Any,
    ) -> None:
        if pre_tokenizer is not None and tokenizer:
            raise SeqlabError("--data.pre_tokenizer splits words for the word vocabulary; a sub-word --data.tokenizer "
                              "splits the text itself: give one of them")
        if transformer is not None and tokenizer:
            raise SeqlabError("--data.transformer computes word vectors over words; a sub-word --data.tokenizer "
                              "splits the text itself: give one of them")
        if max_length is not None and max_length < 1:
            raise SeqlabError(f"--data.max_length must be at least 1 token (or null: no limit), got {max_length}")
        super().__init__(path, pre_tokenizer=pre_tokenizer, transformer=transformer, name=name, **kwargs)
        self.class_label_names: Optional[list[str]] = None  # a hub ClassLabel's, read with train
        self.text_encoder: Optional[TextEncoder] = None
        self.label_vocab: Optional[Vocabulary] = None

    # ----------------------------------------------------------------- what the model is built from
    vocab_size = linked(lambda self: self.text_encoder.vocab_size)
    padding_idx = linked(lambda self: self.text_encoder.pad_index)
    labels = linked(lambda self: list(self.label_vocab.itos), "Label names, in id order.")

    @property
    def words(self) -> Optional[Vocabulary]:
        """The word vocabulary (whitespace tokens), which pretrained word vectors initialise; None for subwords."""
        return self.text_encoder.words if self.text_encoder is not None else None

    @words.setter
    def words(self, words: Vocabulary) -> None:
        """Encode with ``words`` from now on (a multi-task model's one vocabulary, which extends this module's)."""
        if not isinstance(self.text_encoder, WhitespaceEncoder):
            raise SeqlabError("--data.tokenizer: a sub-word tokenizer has no word vocabulary to share with other "
                              "tasks; leave it out to read whitespace words")
        self.text_encoder.vocabulary = words

    # ----------------------------------------------------------------- reading
    row_features = _FEATURES

    def formats(self) -> list[Reader]:
        return [JsonlReader(), SSTTreeReader(), DelimitedReader(column_names=self.hparams.column_names)]

    def row_format(self, path: Path) -> Optional[str]:
        return "parquet" if is_parquet(path) else None

    def row_reader(self, split: str, files: list[Path]) -> tuple[Callable[..., Any], dict]:
        return _texts, {"signature": self.signature(files), "reader": self.file_reader(split, files), "split": split,
                        "text_field": self.hparams.text_field, "label_field": self.hparams.label_field}

    def read_predict(self, path: Path) -> datasets.Dataset:
        """Plain text, one input per line; JSONL rows, or a ``.tsv``/``.csv`` table, with ``text_field`` (labels, if
        any, are ignored)."""
        if path.name.lower().endswith((".tsv", ".csv", ".tsv.gz", ".csv.gz")):
            reader: Reader = DelimitedReader(column_names=self.hparams.column_names)
        else:
            reader = choose_reader(path, [JsonlReader(), LinesReader()])
        text_field = "text" if isinstance(reader, LinesReader) else self.hparams.text_field
        return self.generated("predict", _texts, signature=self.signature([path]), reader=reader, split="predict",
                              text_field=text_field, label_field=None)

    def input_rows(self, inputs: list) -> datasets.Dataset:
        rows = [{"text": str(text).strip(), "label": "", "source": "input", "line": number, "error": ""
                 if str(text).strip() else f"input {number}: empty text"} for number, text in enumerate(inputs, 1)]
        return datasets.Dataset.from_list(rows, features=_FEATURES)

    def standardize(self, split: str, dataset: datasets.Dataset, source: str) -> datasets.Dataset:
        """Rows with ``text_field``/``label_field`` -> the reader's columns; ClassLabel ids become their names."""
        self.require_columns(dataset, source, text_field=self.hparams.text_field, label_field=self.hparams.label_field)
        feature = dataset.features[self.hparams.label_field]
        if isinstance(feature, datasets.ClassLabel):
            self.class_label_names = list(feature.names)
        text_field, label_field = self.hparams.text_field, self.hparams.label_field

        def convert(row: int, text: Optional[str], label) -> dict:
            at = f"{source}: row {row + 1}"
            text, label, error = labelled_text({text_field: text or "", label_field: label}, at, text_field, label_field)
            return {"text": text, "label": label, "source": at, "line": 0, "error": error}

        return self.map_rows(split, dataset, (text_field, label_field), convert)

    # ----------------------------------------------------------------- encoders
    @property
    def encoders_ready(self) -> bool:
        return self.label_vocab is not None and self.text_encoder is not None

    def fit_encoders(self, train: datasets.Dataset) -> None:
        encoder = SubwordEncoder.load(self.hparams.tokenizer) if self.hparams.tokenizer else WhitespaceEncoder(
            min_freq=self.hparams.min_freq, lowercase=self.hparams.lowercase)
        encoder.fit(" ".join(self.pre_tokenizer.words(text)) for text in self.vocabulary_rows(train, "text"))
        label_names = self.hparams.label_names or self.class_label_names
        if label_names is None:
            found = set(train["label"])
            label_names = sorted(found, key=lambda x: (0, int(x), x) if x.lstrip("-").isdigit() else (1, 0, x))
        if len(label_names) < 2:
            raise SeqlabError(f"the training data of {self.path} has fewer than two labels ({label_names})")
        self.text_encoder = encoder
        self.label_vocab = Vocabulary(label_names, specials=())

    def encoder_state(self) -> dict:
        return {"text_encoder": self.text_encoder.state_dict(), "labels": self.label_vocab.state_dict()}

    def load_encoder_state(self, state_dict: dict) -> None:
        self.text_encoder = TextEncoder.from_state_dict(state_dict["text_encoder"])
        self.label_vocab = Vocabulary.from_state_dict(state_dict["labels"])

    # ----------------------------------------------------------------- encoding and batching
    def batch_encoder(self, split: str) -> Callable[[dict, list[int]], dict]:
        # the closure holds plain values, never the module: datasets fingerprints it by pickling (a module holding a
        # loaded transformer cannot be pickled, and the cache would be missed on every run)
        text_encoder, max_length = self.text_encoder, self.hparams.max_length
        stoi, by_index = dict(self.label_vocab.stoi), bool(self.hparams.label_names)
        pre_tokenizer = self.pre_tokenizer if isinstance(text_encoder, WhitespaceEncoder) else None  # sub-words: raw
        labels = ", ".join(self.label_vocab.itos)
        hint = f" (ids 0..{len(self.label_vocab) - 1} index them)" if self.hparams.label_names else ""

        def encode(index: int, text: str, label: str, source: str, line: int) -> dict:
            tokens, ids = text_encoder.encode(" ".join(pre_tokenizer.words(text)) if pre_tokenizer else text)
            error = "" if ids else f"{where(source, line)}: no tokens in the text"
            target = -1
            if label and not error:
                try:
                    target = label_index(label, stoi, by_index)
                except KeyError:
                    error = f"{where(source, line)}: label '{label}' is not in the label set: {labels}{hint}"
            return {"token_ids": ids[:max_length], "tokens": tokens[:max_length], "label_id": target,
                    "length": len(ids[:max_length]), "index": index, "error": error,
                    "truncated": max_length is not None and len(ids) > max_length}

        return rowwise(encode, self.raw_columns)

    def encode(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        encoded = super().encode(split, dataset)
        truncated = int(np.sum(encoded["truncated"]))
        if truncated:
            rank_zero_info(f"{split}: truncated {truncated} of {len(encoded)} texts to "
                           f"max_length={self.hparams.max_length}")
        return encoded

    def collate(self, examples: list[dict]) -> SentenceBatch:
        token_ids = pad([e["token_ids"] for e in examples], self.text_encoder.pad_index)  # (B, T)
        lengths, longest = torch.tensor([e["length"] for e in examples]), token_ids.shape[1]
        return SentenceBatch(
            token_ids=token_ids,
            mask=torch.arange(longest).unsqueeze(0) < lengths.unsqueeze(1),
            lengths=lengths,
            label_ids=torch.tensor([e["label_id"] for e in examples]),
            index=torch.tensor([e["index"] for e in examples]),
            tokens=[e["tokens"] for e in examples],
            **self.transformer_batch(examples, longest),
        )
