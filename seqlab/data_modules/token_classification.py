"""Token classification (NER) data: column files (CoNLL, TSV, CoNLL-U), JSONL/parquet with tokens and tags, or a hub
dataset -> word and character ids with one tag per token."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import datasets
import numpy as np
import torch

from seqlab import SeqlabError
from seqlab.data.readers import CoNLLUReader, ColumnReader, DocumentReader, JsonlReader, Reader, head_lines, is_parquet
from seqlab.data.rows import pad, rowwise
from seqlab.data.sampler import BucketBatchSampler, DocumentBatchSampler
from seqlab.data.token_rows import (RAW_TOKEN_FEATURES, TOKEN_FEATURES, auxiliary_batch, column_sentences, document_of,
                                    location, pool_key_ids, raw_sentence, raw_text_sentences, sentence_row, spans)
from seqlab.data.transformer import TRANSFORMER_COLUMNS, TransformerBatch
from seqlab.data_modules.base import linked
from seqlab.data_modules.words import WordVectorsData
from seqlab.encoders.pretokenizers import TreebankPreTokenizer
from seqlab.encoders.vocab import Vocabulary
from seqlab.tagging import label_order, scheme_tags, unknown_tag_message


class TokenBatch(TransformerBatch):
    """token_ids (B, T); char_ids (B, T, L), 0 = padding; mask (B, T) bool, True = real token; lengths (B,);
    tag_ids (B, T), 0 on padding; index (B,) example positions in their split; tokens: the words; text: the raw
    input (the tokens joined by spaces for pre-tokenized data); offsets: each token's (start, end) in text;
    documents (B,) each example's document, ``-1 - index`` for an example of none (each its own); pool_keys (B, T)
    an id per distinct ``pooling_key`` in the batch, -1 for tokens without one and on padding; with a
    ``transformer`` option, its keys (``TransformerBatch``); in training batches of data with
    ``auxiliary_columns``, auxiliary_tag_ids (B, A, T): each auxiliary column's tag ids, 0 on padding."""

    token_ids: torch.Tensor
    char_ids: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    tag_ids: torch.Tensor
    index: torch.Tensor
    tokens: list[list[str]]
    text: list[str]
    offsets: list[list[tuple[int, int]]]
    documents: torch.Tensor
    pool_keys: torch.Tensor


class TokenClassificationData(WordVectorsData):
    """Sentences with one tag per token.

    Local files: column files whatever their extension (``token_column``, ``tag_column``; document separators and
    comment lines skipped), CoNLL-U (``reader: {class_path: seqlab.data.readers.CoNLLUReader, init_args:
    {tag_field: MISC:NER}}``; recognised by content, UPOS by default), or JSONL/parquet rows with ``tokens_field``
    (list of strings) and ``tags_field`` (strings, or ClassLabel ids / ids with ``tag_names``). ``reader`` declares
    the column format instead of recognising it; ``seqlab.data.readers.DocumentReader`` joins the sentences of a
    document into examples of up to ``max_tokens`` tokens (document context for the encoder). ``tag_format`` is the
    input scheme (``iob1`` is converted to BIO; ``plain``: labels without a B-/I- structure, such as part-of-speech
    tags, kept as they are), ``tag_scheme`` the one trained (BIO or BIOES). Vocabularies come from ``vocab_splits``
    (default train only). ``vectors``, ``transformer`` and ``pre_tokenizer``: see ``WordVectorsData``. A tag in
    validation/test that train lacks is an error.

    ``auxiliary_columns`` (name -> column of a column file, e.g. ``{pos: 1, chunk: 2}`` for CoNLL-2003) reads more
    tags per token for a training-only objective (``TokenTagging``'s ``auxiliary_tagger``): labels as they are, one
    vocabulary per name fitted on train (``auxiliary_labels``), served in training batches only. Validation, test and
    prediction neither read nor need them.

    Training reads tokens from the files; ``pre_tokenizer`` splits the raw text given to ``predict``: by default
    ``TreebankPreTokenizer(ptb_quotes=False)``, CoNLL-2003's conventions (``China.`` -> ``China .``,
    ``Germany's`` -> ``Germany 's``, ``U.S.`` whole), which leaves already tokenized CoNLL text as it is (99.4 % of
    the training sentences unchanged). Checkpoints written before this default keep what they stored (whitespace).
    """

    default_pre_tokenizer = functools.partial(TreebankPreTokenizer, ptb_quotes=False)
    batch_columns = ("token_ids", "char_ids", "tag_ids", "length", "index", "tokens", "document")
    raw_columns = ("tokens", "tags", "source", "line", "auxiliary")
    # raw text to tag; a transformer's; the training split's auxiliary tags
    optional_columns = ("text", "starts", "ends", *TRANSFORMER_COLUMNS, "auxiliary_tag_ids")

    def __init__(
        self,
        path: str = "eriktks/conll2003",
        token_column: int = 0,
        tag_column: int = -1,
        tokens_field: str = "tokens",
        tags_field: str = "ner_tags",
        tag_names: Optional[list[str]] = None,
        tag_format: Literal["iob1", "iob2", "plain"] = "iob2",
        tag_scheme: Literal["BIO", "BIOES"] = "BIO",
        normalize_digits: bool = False,
        max_word_length: int = 30,
        auxiliary_columns: Optional[dict[str, int]] = None,
        **kwargs: Any,
    ) -> None:
        if max_word_length < 1:
            raise SeqlabError(f"--data.max_word_length must be at least 1 character, got {max_word_length}")
        super().__init__(path, **kwargs)
        for option, value, allowed in (("tag_format", tag_format, ("iob1", "iob2", "plain")),
                                       ("tag_scheme", tag_scheme, ("BIO", "BIOES"))):
            if value not in allowed:
                raise SeqlabError(f"--data.{option} must be {' or '.join(allowed)}, got {value!r}")
        if tag_format == "plain" and tag_scheme != "BIO":
            raise SeqlabError(f"--data.tag_scheme {tag_scheme} converts entity tags; plain labels (--data.tag_format "
                              "plain) have none")
        self.column_reader = ColumnReader(token_column, tag_column)
        self.auxiliary_columns = dict(auxiliary_columns or {})
        for name, column in self.auxiliary_columns.items():
            if not isinstance(column, int) or column in (token_column, tag_column):
                raise SeqlabError(f"--data.auxiliary_columns.{name} must be the number of a column other than the "
                                  f"token and tag columns ({token_column}, {tag_column}), got {column!r}")
        self.words: Optional[Vocabulary] = None
        self.chars: Optional[Vocabulary] = None
        self.tags: Optional[Vocabulary] = None
        self.auxiliary: dict[str, Vocabulary] = {}

    # ----------------------------------------------------------------- what the model is built from
    char_vocab_size = linked(lambda self: len(self.chars))
    characters = linked(lambda self: list(self.chars.itos), "The character vocabulary in id order (``CasingEmbedding``).")
    labels = linked(lambda self: list(self.tags.itos), "Tag names, O first.")
    auxiliary_labels = linked(lambda self: {name: list(tags.itos) for name, tags in self.auxiliary.items()},
                              "Each auxiliary column's tag names (``auxiliary_columns``).")

    # ----------------------------------------------------------------- reading
    row_features = TOKEN_FEATURES

    def formats(self) -> list[Reader]:
        return [CoNLLUReader(), self.column_reader]

    def row_reader(self, split: str, files: list[Path]) -> tuple[Callable[..., Any], dict]:
        reader = self.file_reader(split, files)
        auxiliary = split == "train" and self.auxiliary_columns
        if isinstance(reader, DocumentReader) and self.hparams.tag_format == "iob1":
            raise SeqlabError("--data.reader DocumentReader joins sentences, and in --data.tag_format iob1 an entity "
                              "that ends one sentence would run on into an I- tag that starts the next; give iob2 "
                              "files")
        if auxiliary and type(reader) not in (ColumnReader, DocumentReader):
            raise SeqlabError(f"--data.auxiliary_columns reads column files; {files[0]} is read by "
                              f"{type(reader).__name__}")
        if auxiliary:
            reader = copy.copy(reader)
            reader.extra_columns = tuple(self.auxiliary_columns.values())
        return column_sentences, {"signature": self.signature(files), "reader": reader, "split": split,
                                  "tag_format": self.hparams.tag_format, "tag_scheme": self.hparams.tag_scheme}

    def row_format(self, path: Path) -> Optional[str]:
        if is_parquet(path):
            return "parquet"
        return "json" if self.reader is None and JsonlReader().accepts(head_lines(path, 1) or [""]) else None

    def read_predict(self, path: Path) -> datasets.Dataset:
        """Raw text, one sentence per line, split into tokens by the pre-tokenizer (with character spans)."""
        return self.generated("predict", raw_text_sentences, RAW_TOKEN_FEATURES, signature=self.signature([path]),
                              pre_tokenizer=self.pre_tokenizer)

    def input_rows(self, inputs: list) -> datasets.Dataset:
        rows = [raw_sentence(str(text), self.pre_tokenizer, "input", number) for number, text in enumerate(inputs, 1)]
        return datasets.Dataset.from_list(rows, features=RAW_TOKEN_FEATURES)

    def standardize(self, split: str, dataset: datasets.Dataset, source: str) -> datasets.Dataset:
        """Rows with ``tokens_field``/``tags_field`` -> the reader columns, tag ids turned into strings."""
        if split == "train" and self.auxiliary_columns:
            raise SeqlabError(f"--data.auxiliary_columns reads column files; {source} has rows")
        self.require_columns(dataset, source, tokens_field=self.hparams.tokens_field, tags_field=self.hparams.tags_field)
        inner = getattr(dataset.features[self.hparams.tags_field], "feature", None)
        names = self.hparams.tag_names or (inner.names if isinstance(inner, datasets.ClassLabel) else None)
        tags_field, tokens_field = self.hparams.tags_field, self.hparams.tokens_field
        tag_format, tag_scheme = self.hparams.tag_format, self.hparams.tag_scheme

        def problem(tokens: list, tags: list) -> str:
            if not tokens:
                return "empty sentence"
            if len(tags) != len(tokens):
                return f"{len(tokens)} tokens but {len(tags)} tags"
            if tags and not isinstance(tags[0], str) and names is None:
                return "tags are ids but no tag names are known; pass --data.tag_names"
            if tags and not isinstance(tags[0], str) and not all(0 <= t < len(names) for t in tags):
                return f"tag id out of range for {len(names)} tag names"
            return ""

        def convert(row: int, tokens: list, tags: list) -> dict:
            where, error = f"{source}: row {row + 1}", problem(tokens or [], tags or [])
            if error:
                return sentence_row([], [], where, 0, f"{where}: {error}", tag_format, tag_scheme)
            # rows have no line numbers (line 0): locations name the row and token
            return sentence_row(list(tokens), [t if isinstance(t, str) else names[t] for t in tags], where, 0, "",
                                tag_format, tag_scheme)

        return self.map_rows(split, dataset, (tokens_field, tags_field), convert)

    # ----------------------------------------------------------------- encoders
    @property
    def encoders_ready(self) -> bool:
        return self.tags is not None

    def fit_encoders(self, train: datasets.Dataset) -> None:
        self.words = Vocabulary.fit(self.vocabulary_rows(train, "tokens"), min_freq=self.hparams.min_freq,
                                    lowercase=self.hparams.lowercase, normalize_digits=self.hparams.normalize_digits)
        self.chars = Vocabulary.fit(token for tokens in train["tokens"] for token in tokens)  # a token: its chars
        found = {t for tags in train["tags"] for t in tags}
        plain = self.hparams.tag_format == "plain"
        self.tags = Vocabulary(sorted(found) if plain else label_order(scheme_tags(found, self.hparams.tag_scheme)),
                               specials=())
        found_auxiliary = [set() for _ in self.auxiliary_columns]
        for sentence in train["auxiliary"] if self.auxiliary_columns else ():  # one pass: the split may stream
            for found_tags, tags in zip(found_auxiliary, sentence):
                found_tags.update(tags)
        self.auxiliary = {name: Vocabulary(sorted(found_tags), specials=())
                          for name, found_tags in zip(self.auxiliary_columns, found_auxiliary)}

    def encoder_state(self) -> dict:
        state = {"words": self.words.state_dict(), "chars": self.chars.state_dict(), "tags": self.tags.state_dict()}
        if self.auxiliary:
            state["auxiliary"] = {name: tags.state_dict() for name, tags in self.auxiliary.items()}
        return state

    def load_encoder_state(self, state_dict: dict) -> None:
        self.words = Vocabulary.from_state_dict(state_dict["words"])
        self.chars = Vocabulary.from_state_dict(state_dict["chars"])
        self.tags = Vocabulary.from_state_dict(state_dict["tags"])
        self.auxiliary = {name: Vocabulary.from_state_dict(tags)
                          for name, tags in state_dict.get("auxiliary", {}).items()}  # none before auxiliary_columns

    # ----------------------------------------------------------------- encoding and batching
    def batch_sampler(self, split: str, shuffle: bool) -> BucketBatchSampler:
        """Evaluation batches of a split whose sentences come in documents hold whole documents
        (``DocumentBatchSampler``), so that a ``DocumentEmissionPooling`` sees all of a document's sentences."""
        documents = self.encoded(split).columns.get("document")
        if shuffle or documents is None or not (np.asarray(documents, dtype=np.int64) >= 0).any():
            return super().batch_sampler(split, shuffle)
        return DocumentBatchSampler(self.encoded(split).columns["length"], documents,
                                    batch_size=self.eval_batch_size, seed=self.seed if self.seed is not None else 0)

    def batch_encoder(self, split: str) -> Callable[[dict, list[int]], dict]:
        words, chars, tags = self.words, self.chars, self.tags
        max_word_length, plain = self.hparams.max_word_length, self.hparams.tag_format == "plain"
        auxiliary = list(self.auxiliary.values()) if split == "train" else []

        def encode(index: int, tokens: list[str], tag_list: list[str], source: str, line: int,
                   auxiliary_tags: list[list[str]]) -> dict:
            if not tokens:
                raise SeqlabError(f"{location(source, line, 0)}: empty sentence")
            for offset, tag in enumerate(tag_list):
                if tag not in tags.stoi:
                    why = (f"tag '{tag}' does not occur in the training data" if plain
                           else unknown_tag_message(tag, tags.itos))
                    raise SeqlabError(f"{location(source, line, offset)}: {why}")
            encoded = {"token_ids": words.encode(tokens),
                       "char_ids": [chars.encode(token[:max_word_length]) for token in tokens],
                       "tag_ids": [tags.stoi[tag] for tag in tag_list], "length": len(tokens), "index": index}
            if auxiliary:  # fitted on these very rows: every tag is known
                encoded["auxiliary_tag_ids"] = [[vocabulary.stoi[tag] for tag in column]
                                                for vocabulary, column in zip(auxiliary, auxiliary_tags)]
            return encoded

        return rowwise(encode, self.raw_columns)

    def collate(self, examples: list[dict]) -> TokenBatch:
        token_ids = pad([e["token_ids"] for e in examples])  # (B, T)
        batch, longest = token_ids.shape
        widest = max(len(chars) for e in examples for chars in e["char_ids"])
        char_ids = np.zeros((batch, longest, widest), dtype=np.int64)  # (B, T, L)
        for row, example in enumerate(examples):
            for position, chars in enumerate(example["char_ids"]):
                char_ids[row, position, : len(chars)] = chars
        lengths = torch.tensor([e["length"] for e in examples])
        texts, offsets = zip(*(spans(e) for e in examples))
        return TokenBatch(
            token_ids=token_ids,
            char_ids=torch.from_numpy(char_ids),
            mask=torch.arange(longest).unsqueeze(0) < lengths.unsqueeze(1),
            lengths=lengths,
            tag_ids=pad([e["tag_ids"] for e in examples], width=longest),  # (B, T), 0 on padding and for predict
            index=torch.tensor([e["index"] for e in examples]),
            tokens=[e["tokens"] for e in examples],
            text=list(texts),
            offsets=list(offsets),
            documents=torch.tensor([document_of(e) for e in examples]),
            pool_keys=pool_key_ids([e["tokens"] for e in examples], longest),
            **self.transformer_batch(examples, longest),
            **auxiliary_batch(examples, longest),
        )
