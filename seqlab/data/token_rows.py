"""The sentences of token classification as ``datasets`` rows (from column files, rows or raw text, with their file,
line and document), and the parts of a batch computed from their tokens: character spans, document ids and the
keys of ``DocumentEmissionPooling``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import datasets
import torch

from seqlab.data.readers import LinesReader, Reader
from seqlab.data.rows import pad
from seqlab.encoders.pretokenizers import PreTokenizer
from seqlab.tagging import convert_tags, first_malformed

TOKEN_FEATURES = datasets.Features({
    "tokens": datasets.Sequence(datasets.Value("string")),
    "tags": datasets.Sequence(datasets.Value("string")),
    "source": datasets.Value("string"),
    "line": datasets.Value("int64"),
    "error": datasets.Value("string"),
    "auxiliary": datasets.Sequence(datasets.Sequence(datasets.Value("string"))),  # per auxiliary column, its tags
    "document": datasets.Value("int64"),  # the sentence's document in its file; -1: none (rows, raw text)
})
#: raw text to tag (predict): the text and each token's character span in it
RAW_TOKEN_FEATURES = datasets.Features({**TOKEN_FEATURES, "text": datasets.Value("string"),
                                       "starts": datasets.Sequence(datasets.Value("int64")),
                                       "ends": datasets.Sequence(datasets.Value("int64"))})


def location(source: str, line: int, token: int) -> str:
    """``file:line`` of a token in a line-based file; ``file: row R, token K`` for row-based data (line 0)."""
    return f"{source}:{line + token}" if line > 0 else f"{source}, token {token + 1}"


def sentence_row(tokens: list[str], tags: list[str], source: str, line: int, error: str, tag_format: str,
                 tag_scheme: str, auxiliary: Sequence[list[str]] = (), document: int = -1) -> dict:
    """A sentence with its tags converted from ``tag_format`` to ``tag_scheme`` (``plain`` labels, such as
    part-of-speech tags, as they are), its ``auxiliary`` tag lists as they are, and its ``document`` (-1: none); a
    malformed tag makes it a bad row (its ``error``)."""
    malformed = None if error or tag_format == "plain" else first_malformed(tags)
    if malformed is not None:
        error = f"{location(source, line, malformed[0])}: {malformed[1]}"
    elif not error and tag_format != "plain":
        tags = convert_tags(tags, tag_format, tag_scheme)
    return {"tokens": tokens, "tags": list(tags), "source": source, "line": line, "error": error,
            "auxiliary": [list(column) for column in auxiliary], "document": document}


def column_sentences(signature: tuple, reader: Reader, split: str, tag_format: str, tag_scheme: str):
    """The sentences of the files, with the reader's extra columns as auxiliary tags and their documents numbered
    across the files (-1 for sentences before a file's first document separator: in none)."""
    documents_before = 0
    for path, *_ in signature:
        last = 0
        for row in reader.rows(Path(path), split):
            last = row.get("document", 0)
            document = documents_before + last - 1 if last > 0 else -1
            yield sentence_row(row["tokens"], row["tags"], row["source"], row["line"], row["error"], tag_format,
                               tag_scheme, row.get("extra", ()), document)
        documents_before += last


def raw_sentence(text: str, pre_tokenizer: PreTokenizer, source: str, line: int) -> dict:
    """A raw text to tag: its tokens and their character spans (``pre_tokenizer``)."""
    tokens = pre_tokenizer.tokenize(text)
    return {"tokens": [t.text for t in tokens], "tags": [], "auxiliary": [], "source": source, "line": line,
            "document": -1, "text": text, "starts": [t.start for t in tokens], "ends": [t.end for t in tokens],
            "error": "" if tokens else f"{source}:{line}: empty sentence"}


def raw_text_sentences(signature: tuple, pre_tokenizer: PreTokenizer):
    """The raw texts of the files, one per line."""
    for path, *_ in signature:
        for row in LinesReader().rows(Path(path)):
            sentence = raw_sentence(row["fields"].get("text", ""), pre_tokenizer, row["source"], row["line"])
            yield {**sentence, "error": row["error"] or sentence["error"]}


def document_of(example: dict) -> int:
    """The example's document; ``-1 - index`` for an example of none, so that it is a document of its own."""
    document = example.get("document", -1)
    return document if document >= 0 else -1 - example["index"]


def pool_key_ids(tokens: list[list[str]], longest: int) -> torch.Tensor:
    """(B, T) long: the same id for tokens of the same ``pooling_key`` in the batch, -1 for none and on padding."""
    ids: dict[str, int] = {}
    keys = torch.full((len(tokens), longest), -1, dtype=torch.long)
    for row, sentence in enumerate(tokens):
        for position, token in enumerate(sentence):
            key = pooling_key(token)
            if key is not None:
                keys[row, position] = ids.setdefault(key, len(ids))
    return keys


def auxiliary_batch(examples: list[dict], longest: int) -> dict:
    """``auxiliary_tag_ids`` (B, A, T), 0 on padding, where the examples have auxiliary tags; else nothing."""
    if "auxiliary_tag_ids" not in examples[0]:
        return {}
    return {"auxiliary_tag_ids": torch.stack([pad(e["auxiliary_tag_ids"], width=longest) for e in examples])}


def spans(example: dict) -> tuple[str, list[tuple[int, int]]]:
    """(text, each token's (start, end) in it): the raw input's, or the tokens joined by single spaces."""
    if example.get("starts") is not None:
        return example["text"], list(zip(example["starts"], example["ends"]))
    offsets, start = [], 0
    for token in example["tokens"]:
        offsets.append((start, start + len(token)))
        start += len(token) + 1
    return " ".join(example["tokens"]), offsets


def pooling_key(token: str) -> Optional[str]:
    """What makes two tokens the same word for document pooling: the lower-cased form of a token that starts with an
    upper-case letter (``Essex``, ``ESSEX``); None for the others, which pooling leaves alone (``the``, ``1996``)."""
    return token.lower() if token[:1].isupper() else None
