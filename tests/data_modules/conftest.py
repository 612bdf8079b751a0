"""Tiny data files for the data module tests, written into tmp_path."""

from __future__ import annotations

import gzip
from pathlib import Path
from types import SimpleNamespace

import pytest

# Line numbers matter: error messages name them. Train: 4 sentences, 21 tokens, no blank line at the end.
TRAIN_TXT = """\
-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O

-DOCSTART- -X- -X- O

The DT B-NP O
European NNP I-NP B-ORG
Commission NNP I-NP I-ORG
said VBD B-VP O
on IN B-PP O
Thursday NNP B-NP O
it PRP B-NP O
disagreed VBD B-VP O
with IN B-PP O
German JJ B-NP B-MISC
advice NN I-NP O
. . O O"""

# Valid: 2 sentences, 6 tokens; two blank lines in a row between them.
VALID_TXT = """\
-DOCSTART- -X- -X- O

Rare NNP B-NP B-PER
Name NNP I-NP I-PER
visits VBZ B-VP O
Germany NNP B-NP B-LOC


EU NNP B-NP B-ORG
. . O O
"""

# Test (gzip, CRLF line ends): 3 sentences, 4 tokens.
TEST_TXT = "Peter NNP B-NP B-PER\r\nwins VBZ B-VP O\r\n\r\nBRUSSELS NNP B-NP B-LOC\r\n\r\nThursday NNP B-NP O\r\n\r\n"

TRAIN_SENTENCES = [
    (["EU", "rejects", "German", "call", "."], ["B-ORG", "O", "B-MISC", "O", "O"]),
    (["Peter", "Blackburn"], ["B-PER", "I-PER"]),
    (["BRUSSELS", "1996-08-22"], ["B-LOC", "O"]),
    (["The", "European", "Commission", "said", "on", "Thursday", "it", "disagreed", "with", "German", "advice", "."],
     ["O", "B-ORG", "I-ORG", "O", "O", "O", "O", "O", "O", "B-MISC", "O", "O"]),
]
TRAIN_FIRST_LINES = [3, 9, 12, 17]
VALID_SENTENCES = [
    (["Rare", "Name", "visits", "Germany"], ["B-PER", "I-PER", "O", "B-LOC"]),
    (["EU", "."], ["B-ORG", "O"]),
]
TEST_SENTENCES = [
    (["Peter", "wins"], ["B-PER", "O"]),
    (["BRUSSELS"], ["B-LOC"]),
    (["Thursday"], ["O"]),
]
#: every tag of the scheme for each entity type in the training file (which has no I-LOC or I-MISC)
LABELS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def write_gzip(path: Path, text: str) -> Path:
    with gzip.open(path, "wb") as handle:
        handle.write(text.encode("utf-8"))
    return path


@pytest.fixture
def conll_dir(tmp_path) -> Path:
    """train.txt, valid.txt and test.txt.gz in CoNLL-2003's 4-column format."""
    directory = tmp_path / "conll"
    directory.mkdir()
    (directory / "train.txt").write_text(TRAIN_TXT, encoding="utf-8")
    (directory / "valid.txt").write_text(VALID_TXT, encoding="utf-8")
    write_gzip(directory / "test.txt.gz", TEST_TXT)
    return directory


@pytest.fixture
def cache_dir(tmp_path) -> str:
    return str(tmp_path / "cache")


@pytest.fixture
def make_data(cache_dir):
    """``make_data(path, **kwargs)`` -> a TokenClassificationData with batch_size=2 and the test's cache dir, its
    encoders fitted on train (``fit=False``: as constructed, nothing read)."""
    from seqlab.data_modules import TokenClassificationData

    def make(path, fit: bool = True, **kwargs):
        kwargs.setdefault("batch_size", 2)
        kwargs.setdefault("cache_dir", cache_dir)
        data = TokenClassificationData(path=str(path), **kwargs)
        if fit:
            data.prepare_encoders()
        return data

    return make


@pytest.fixture
def conll_expected() -> SimpleNamespace:
    """What reading ``conll_dir`` must give: (tokens, tags) per sentence for each split, the labels, and the line of
    each train sentence's first token."""
    return SimpleNamespace(
        train=TRAIN_SENTENCES,
        validation=VALID_SENTENCES,
        test=TEST_SENTENCES,
        labels=LABELS,
        train_first_lines=TRAIN_FIRST_LINES,
    )
