"""Readers from files to examples, each example keeping its file and line so errors can name them."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from seqlab import SeqlabError
from seqlab.data_modules.sources import iter_lines
from seqlab.tagging import bio_to_bioes, iob1_to_bio, split_tag


def read_conll(
    paths: list[Path],
    token_column: int = 0,
    tag_column: int = -1,
    tag_format: str = "iob2",
    tag_scheme: str = "BIO",
    labelled: bool = True,
) -> Iterator[dict]:
    """Sentences from CoNLL column files: one token per line, blank lines between sentences, ``-DOCSTART-`` lines
    skipped. Every line of a file must have the same number of columns. Yields
    ``{"tokens", "tags", "source", "line"}`` (``line`` = 1-based line of the first token)."""
    for path in paths:
        tokens: list[str] = []
        tags: list[str] = []
        first_line = 0
        columns = None
        for number, line in iter_lines(path):
            fields = line.split()
            if not fields:
                if tokens:
                    yield _sentence(tokens, tags, path, first_line, tag_format, tag_scheme, labelled)
                    tokens, tags = [], []
                continue
            if fields[0] == "-DOCSTART-":
                continue
            if columns is None:
                columns = len(fields)
                _check_columns(path, number, columns, token_column, tag_column if labelled else None)
            elif len(fields) != columns:
                raise SeqlabError(
                    f"{path}:{number}: expected {columns} columns as in the file's first line, "
                    f"found {len(fields)}: {line[:80]!r}"
                )
            if not tokens:
                first_line = number
            tokens.append(fields[token_column])
            if labelled:
                tags.append(fields[tag_column])
        if tokens:
            yield _sentence(tokens, tags, path, first_line, tag_format, tag_scheme, labelled)


def _check_columns(path: Path, number: int, columns: int, token_column: int, tag_column) -> None:
    for name, index in (("token_column", token_column), ("tag_column", tag_column)):
        if index is not None and not -columns <= index < columns:
            raise SeqlabError(f"{path}:{number}: {name}={index} but the line has {columns} columns")


def _sentence(tokens, tags, path: Path, line: int, tag_format: str, tag_scheme: str, labelled: bool) -> dict:
    if labelled:
        for offset, tag in enumerate(tags):
            try:
                split_tag(tag)
            except ValueError as error:
                raise SeqlabError(f"{path}:{line + offset}: {error}") from None
        tags = convert_tags(tags, tag_format, tag_scheme)
    return {"tokens": tokens, "tags": tags, "source": str(path), "line": line}


def convert_tags(tags: list[str], tag_format: str, tag_scheme: str) -> list[str]:
    """Input ``tag_format`` (``iob1`` or ``iob2``) to the output ``tag_scheme`` (``BIO`` or ``BIOES``)."""
    for tag in tags:
        split_tag(tag)  # raises ValueError on a malformed tag, whatever the conversion
    if tag_format == "iob1":
        tags = iob1_to_bio(tags)
    elif tag_format != "iob2":
        raise SeqlabError(f"tag_format must be 'iob1' or 'iob2', got {tag_format!r}")
    if tag_scheme == "BIOES":
        tags = bio_to_bioes(tags)
    elif tag_scheme != "BIO":
        raise SeqlabError(f"tag_scheme must be 'BIO' or 'BIOES', got {tag_scheme!r}")
    return tags


def read_text_lines(paths: list[Path]) -> Iterator[dict]:
    """Unlabelled whitespace-tokenised sentences, one per line (for ``predict``). An empty line is an error."""
    for path in paths:
        for number, line in iter_lines(path):
            tokens = line.split()
            if not tokens:
                raise SeqlabError(f"{path}:{number}: empty sentence (every line must hold one sentence)")
            yield {"tokens": tokens, "tags": [], "source": str(path), "line": number}
