"""A new process finds the encoded splits that an earlier one cached: the encoding function's fingerprint (datasets
hashes it by pickling) must not depend on the process (string hashing changes the order of sets between runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys
from seqlab.data_modules import TextClassificationData, TokenClassificationData
kind, path, cache = sys.argv[1:]
if kind == "ner":
    data = TokenClassificationData(path=path, cache_dir=cache)
else:
    data = TextClassificationData(path=path, name=None, cache_dir=cache)
data.prepare_encoders()
encoded = data.encode("train", data.raw_split("train"))
print(encoded.cache_files[0]["filename"])
"""


@pytest.mark.parametrize("kind", ["ner", "sentiment"])
def test_a_second_process_reuses_the_encoded_split(kind, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    if kind == "ner":
        (data / "train.txt").write_text("EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n\nPeter B-PER\nBlackburn I-PER\n")
    else:
        (data / "train.tsv").write_text("sentence\tlabel\nit 's a gripping , funny movie\t1\nflat and dull .\t0\n")
    cache = tmp_path / "cache"

    def encoded_file(hash_seed: str) -> Path:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "HF_DATASETS_OFFLINE": "1"}
        run = subprocess.run([sys.executable, "-c", SCRIPT, kind, str(data), str(cache)], capture_output=True,
                             text=True, env=env, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        return Path(run.stdout.strip().splitlines()[-1])

    first = encoded_file("1")
    stamp = first.stat().st_mtime_ns
    assert encoded_file("2") == first
    assert first.stat().st_mtime_ns == stamp, "the second process encoded the split again"
