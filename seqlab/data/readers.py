"""Readers: one class per file format. Each recognises its files by content (``accepts``: the first lines), whatever
their name, and yields records that keep their file and line (``source``, ``line``) and an ``error`` message
(``file:line: what``, or "") for the bad-row policy, so one bad row never hides the others."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Iterator, Optional, Sequence

from seqlab import SeqlabError
from seqlab.files import iter_lines, open_binary


def is_binary(path: Path) -> bool:
    """Whether the file (gunzipped) holds NUL bytes in its first 4 KiB: no text format does."""
    try:
        with open_binary(path) as handle:
            return b"\x00" in handle.read(4096)
    except (OSError, EOFError):
        return False


def head_lines(path: Path, count: int = 5) -> list[str]:
    """The first ``count`` non-empty lines (undecodable ones left out) of a text file; [] for a binary file."""
    if is_parquet(path) or is_binary(path):
        return []
    lines = []
    try:
        for _, line in iter_lines(path, lenient=True):
            if isinstance(line, str) and line.strip():
                lines.append(line)
                if len(lines) == count:
                    break
    except SeqlabError:  # a corrupt compressed file: the reader chosen reports it with its line
        pass
    return lines


def is_parquet(path: Path) -> bool:
    with open_binary(path) as handle:
        return handle.read(4) == b"PAR1"


def record(path: Path, line: int, error: str = "", error_line: Optional[int] = None, **values) -> dict:
    """A reader's record: ``fields`` (a row's named values) or ``tokens``/``tags`` (a sentence), its file and line;
    ``error`` (what is wrong) is reported at ``error_line``, by default the record's line."""
    where = f"{path}:{error_line or line}"
    return {"fields": {}, "tokens": [], "tags": [], **values, "source": str(path), "line": line,
            "error": f"{where}: {error}" if error else ""}


class Reader:
    """A file format: ``accepts(head)`` says whether a file whose first non-empty lines are ``head`` looks like it;
    ``rows(path, split)`` yields its records."""

    def accepts(self, head: list[str]) -> bool:
        raise NotImplementedError

    def rows(self, path: Path, split: str = "train") -> Iterator[dict]:
        raise NotImplementedError


def choose_reader(path: Path, candidates: Sequence[Reader], declared: Optional[Reader] = None) -> Reader:
    """``declared`` when given, else the first candidate that recognises the file's content."""
    if declared is not None:
        return declared
    head = head_lines(path)
    if not head:
        if is_binary(path):
            raise SeqlabError(f"{path}: a binary file, not text")
        for _, line in iter_lines(path):  # raises at the first line that is not UTF-8
            pass
        raise SeqlabError(f"{path}: no text lines (the file is empty or blank)")
    for reader in candidates:
        if reader.accepts(head):
            return reader
    formats = ", ".join(type(r).__name__ for r in candidates)
    raise SeqlabError(f"{path}:1: not a format this data module reads ({formats}): {head[0][:60]!r}; "
                      "declare one with --data.reader")


# --------------------------------------------------------------------------------------------- token columns
def split_fields(line: str) -> list[str]:
    """Tab-separated fields when the line has a tab, else whitespace-separated ones."""
    return line.split("\t") if "\t" in line else line.split()


class ColumnReader(Reader):
    """Column files (CoNLL-2003, ``token<TAB>tag`` TSV, ``.iob``, ``.conll`` or no extension): one token per line,
    ``token_column`` and ``tag_column`` (None: unlabelled), blank lines between sentences; lines starting with
    ``document_separator`` and comment lines (``#`` before a sentence, unlike the file's token lines) are skipped.
    Yields ``{"tokens", "tags", "source", "line", "error", "document"}``, ``line`` = the sentence's first line,
    ``document`` = how many document separators came before it; with ``extra_columns``, also ``"extra"``: each of those
    columns' values for the sentence's tokens, in the same pass."""

    def __init__(self, token_column: int = 0, tag_column: Optional[int] = -1,
                 document_separator: str = "-DOCSTART-", extra_columns: Sequence[int] = ()) -> None:
        self.token_column = token_column
        self.tag_column = tag_column
        self.document_separator = document_separator
        self.extra_columns = tuple(extra_columns)

    def accepts(self, head: list[str]) -> bool:
        return not head[0].lstrip().startswith(("{", "(")) and all(len(split_fields(line)) < 30 for line in head)

    def token_and_tag(self, fields: list[str]) -> tuple[str, str]:
        tag = fields[self.tag_column] if self.tag_column is not None else ""
        return fields[self.token_column], tag

    def skip(self, fields: list[str], columns: Optional[int], in_sentence: bool) -> bool:
        if fields[0] == self.document_separator:
            return True
        return fields[0].startswith("#") and not in_sentence and (columns is None or len(fields) != columns)

    def sentence(self, path: Path, first: int, error: str, error_line: int, tokens: list[str], tags: list[str],
                 extra: list[list[str]], document: int) -> dict:
        values = {"tokens": tokens, "tags": tags, "document": document,
                  **({"extra": extra} if self.extra_columns else {})}
        return record(path, first, error, error_line, **values)

    def rows(self, path: Path, split: str = "train") -> Iterator[dict]:
        tokens, tags, first, columns, error, error_line, document = [], [], 0, None, "", 0, 0
        extra = [[] for _ in self.extra_columns]
        for number, line in iter_lines(path, lenient=True):
            fields = [] if isinstance(line, SeqlabError) else split_fields(line)
            if isinstance(line, str) and not fields:
                if tokens or error:
                    yield self.sentence(path, first, error, error_line, tokens, tags, extra, document)
                tokens, tags, error, extra = [], [], "", [[] for _ in self.extra_columns]
                continue
            if fields and self.skip(fields, columns, bool(tokens)):
                document += fields[0] == self.document_separator
                continue
            first = first if tokens or error else number
            if error:
                continue
            if isinstance(line, SeqlabError):
                error, error_line = str(line).split(": ", 1)[1], number
                continue
            columns = columns or len(fields)
            if len(fields) != columns:
                error, error_line = (f"expected {columns} columns as in the file's first line, found "
                                     f"{len(fields)}: {line[:80]!r}"), number
                continue
            try:
                token, tag = self.token_and_tag(fields)
                extra_values = [fields[column] for column in self.extra_columns]
            except IndexError:
                missing = next(c for c in (self.token_column, self.tag_column, *self.extra_columns)
                               if c is not None and not -len(fields) <= c < len(fields))
                error, error_line = f"no column {missing} in {len(fields)}", number
                continue
            tokens.append(token)
            tags.append(tag)
            for values, value in zip(extra, extra_values):
                values.append(value)
        if tokens or error:
            yield self.sentence(path, first, error, error_line, tokens, tags, extra, document)


class DocumentReader(ColumnReader):
    """Column files read a document at a time: consecutive sentences of one document (the lines between two
    ``document_separator`` lines; a file without them is one document) joined into one example of at most
    ``max_tokens`` tokens, so the encoder reads each sentence beside its neighbours (document context: a headline's
    ``Essex`` is a team in a sports report). A sentence longer than ``max_tokens`` stays whole and alone, a bad
    sentence stays alone with its error, and a sentence is never split. An example's ``line`` is its first sentence's;
    tags stay one per token, so entity spans and their scores are those of the sentences."""

    def __init__(self, max_tokens: int = 100, token_column: int = 0, tag_column: Optional[int] = -1,
                 document_separator: str = "-DOCSTART-", extra_columns: Sequence[int] = ()) -> None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise SeqlabError(f"DocumentReader max_tokens must be a whole number of tokens >= 1, got {max_tokens!r}")
        super().__init__(token_column, tag_column, document_separator, extra_columns)
        self.max_tokens = max_tokens

    def rows(self, path: Path, split: str = "train") -> Iterator[dict]:
        example = None
        for sentence in super().rows(path, split):
            if example is not None and (sentence["error"] or sentence["document"] != example["document"]
                                        or len(example["tokens"]) + len(sentence["tokens"]) > self.max_tokens):
                yield example
                example = None
            if sentence["error"]:
                yield sentence
            elif example is None:
                example = sentence
            else:
                example["tokens"] += sentence["tokens"]
                example["tags"] += sentence["tags"]
                for values, more in zip(example.get("extra", ()), sentence.get("extra", ())):
                    values += more
        if example is not None:
            yield example


class CoNLLUReader(ColumnReader):
    """CoNLL-U (Universal Dependencies): ``FORM`` tokens and the tags of ``tag_field``: ``UPOS``, ``XPOS``, or
    ``MISC:<key>`` (a ``key=value`` entry of the MISC column, e.g. ``MISC:NER`` for ``NER=B-PER``; ``O`` where it is
    absent). Multi-word token ranges (``1-2``) and empty nodes (``1.1``) are skipped."""

    COLUMNS = {"UPOS": 3, "XPOS": 4}

    def __init__(self, tag_field: str = "UPOS") -> None:
        if tag_field not in self.COLUMNS and not tag_field.startswith("MISC:"):
            raise SeqlabError(f"CoNLLUReader tag_field must be UPOS, XPOS or MISC:<key>, got {tag_field!r}")
        super().__init__(token_column=1, tag_column=self.COLUMNS.get(tag_field, 9))
        self.tag_field = tag_field

    def accepts(self, head: list[str]) -> bool:
        first = next((line for line in head if not line.startswith("#")), "")
        return len(first.split("\t")) == 10 and first.split("\t")[0].isdigit()

    def skip(self, fields: list[str], columns: Optional[int], in_sentence: bool) -> bool:
        return fields[0].startswith("#") or not fields[0].isdigit()

    def token_and_tag(self, fields: list[str]) -> tuple[str, str]:
        if not self.tag_field.startswith("MISC:"):
            return super().token_and_tag(fields)
        key = self.tag_field[len("MISC:"):] + "="
        entry = next((item for item in fields[9].split("|") if item.startswith(key)), None)
        return fields[1], entry[len(key):] if entry is not None else "O"


# --------------------------------------------------------------------------------------------- labelled texts
class DelimitedReader(Reader):
    """CSV or TSV with a header line (or ``column_names``). ``delimiter``: ``,`` or a tab (default: a tab when the
    first line has one, else ``,``). Quoted fields (``quoting``; default on for CSV, off for TSV, whose texts often
    hold bare quotes) may span several lines. Yields ``{"fields": {column: value}, ...}``."""

    def __init__(self, delimiter: Optional[str] = None, column_names: Optional[list[str]] = None,
                 quoting: Optional[bool] = None) -> None:
        self.delimiter = delimiter
        self.column_names = list(column_names) if column_names else None
        self.quoting = quoting

    def accepts(self, head: list[str]) -> bool:
        return not head[0].lstrip().startswith(("{", "(")) and ("\t" in head[0] or "," in head[0])

    def rows(self, path: Path, split: str = "train") -> Iterator[dict]:
        head = head_lines(path, 1)
        delimiter = self.delimiter or ("\t" if head and "\t" in head[0] else ",")
        quoted = self.quoting if self.quoting is not None else delimiter != "\t"
        bad: dict[int, str] = {}

        def text_lines() -> Iterator[str]:
            for number, line in iter_lines(path, lenient=True):
                if isinstance(line, SeqlabError):
                    bad[number] = str(line).split(": ", 1)[1]
                    line = ""
                yield line + "\n"

        reader = csv.reader(text_lines(), delimiter=delimiter, strict=quoted,
                            quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
        header, previous = self.column_names, 0
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield record(path, previous + 1, f"unreadable {'CSV' if delimiter == ',' else 'TSV'} ({error})")
                return
            start, previous = previous + 1, reader.line_num
            broken = [n for n in range(start, previous + 1) if n in bad]
            if broken:
                yield record(path, broken[0], bad[broken[0]])
            elif not any(f.strip() for f in fields):
                continue
            elif header is None:
                header = [f.strip() for f in fields]
            elif len(fields) > len(header):
                yield record(path, start, f"{len(fields)} fields but the header has {len(header)} "
                             f"({', '.join(header)})")
            else:
                yield record(path, start, fields=dict(zip(header, fields)))


class LineRecords(Reader):
    """Formats of one record per line (or several: a tree's phrases): ``parse(line, split)`` gives the records'
    values; a ValueError is the line's error. Empty lines are skipped unless ``keep_empty``."""

    keep_empty = False

    def parse(self, line: str, split: str) -> list[dict]:
        raise NotImplementedError

    def rows(self, path: Path, split: str = "train") -> Iterator[dict]:
        for number, line in iter_lines(path, lenient=True):
            if isinstance(line, SeqlabError):
                yield record(path, number, str(line).split(": ", 1)[1])
            elif line.strip() or self.keep_empty:
                try:
                    parsed = self.parse(line, split)
                except ValueError as error:
                    yield record(path, number, str(error))
                    continue
                for values in parsed:
                    yield record(path, number, **values)


class JsonlReader(LineRecords):
    """One JSON object per line, as ``fields``."""

    def accepts(self, head: list[str]) -> bool:
        return head[0].lstrip().startswith("{")

    def parse(self, line: str, split: str) -> list[dict]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"invalid JSON ({error.msg}, column {error.colno})") from None
        if not isinstance(row, dict):
            raise ValueError(f"expected a JSON object per line, got {type(row).__name__}")
        return [{"fields": row}]


_PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}"}
_TREE_TOKEN = re.compile(r"\(|\)|[^\s()]+")


class SSTTreeReader(LineRecords):
    """Stanford Sentiment Treebank trees, one per line (``(3 (2 It) (4 (2 's) (4 fine)))``): the sentence (leaves,
    PTB escapes undone) with the root's label 0-4 as ``{"fields": {"text", "label"}}``. ``train_phrases``: in the
    train split, every distinct labelled phrase (subtree) too, the usual way to train on SST's phrase labels."""

    def __init__(self, train_phrases: bool = False) -> None:
        self.train_phrases = train_phrases

    def accepts(self, head: list[str]) -> bool:
        return re.match(r"\(\d ", head[0].lstrip()) is not None

    @staticmethod
    def phrases(line: str) -> list[tuple[str, str]]:
        """(label, text) of every subtree, the root last; ValueError on unbalanced brackets."""
        stack: list[list] = []  # [label, words]
        found = []
        tokens = _TREE_TOKEN.findall(line)
        for i, token in enumerate(tokens):
            if token == "(":
                stack.append([tokens[i + 1] if i + 1 < len(tokens) else "", []])
            elif token == ")":
                if not stack:
                    raise ValueError("unbalanced brackets")
                label, words = stack.pop()
                found.append((label, " ".join(words)))
                if stack:
                    stack[-1][1].extend(words)
            elif stack and i > 0 and tokens[i - 1] != "(":
                stack[-1][1].append(_PTB_ESCAPES.get(token, token.replace("\\/", "/").replace("\\*", "*")))
        if stack or not found:
            raise ValueError("unbalanced brackets")
        return found

    def rows(self, path: Path, split: str = "train") -> Iterator[dict]:
        self._seen: set[tuple[str, str]] = set()
        yield from super().rows(path, split)

    def parse(self, line: str, split: str) -> list[dict]:
        try:
            phrases = self.phrases(line)
        except ValueError as error:
            raise ValueError(f"not an SST tree ({error})") from None
        wanted = phrases if self.train_phrases and split == "train" else phrases[-1:]
        kept = []
        for label, text in reversed(wanted):  # the sentence first, then its phrases
            if len(wanted) == 1 or (label, text) not in self._seen:
                self._seen.add((label, text))
                kept.append({"fields": {"text": text, "label": label}})
        return kept


class LinesReader(LineRecords):
    """Plain text, one input per line, unlabelled (the input of ``predict``): ``fields: {"text"}`` and its
    whitespace ``tokens``; an empty line is a bad row (outputs follow input lines)."""

    keep_empty = True

    def accepts(self, head: list[str]) -> bool:
        return True

    def parse(self, line: str, split: str) -> list[dict]:
        if not line.strip():
            raise ValueError("empty text (every line must hold one input)")
        return [{"fields": {"text": line.strip()}, "tokens": line.split()}]
