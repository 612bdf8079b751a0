"""Shared test helpers: where the real data lives (``../shared/data`` next to the repository, or ``$SEQLAB_DATA``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def repo_root() -> Path:
    """The directory holding pyproject.toml above this file (the repository root, wherever it is checked out)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return here.parents[1]


def shared_data_root() -> Path:
    """``$SEQLAB_DATA`` if set, else the ``shared/data`` folder beside the repository root (``<root>/../shared/data``;
    one level further up too, for checkouts in a subfolder such as a git worktree directory)."""
    env = os.environ.get("SEQLAB_DATA")
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    candidates = [root.parent / "shared" / "data", root.parent.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return candidates[0]


def require_shared_data(relative: str = "") -> Path:
    """The real-data folder ``relative`` under the shared data root; skips the test when it is missing, except on CI
    (env ``CI=true``), where missing data is a failure rather than a silently skipped check."""
    path = shared_data_root() / relative
    if not path.exists():
        reason = (f"real data not found at {path} (set SEQLAB_DATA to the shared data folder, "
                  f"default <repo>/../shared/data)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture
def shared_data():
    """``shared_data("ner/conll2003/iob2")`` -> the Path, or skip (fail on CI) when it is missing."""
    return require_shared_data


def write_conll_slice(source: Path, target: Path, sentences: int) -> None:
    """The first ``sentences`` sentences of a real CoNLL file (gzip), as plain text."""
    import gzip

    kept, lines = 0, []
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        for line in handle:
            lines.append(line)
            if not line.strip() and len(lines) > 1 and lines[-2].strip() and not lines[-2].startswith("-DOCSTART-"):
                kept += 1
                if kept == sentences:
                    break
    target.write_text("".join(lines), encoding="utf-8")


@pytest.fixture(scope="session")
def conll_slice(tmp_path_factory) -> Path:
    """A small real CoNLL-2003 directory: 1,000 train / 300 valid / 300 test sentences (BIO tags)."""
    source = require_shared_data("ner/conll2003/iob2")
    target = tmp_path_factory.mktemp("conll_slice")
    for name, count in (("train", 1000), ("valid", 300), ("test", 300)):
        write_conll_slice(source / f"{name}.txt.gz", target / f"{name}.txt", count)
    return target


def write_lines_slice(source: Path, target: Path, lines: int) -> None:
    """The header and the first ``lines`` rows of a real (optionally gzip) TSV file, as plain text."""
    import gzip
    import itertools

    opener = gzip.open if source.name.endswith(".gz") else open
    with opener(source, "rt", encoding="utf-8") as handle:
        target.write_text("".join(itertools.islice(handle, lines + 1)), encoding="utf-8")


@pytest.fixture(scope="session")
def sst2_slice(tmp_path_factory) -> Path:
    """A small real SST-2 directory: 4,000 train phrases / the 872 dev sentences / 400 test sentences."""
    source = require_shared_data("sentiment/sst2")
    target = tmp_path_factory.mktemp("sst2_slice")
    for name, target_name, count in (("train.tsv.gz", "train.tsv", 4000), ("dev.tsv", "dev.tsv", 872),
                                     ("test.tsv", "test.tsv", 400)):
        write_lines_slice(source / name, target / target_name, count)
    return target


@pytest.fixture(scope="session")
def sst_trees_slice(tmp_path_factory) -> Path:
    """A small real SST tree directory (SST-5): the first 300 train / 100 dev / 100 test trees."""
    source = require_shared_data("sentiment/sst_trees")
    target = tmp_path_factory.mktemp("sst_trees_slice")
    for split, count in (("train", 300), ("dev", 100), ("test", 100)):
        write_head_lines(source / f"{split}.txt.gz", target / f"{split}.txt", count)
    return target


@pytest.fixture(scope="session")
def timit_sample() -> Path:
    """The real TIMIT sample (160 utterances, 8 minutes of audio): small enough to use whole."""
    return require_shared_data("speech/timit_sample")


def write_head_lines(source: Path, target: Path, lines: int) -> None:
    """The first ``lines`` lines of a real (optionally gzip) text file, as plain text."""
    import gzip
    import itertools

    opener = gzip.open if source.name.endswith(".gz") else open
    with opener(source, "rt", encoding="utf-8") as handle:
        target.write_text("".join(itertools.islice(handle, lines)), encoding="utf-8")


@pytest.fixture(scope="session")
def multi30k_slice(tmp_path_factory) -> Path:
    """A small real Multi30k de-en directory under Multi30k's own file names: 2,000 train / 100 val / 100 test
    (test_2016_flickr) line-aligned pairs (small evaluation splits: an untrained model decodes to the maximum
    length)."""
    source = require_shared_data("translation/multi30k/raw")
    target = tmp_path_factory.mktemp("multi30k_slice")
    for split, count in (("train", 2000), ("val", 100), ("test_2016_flickr", 100)):
        for lang in ("de", "en"):
            write_head_lines(source / f"{split}.{lang}.gz", target / f"{split}.{lang}", count)
    return target


def run_readme_python(section: str, call: str, checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    """Run the first Python block of README section ``section`` as a user would: the checkpoint path its ``call``
    (``seqlab.load``, ``export``) names is a copy of ``checkpoint`` below ``tmp_path``, the working directory."""
    import re
    import shutil

    readme = (repo_root() / "README.md").read_text()
    text = readme[readme.index(section):]
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    target = tmp_path / re.search(re.escape(call) + r'\("([^"]+)"', code).group(1)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(checkpoint, target)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
