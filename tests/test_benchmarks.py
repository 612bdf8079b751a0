"""Smoke tests of the speed benchmarks (benchmarks/*.py): each runs in-process in its tiniest setting on real data
and writes its rows, with positive finite figures and the expected names. Timings are never asserted."""

from __future__ import annotations

import importlib
import json
import logging
import math
import sys
import warnings
from pathlib import Path

import pytest
import torch

from tests.conftest import repo_root, require_shared_data

BENCHMARKS = repo_root() / "benchmarks"
TINY = ["--windows", "1", "--window-batches", "3", "--threads", "1"]


def benchmark(name: str):
    """benchmarks/<name>.py as a module (benchmarks/ is not a package)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


@pytest.fixture(autouse=True)
def keep_process_state():
    """The scripts set process-wide state (``--threads 1``, quieter Lightning loggers, warning filters): restore it
    afterwards, so tests that run later in this worker still see Lightning's INFO lines and the default warnings."""
    threads = torch.get_num_threads()
    loggers = [logging.getLogger(name) for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        yield
    torch.set_num_threads(threads)
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)


def data_root(tmp_path: Path, relative: str, source: Path) -> Path:
    """A data root holding ``source`` at ``relative`` (the layout the scripts expect under --data)."""
    target = tmp_path / "data" / relative
    target.parent.mkdir(parents=True)
    target.symlink_to(source, target_is_directory=True)
    return tmp_path / "data"


def read_rows(path: Path, expected: set[str]) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert expected <= {r["name"] for r in rows}
    for r in rows:
        for key in ("seqlab", "reference", "ratio"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["name"], key, r[key])
        assert r["what"] and r["unit"] and r["threads"] == 1
    return rows


def test_paired_combine_balances_the_order():
    """The ratio is the geometric mean of the raw-first and raw-second medians, and rates are units / time."""
    paired = benchmark("paired")
    blocks = [(2.0, 1.0, 10, True), (1.0, 1.0, 10, False), (2.0, 1.0, 10, True), (1.0, 1.0, 10, False)]
    result = paired.combine([blocks[:2], blocks[2:]])
    assert result.ratio == pytest.approx(2 ** 0.5)
    assert (result.ratio_first, result.ratio_second) == (2.0, 1.0)
    assert result.seqlab_rate == pytest.approx(40 / 4.0) and result.raw_rate == pytest.approx(40 / 6.0)
    with pytest.raises(ValueError):
        paired.combine([blocks[:1]])


@pytest.mark.slow
def test_ner_speed_writes_rows(tmp_path, conll_slice):
    root = data_root(tmp_path, "ner/conll2003/iob2", conll_slice)
    out = tmp_path / "ner.jsonl"
    benchmark("ner_speed").main([*TINY, "--crf-ops", "2", "--data", str(root), "--json", str(out)])
    read_rows(out, {"train_step_CRFTagger", "train_step_SoftmaxTagger", "train_step_CRFTagger_flair_sizes",
                    "crf_op", "vs_flair_quoted"})


@pytest.mark.slow
def test_sentiment_speed_writes_rows(tmp_path, sst2_slice):
    root = data_root(tmp_path, "sentiment/sst2", sst2_slice)
    out = tmp_path / "sentiment.jsonl"
    benchmark("sentiment_speed").main([*TINY, "--batch-size", "16", "--data", str(root), "--json", str(out)])
    rows = read_rows(out, {"train_step_sst2_bilstm", "train_step_sst2_bilstm_lightning_floor",
                           "train_step_sst2_bilstm_attention"})
    assert all(r["unit"] == "tokens/s" for r in rows)


@pytest.mark.slow
def test_speech_speed_writes_rows(tmp_path, timit_sample):
    root = data_root(tmp_path, "speech/timit_sample", timit_sample)
    out = tmp_path / "speech.jsonl"
    benchmark("speech_speed").main([*TINY, "--batch-size", "2", "--feature-passes", "1", "--data", str(root),
                                    "--json", str(out)])
    rows = {r["name"]: r for r in read_rows(out, {
        "train_step_timit_bilstm", "train_step_timit_mlp", "features_fbank40_cmvn", "features_fbank40_cmvn_decode",
        "features_vs_target"})}
    assert rows["train_step_timit_mlp"]["unit"] == "frames/s"
    assert rows["features_fbank40_cmvn"]["fbank_identical"] is True
    assert rows["features_fbank40_cmvn"]["utterances"] == 160
    assert rows["features_vs_target"]["reference"] == 500.0


@pytest.mark.slow
def test_translation_speed_writes_rows(tmp_path, multi30k_slice):
    root = data_root(tmp_path, "translation/multi30k/raw", multi30k_slice)
    out = tmp_path / "translation.jsonl"
    benchmark("translation_speed").main([*TINY, "--batch-size", "4", "--sentences", "8", "--data", str(root),
                                         "--json", str(out)])
    rows = {r["name"]: r for r in read_rows(out, {
        "train_step_multi30k_bahdanau", "beam_batched_vs_per_sentence", "beam_vs_greedy"})}
    search = rows["beam_vs_greedy"]
    assert search["sentences"] == 8 and search["eval_batch_size"] == 8
    assert search["same_best"] == 8  # batched and per-sentence beam search agree
    assert search["ratio"] == pytest.approx(search["seconds"]["beam"] / search["seconds"]["greedy"], rel=1e-2)


@pytest.mark.slow
def test_cell_speed_writes_rows(tmp_path, conll_slice):
    root = data_root(tmp_path, "ner/conll2003/iob2", conll_slice)
    out = tmp_path / "cells.jsonl"
    benchmark("cell_speed").main([*TINY, "--warmup-batches", "1", "--hidden-size", "8", "--modes", "eager",
                                  "--cells", "lstm,gru,weight_drop_lstm", "--data", str(root), "--json", str(out)])
    rows = {r["name"]: r for r in read_rows(out, {"lstm vs nn.LSTM", "gru vs nn.LSTM", "weight_drop_lstm vs nn.LSTM"})}
    assert rows["weight_drop_lstm vs nn.LSTM"]["target"] == pytest.approx(1 / 1.1, abs=1e-4)
    assert rows["lstm vs nn.LSTM"]["target"] == pytest.approx(1 / 3, abs=1e-4)


def test_ner_inference_vs_flair_alternates_and_needs_the_peer_venv(tmp_path, capsys):
    """Passes alternate (warm-up once each, then the order reversed every other round); without .venv-peers the
    script says how to create it and writes no row."""
    script = benchmark("ner_inference_vs_flair")
    calls: list[str] = []
    sides = {name: (lambda name=name: calls.append(name) or float(len(calls))) for name in ("a", "b", "c")}
    seconds = script.alternate(sides, rounds=3)
    assert calls == ["a", "b", "c", "a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert seconds == {"a": [4.0, 9.0, 10.0], "b": [5.0, 8.0, 11.0], "c": [6.0, 7.0, 12.0]}
    out = tmp_path / "flair.jsonl"
    assert script.main(["--peers-python", str(tmp_path / "missing" / "python"), "--json", str(out)]) == []
    assert "make bench-peers" in capsys.readouterr().out and not out.exists()


@pytest.mark.slow
@pytest.mark.skipif(not (repo_root() / ".venv-peers" / "bin" / "python").exists(),
                    reason="Flair's venv .venv-peers is made by `make bench-peers`")
def test_ner_inference_vs_flair_writes_rows(tmp_path, conll_slice):
    root = data_root(tmp_path, "ner/conll2003/iob2", conll_slice)
    out = tmp_path / "flair.jsonl"
    benchmark("ner_inference_vs_flair").main(["--windows", "1", "--threads", "1", "--batch1-sentences", "5",
                                              "--data", str(root), "--json", str(out)])
    rows = {r["name"]: r for r in read_rows(out, {"predictor_b64", "model_only_b64", "predictor_b1",
                                                  "model_only_b1"})}
    assert rows["predictor_b64"]["sentences"] == 300 and rows["predictor_b1"]["sentences"] == 5
    assert rows["predictor_b64"]["reference"] == rows["model_only_b64"]["reference"]  # one Flair measurement


@pytest.mark.slow
def test_resume_overhead_writes_rows(tmp_path, conll_slice):
    root = data_root(tmp_path, "ner/conll2003/iob2", conll_slice)
    out = tmp_path / "resume.jsonl"
    benchmark("resume_overhead").main([*TINY, "--data", str(root), "--json", str(out)])
    rows = {r["name"]: r for r in read_rows(out, {"loader_batches_per_s", "step_with_resumable_loader"})}
    step = rows["step_with_resumable_loader"]
    assert step["overhead_share"] == pytest.approx(step["overhead_ms_per_batch"] / step["step_ms"], abs=1e-5)
    assert step["seqlab"] - step["reference"] == pytest.approx(step["overhead_ms_per_batch"], abs=1e-4)
