"""Token classification (NER) data: CoNLL column files, JSONL/parquet with tokens and tags, or a hub dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, TypedDict, Union

import datasets
import numpy as np
import torch

from seqlab import SeqlabError
from seqlab.data_modules.base import SequenceDataModule, generate_dataset
from seqlab.data_modules.readers import convert_tags, read_conll, read_text_lines
from seqlab.data_modules.sources import file_format
from seqlab.data_modules.vocab import Vocabulary
from seqlab.tagging import split_tag

_FEATURES = datasets.Features(
    {
        "tokens": datasets.Sequence(datasets.Value("string")),
        "tags": datasets.Sequence(datasets.Value("string")),
        "source": datasets.Value("string"),
        "line": datasets.Value("int64"),
    }
)


class TokenBatch(TypedDict):
    """token_ids (B, T); char_ids (B, T, L), 0 = padding; mask (B, T) bool, True = real token; lengths (B,);
    tag_ids (B, T), 0 on padding; index (B,) example positions in their split; tokens: the words."""

    token_ids: torch.Tensor
    char_ids: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    tag_ids: torch.Tensor
    index: torch.Tensor
    tokens: list[list[str]]


def label_order(tags: set[str]) -> list[str]:
    """``O`` first, then by entity type and prefix (B, I, E, S): stable across runs and readable."""
    rank = {"B": 0, "I": 1, "E": 2, "S": 3}
    others = sorted((t for t in tags if t != "O"), key=lambda t: (split_tag(t)[1], rank[split_tag(t)[0]]))
    return ["O"] + others


def location(source: str, line: int, token: int) -> str:
    """``file:line`` of a token in a line-based file; ``file: row R, token K`` for row-based data (line 0)."""
    return f"{source}:{line + token}" if line > 0 else f"{source}, token {token + 1}"


def unknown_tag_message(tag: str, known: list[str]) -> str:
    """Name the entity type when the type itself is new (the tag may have been converted to BIOES)."""
    kind = split_tag(tag)[1]
    if kind and kind not in {split_tag(t)[1] for t in known}:
        return f"entity type '{kind}' does not occur in the training data (types: {' '.join(sorted({split_tag(t)[1] for t in known} - {''}))})"
    return f"tag '{tag}' does not occur in the training data (known: {' '.join(known)})"


class TokenClassificationData(SequenceDataModule):
    """Sentences with one tag per token.

    Local files: CoNLL columns (``token_column``, ``tag_column``; ``-DOCSTART-`` skipped), or JSONL/parquet rows with
    ``tokens_field`` (list of strings) and ``tags_field`` (strings, or ClassLabel ids / ids with ``tag_names``).
    ``tag_format`` is the input scheme (``iob1`` is converted to BIO), ``tag_scheme`` the one trained (BIO or BIOES).
    Vocabularies come from ``vocab_splits`` (default train only; adding validation/test words, never their tags, is
    the recipe of Lample et al. 2016 for pretrained embeddings). A tag in validation/test that train lacks is an error.
    """

    batch_columns = ("token_ids", "char_ids", "tag_ids", "length", "index", "tokens")

    def __init__(
        self,
        path: str = "eriktks/conll2003",
        name: Optional[str] = None,
        data_files: Optional[dict[str, Union[str, list[str]]]] = None,
        predict_path: Optional[str] = None,
        token_column: int = 0,
        tag_column: int = -1,
        tokens_field: str = "tokens",
        tags_field: str = "ner_tags",
        tag_names: Optional[list[str]] = None,
        tag_format: Literal["iob1", "iob2"] = "iob2",
        tag_scheme: Literal["BIO", "BIOES"] = "BIO",
        lowercase: bool = False,
        normalize_digits: bool = False,
        min_freq: int = 1,
        vocab_splits: list[str] = ["train"],
        max_word_length: int = 30,
        batch_size: int = 32,
        eval_batch_size: Optional[int] = None,
        max_tokens: Optional[int] = None,
        bucket_size: int = 100,
        num_workers: int = 0,
        seed: int = 0,
        cache_dir: Optional[str] = None,
    ) -> None:
        self.token_column = token_column
        self.tag_column = tag_column
        self.tokens_field = tokens_field
        self.tags_field = tags_field
        self.tag_names = tag_names
        self.tag_format = tag_format
        self.tag_scheme = tag_scheme
        self.lowercase = lowercase
        self.normalize_digits = normalize_digits
        self.min_freq = min_freq
        self.vocab_splits = list(vocab_splits)
        self.max_word_length = max_word_length
        self.words: Optional[Vocabulary] = None
        self.chars: Optional[Vocabulary] = None
        self.tags: Optional[Vocabulary] = None
        super().__init__(
            path, name, data_files, predict_path, batch_size, eval_batch_size, max_tokens, bucket_size,
            num_workers, seed, cache_dir,
        )
        self.save_hyperparameters()

    # ----------------------------------------------------------------- sizes linked into the model
    @property
    def vocab_size(self) -> int:
        self.prepare_vocabularies()
        return len(self.words)

    @property
    def char_vocab_size(self) -> int:
        self.prepare_vocabularies()
        return len(self.chars)

    @property
    def padding_idx(self) -> int:
        self.prepare_vocabularies()
        return self.words.pad_index

    @property
    def labels(self) -> list[str]:
        self.prepare_vocabularies()
        return list(self.tags.itos)

    # ----------------------------------------------------------------- reading
    def read_files(self, split: str, files: list[Path]) -> datasets.Dataset:
        formats = {file_format(f) for f in files}
        if len(formats) > 1:
            raise SeqlabError(f"split '{split}' mixes file formats: {', '.join(map(str, files))}")
        if formats == {"conll"}:
            return generate_dataset(
                _conll_examples, _FEATURES, self.cache_dir,
                signature=self.source_signature(split, files),
                token_column=self.token_column, tag_column=self.tag_column,
                tag_format=self.tag_format, tag_scheme=self.tag_scheme,
            )
        fmt = formats.pop()
        if fmt not in ("json", "parquet"):
            raise SeqlabError(f"{files[0]}: token classification reads CoNLL, JSONL or parquet, not {fmt}")
        loaded = datasets.load_dataset(fmt, data_files=[str(f) for f in files], split="train",
                                       cache_dir=self.cache_dir)
        return self._standardize(loaded, source=str(files[0]))

    def read_predict_files(self, files: list[Path]) -> datasets.Dataset:
        return generate_dataset(_text_examples, _FEATURES, self.cache_dir,
                                signature=self.source_signature("predict", files))

    def from_hub(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        return self._standardize(dataset, source=f"{self.path}[{split}]")

    def _standardize(self, dataset: datasets.Dataset, source: str) -> datasets.Dataset:
        """Rows with ``tokens_field``/``tags_field`` -> the reader columns, tag ids turned into strings."""
        for field in (self.tokens_field, self.tags_field):
            if field not in dataset.column_names:
                raise SeqlabError(f"{source}: no field '{field}' (fields: {', '.join(dataset.column_names)}); "
                                  "set --data.tokens_field / --data.tags_field")
        feature = dataset.features[self.tags_field]
        inner = getattr(feature, "feature", None)
        names = self.tag_names or (inner.names if isinstance(inner, datasets.ClassLabel) else None)
        tags_field, tokens_field = self.tags_field, self.tokens_field
        tag_format, tag_scheme = self.tag_format, self.tag_scheme

        def standardize(batch: dict, indices: list[int]) -> dict:
            out = {"tokens": [], "tags": [], "source": [], "line": []}
            for row, tokens, tags in zip(indices, batch[tokens_field], batch[tags_field]):
                where = f"{source}: row {row + 1}"
                if not tokens:
                    raise SeqlabError(f"{where}: empty sentence")
                if len(tags) != len(tokens):
                    raise SeqlabError(f"{where}: {len(tokens)} tokens but {len(tags)} tags")
                if tags and not isinstance(tags[0], str):
                    if names is None:
                        raise SeqlabError(f"{where}: tags are ids but no tag names are known; pass --data.tag_names")
                    try:
                        tags = [names[t] for t in tags]
                    except IndexError:
                        raise SeqlabError(f"{where}: tag id out of range for {len(names)} tag names") from None
                try:
                    tags = convert_tags(list(tags), tag_format, tag_scheme)
                except ValueError as error:
                    raise SeqlabError(f"{where}: {error}") from None
                out["tokens"].append(list(tokens))
                out["tags"].append(tags)
                out["source"].append(f"{source}: row {row + 1}")
                out["line"].append(0)  # rows have no line numbers: locations name the row and token
            return out

        return dataset.map(standardize, batched=True, with_indices=True, remove_columns=dataset.column_names,
                           features=_FEATURES, desc="standardizing")

    # ----------------------------------------------------------------- vocabularies
    @property
    def vocabularies_ready(self) -> bool:
        return self.tags is not None

    def fit_vocabularies(self, train: datasets.Dataset) -> None:
        word_sources = [train["tokens"]] + [self.raw_split(s)["tokens"] for s in self.vocab_splits if s != "train"]
        self.words = Vocabulary.fit(
            (tokens for source in word_sources for tokens in source),
            min_freq=self.min_freq, lowercase=self.lowercase, normalize_digits=self.normalize_digits,
        )
        self.chars = Vocabulary.fit(token for tokens in train["tokens"] for token in tokens)  # each token: a char sequence
        self.tags = Vocabulary(label_order({t for tags in train["tags"] for t in tags}), specials=())

    def state_dict(self) -> dict:
        if not self.vocabularies_ready:
            return {}
        return {"words": self.words.state_dict(), "chars": self.chars.state_dict(), "tags": self.tags.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            self.words = Vocabulary.from_state_dict(state_dict["words"])
            self.chars = Vocabulary.from_state_dict(state_dict["chars"])
            self.tags = Vocabulary.from_state_dict(state_dict["tags"])

    # ----------------------------------------------------------------- encoding and batching
    def encode(self, split: str, dataset: datasets.Dataset) -> datasets.Dataset:
        words, chars, tags = self.words, self.chars, self.tags
        max_word_length = self.max_word_length

        def encode_batch(batch: dict, indices: list[int]) -> dict:
            out = {"token_ids": [], "char_ids": [], "tag_ids": [], "length": [], "index": []}
            for index, tokens, tag_list, source, line in zip(
                indices, batch["tokens"], batch["tags"], batch["source"], batch["line"]
            ):
                if not tokens:
                    raise SeqlabError(f"{location(source, line, 0)}: empty sentence")
                out["token_ids"].append(words.encode(tokens))
                out["char_ids"].append([chars.encode(token[:max_word_length]) for token in tokens])
                tag_ids = []
                for offset, tag in enumerate(tag_list):
                    if tag not in tags.stoi:
                        raise SeqlabError(f"{location(source, line, offset)}: {unknown_tag_message(tag, tags.itos)}")
                    tag_ids.append(tags.stoi[tag])
                out["tag_ids"].append(tag_ids)
                out["length"].append(len(tokens))
                out["index"].append(index)
            return out

        return dataset.map(encode_batch, batched=True, with_indices=True, desc=f"encoding {split}")

    def collate(self, examples: list[dict]) -> TokenBatch:
        batch, longest = len(examples), max(e["length"] for e in examples)
        widest = max(len(chars) for e in examples for chars in e["char_ids"])
        token_ids = np.zeros((batch, longest), dtype=np.int64)
        tag_ids = np.zeros((batch, longest), dtype=np.int64)
        char_ids = np.zeros((batch, longest, widest), dtype=np.int64)
        for row, example in enumerate(examples):
            length = example["length"]
            token_ids[row, :length] = example["token_ids"]
            if example["tag_ids"]:
                tag_ids[row, :length] = example["tag_ids"]
            for position, chars in enumerate(example["char_ids"]):
                char_ids[row, position, : len(chars)] = chars
        lengths = torch.tensor([e["length"] for e in examples])
        return TokenBatch(
            token_ids=torch.from_numpy(token_ids),
            char_ids=torch.from_numpy(char_ids),
            mask=torch.arange(longest).unsqueeze(0) < lengths.unsqueeze(1),
            lengths=lengths,
            tag_ids=torch.from_numpy(tag_ids),
            index=torch.tensor([e["index"] for e in examples]),
            tokens=[e["tokens"] for e in examples],
        )


def _conll_examples(signature, token_column, tag_column, tag_format, tag_scheme):
    yield from read_conll([Path(entry[0]) for entry in signature], token_column, tag_column, tag_format, tag_scheme)


def _text_examples(signature):
    yield from read_text_lines([Path(entry[0]) for entry in signature])
