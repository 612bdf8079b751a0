"""benchmarks/streaming_memory.py: the synthetic corpora keep every pair aligned, and (slow) the whole script in its
tiniest setting writes its rows. Timings and memory figures are never asserted."""

from __future__ import annotations

import collections
import json
import math

import pytest

from tests.test_benchmarks import benchmark, data_root


def test_a_synthetic_corpus_repeats_every_pair_in_shuffled_copies(tmp_path, multi30k_slice):
    bench = benchmark("streaming_memory")
    assert bench.write_corpus(multi30k_slice, tmp_path / "x3", 3) == 3 * 2000
    written = list(zip(bench.lines_of(tmp_path / "x3", "train.de"), bench.lines_of(tmp_path / "x3", "train.en")))
    original = list(zip(bench.lines_of(multi30k_slice, "train.de"), bench.lines_of(multi30k_slice, "train.en")))
    assert collections.Counter(written) == collections.Counter(original * 3)  # the pairs, each 3 times, aligned
    copies = [written[i * 2000:(i + 1) * 2000] for i in range(3)]
    assert all(sorted(copy) == sorted(original) for copy in copies)  # each copy holds every pair once
    assert copies[0] != original and copies[0] != copies[1]  # in its own order
    assert (tmp_path / "x3" / "val.de").resolve() == (multi30k_slice / "val.de").resolve()


@pytest.mark.slow
def test_streaming_memory_writes_rows(tmp_path, multi30k_slice):
    root = data_root(tmp_path, "translation/multi30k/raw", multi30k_slice)
    out = tmp_path / "rows.jsonl"
    benchmark("streaming_memory").main(["--steps", "2", "--sizes", "2", "--in-memory", "--windows", "1",
                                        "--fetch-batches", "2", "--step-batches", "2", "--data", str(root),
                                        "--json", str(out), "--workdir", str(tmp_path)])
    rows = {row["name"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {"tokens_per_s_data_path", "peak_rss_1x_streaming", "tokens_per_s_1x_streaming",
                         "peak_rss_2x_streaming", "tokens_per_s_2x_streaming"}
    for row in rows.values():
        assert all(math.isfinite(row[key]) and row[key] > 0 for key in ("seqlab", "reference", "ratio"))
    assert rows["peak_rss_2x_streaming"]["training_pairs"] == 4000
