"""Readers from files to examples, each example keeping its file and line so errors can name them."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Iterator, Optional, Union

from seqlab import SeqlabError
from seqlab.data_modules.sources import file_format, iter_lines
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


def iter_lines_lenient(path: Path) -> Iterator[tuple[int, Union[str, SeqlabError]]]:
    """Like ``iter_lines`` but an undecodable line becomes a SeqlabError in its place instead of ending the file,
    so a reader asked to skip bad rows can skip it and go on."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                yield number, SeqlabError(f"{path}:{number}: invalid UTF-8 (byte {error.start} of the line)")


def read_labelled_rows(
    paths: list[Path],
    text_field: str,
    label_field: Optional[str],
    column_names: Optional[list[str]] = None,
) -> Iterator[dict]:
    """Rows of TSV/CSV (header line unless ``column_names`` are given) or JSONL files as
    ``{"text", "label", "source", "line", "error"}``; ``label_field=None`` reads unlabelled text.

    A bad row (invalid UTF-8, invalid JSON, a missing field, an empty text) is yielded with ``error`` set to a
    message naming its file and line, and ``text``/``label`` empty: the data module decides whether to fail or to
    skip it (and count it). Labels are kept as strings (``1`` and ``"1"`` read the same)."""
    for path in paths:
        fmt = file_format(path)
        if fmt in ("tsv", "csv"):
            rows = _delimited_rows(path, "\t" if fmt == "tsv" else ",", column_names)
        elif fmt == "json":
            rows = _jsonl_rows(path)
        else:
            raise SeqlabError(f"{path}: text classification reads TSV, CSV, JSONL or parquet files, not {fmt}")
        for number, row in rows:
            yield _labelled_row(path, number, row, text_field, label_field)


def _labelled_row(path: Path, number: int, row: Union[dict, SeqlabError], text_field: str,
                  label_field: Optional[str]) -> dict:
    out = {"text": "", "label": "", "source": str(path), "line": number, "error": ""}
    if isinstance(row, SeqlabError):
        out["error"] = str(row)
        return out
    where = f"{path}:{number}"
    for field in (text_field, label_field):
        if field is not None and (field not in row or row[field] is None):
            present = ", ".join(k for k, v in row.items() if v is not None)
            out["error"] = f"{where}: no field '{field}' (fields: {present})"
            return out
    text = str(row[text_field]).strip()
    if not text:
        out["error"] = f"{where}: empty text"
        return out
    out["text"] = text
    if label_field is not None:
        label = row[label_field]
        out["label"] = str(label).strip() if not isinstance(label, bool) else str(int(label))
        if not out["label"]:
            out["error"] = f"{where}: empty label"
    return out


def _delimited_rows(path: Path, delimiter: str, column_names: Optional[list[str]]):
    """(line number, {column: value} or SeqlabError) per data row; a row with a field count unlike the header's
    becomes a dict missing the absent columns (reported as a missing field) or an error for extra fields."""
    header = list(column_names) if column_names else None
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    for number, line in iter_lines_lenient(path):
        if isinstance(line, SeqlabError):
            yield number, line
            continue
        if not line.strip():
            continue
        fields = next(csv.reader([line], delimiter=delimiter, quoting=quoting))
        if header is None:
            header = [f.strip() for f in fields]
            continue
        if len(fields) > len(header):
            yield number, SeqlabError(
                f"{path}:{number}: {len(fields)} fields but the header has {len(header)} ({', '.join(header)})")
            continue
        yield number, dict(zip(header, fields))


def _jsonl_rows(path: Path):
    for number, line in iter_lines_lenient(path):
        if isinstance(line, SeqlabError):
            yield number, line
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            yield number, SeqlabError(f"{path}:{number}: invalid JSON ({error.msg}, column {error.colno})")
            continue
        if not isinstance(row, dict):
            yield number, SeqlabError(f"{path}:{number}: expected a JSON object per line, got {type(row).__name__}")
            continue
        yield number, row
