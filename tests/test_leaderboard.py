"""The leaderboard: spec parsing, mean +- std over seeds, sorting, rendering, imports, and a real run of a tiny spec
(fit + test subprocesses on CoNLL-2003 and SST-2 slices) with a broken entry."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from seqlab import SeqlabError
from seqlab.encoders import TreebankPreTokenizer
from seqlab.leaderboard.importer import import_rows
from seqlab.leaderboard.plots import render_plots
from seqlab.leaderboard.render import render_csv, render_markdown
from seqlab.leaderboard.rows import (SCHEMA, aggregate, describe_variant, latest_runs, lower_is_better, mean_std,
                                     read_rows, variant_of)
from seqlab.leaderboard.runner import run_child
from seqlab.leaderboard.spec import lightning_duration, load_spec, parse_duration
from tests.conftest import repo_root

CONFIGS = repo_root() / "configs"


def make_row(entry: str, seed, value, task: str = "ner", status: str = "ok", metric: str = "test/f1", **extra):
    row = {"schema": SCHEMA, "run_id": f"{entry}-{seed}-{value}", "status": status, "entry": entry, "task": task,
           "dataset": {"ner": "CoNLL-2003 English", "speech": "TIMIT sample"}.get(task, "SST-2"), "split": "test",
           "seed": seed, "source": "leaderboard", "main_metric": metric, "main_value": value,
           "metrics": {metric: value} if value is not None else {}, "variant": {"encoder": "BiLSTMEncoder",
           "attention": "none", "head": "CRFTagger", "attends": False}, "error": None, "failed_stage": None,
           "params": 1000, "train_time_s": 60.0, "train_tokens_per_s": 500.0}
    row.update(extra)
    return row


def write_spec(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


# -- spec -------------------------------------------------------------------------------------------------------------

def test_durations():
    assert parse_duration(90) == 90 and parse_duration("15m") == 900 and parse_duration("1.5h") == 5400
    assert parse_duration("00:10:00") == 600 and parse_duration("01:02:03:04") == 93784
    assert lightning_duration(93784) == "01:02:03:04" and lightning_duration(540) == "00:00:09:00"
    with pytest.raises(SeqlabError, match="duration"):
        parse_duration("soon")


def test_spec_defaults_data_root_and_errors(tmp_path):
    spec = load_spec(write_spec(tmp_path / "s.yaml", {
        "data_root": str(tmp_path / "data"), "results": str(tmp_path / "rows.jsonl"),
        "defaults": {"seeds": [0, 1], "train": {"max_time": "2m", "args": ["--trainer.max_epochs", "1"]}},
        "entries": [
            {"name": "a", "task": "ner", "config": "configs/ner/conll2003_bilstm_crf.yaml", "data": "ner/x",
             "train": {"max_epochs": 3}},
            {"name": "b", "task": "sentiment", "checkpoint": "b.ckpt", "data": "/abs/sst2", "seeds": [5]},
        ]}))
    a, b = spec.entries
    assert a.train.max_time == 120 and a.train.max_epochs == 3 and a.train.args == ["--trainer.max_epochs", "1"]
    assert a.seeds == [0, 1] and a.data == tmp_path / "data" / "ner" / "x" and a.main_metric == "test/f1"
    assert b.train is None and b.checkpoint == Path("b.ckpt") and b.data == Path("/abs/sst2") and b.seeds == [5]
    assert b.main_metric == "test/accuracy" and spec.budget_seconds() == 240

    for entry, message in (
        ({"name": "x", "task": "ner", "config": "c.yaml"}, "either 'checkpoint' or 'train'"),
        ({"name": "x", "task": "pos", "checkpoint": "c"}, "unknown task 'pos'"),
        ({"name": "x", "task": "ner", "checkpoint": "c", "confg": "c.yaml"}, "unknown key"),
        ({"name": "x", "task": "ner", "train": {"max_time": "1m"}}, "'config' is required"),
    ):
        with pytest.raises(SeqlabError, match=message):
            load_spec(write_spec(tmp_path / "bad.yaml", {"entries": [entry]}))


@pytest.mark.parametrize("raw, message", [
    ({"entries": [{"name": "x", "task": "ner", "config": "c.yaml", "train": "10m"}]},
     r"s.yaml: entries\[0\] \(x\).train: expected a mapping \(args, max_epochs, max_time\), got str"),
    ({"entries": [{"name": "x", "task": "ner", "config": "c.yaml", "train": {"max_epochs": "ten"}}]},
     r"entries\[0\] \(x\).train.max_epochs: expected a whole number of at least 1, got 'ten'"),
    ({"entries": [{"name": "x", "task": "ner", "config": "c.yaml", "train": {"max_time": float("inf")}}]},
     r"entries\[0\] \(x\).train.max_time: cannot read duration inf"),
    ({"entries": [{"name": "x", "task": "ner", "checkpoint": "c", "seeds": "abc"}]},
     r"entries\[0\] \(x\).seeds: expected a whole number or a list of them, got 'abc'"),
    ({"entries": [{"name": "x", "task": "ner", "checkpoint": "c", "seeds": [0.5]}]},
     r"entries\[0\] \(x\).seeds: expected a whole number of at least 0, got 0.5"),
    ({"entries": [{"name": "x", "task": "ner", "checkpoint": "c", "env": ["A=1"]}]},
     r"entries\[0\] \(x\).env: expected a mapping \(variable: value\), got list"),
    ({"entries": [{"name": "x", "task": "ner", "checkpoint": ["c"]}]},
     r"entries\[0\] \(x\).checkpoint: expected a string, got list"),
    ({"entries": 5}, r"s.yaml: entries: expected a list of entries, got int"),
    ({"defaults": [1], "entries": []}, r"s.yaml: defaults: expected a mapping \(keys merged into every entry\)"),
    ({"data_root": ["/data"], "entries": []}, r"s.yaml: data_root: expected a string, got list"),
])
def test_spec_values_of_the_wrong_type_are_one_line_errors(raw, message, tmp_path):
    with pytest.raises(SeqlabError, match=message):
        load_spec(write_spec(tmp_path / "s.yaml", raw))


def test_a_spec_not_in_utf8_is_a_one_line_error(tmp_path):
    (tmp_path / "s.yaml").write_bytes("title: caf\xe9\nentries: []\n".encode("latin-1"))
    with pytest.raises(SeqlabError, match=r"s.yaml: not UTF-8 text \(byte 11\)"):
        load_spec(tmp_path / "s.yaml")


def test_default_spec_covers_every_task_config():
    spec = load_spec(repo_root() / "leaderboards" / "default.yaml", data_root="/data")
    listed = {str(c) for e in spec.entries for c in e.configs}
    for task in ("ner", "sentiment", "speech", "translation"):
        for config in sorted((CONFIGS / task).glob("*.yaml")):
            assert f"configs/{task}/{config.name}" in listed, config
    assert all(e.train and e.train.max_time for e in spec.entries)
    assert 135 * 60 <= spec.budget_seconds() <= 145 * 60  # ~2 h 50 min in all with data preparation and tests


# -- rows, mean +- std, sorting -----------------------------------------------------------------------------------

def test_mean_and_sample_std_over_two_seeds_and_latest_run_per_seed(tmp_path):
    rows = [make_row("crf", 0, 0.70),  # replaced by the re-run of seed 0 below
            make_row("crf", 1, 0.84, params=2000), make_row("crf", 0, 0.80, params=2000),
            make_row("softmax", 0, 0.86)]
    assert len(latest_runs(rows)) == 3
    by_entry = {a.entry: a for a in aggregate(rows)}
    mean, std, n = by_entry["crf"].main
    assert n == 2 and mean == pytest.approx(0.82) and std == pytest.approx(math.sqrt(2 * 0.02 ** 2 / 1))
    assert by_entry["softmax"].main == (pytest.approx(0.86), None, 1)  # one seed: no std
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0, 3) and mean_std([None, "x"]) == (None, None, 0)

    text = render_markdown(rows, tmp_path / "LEADERBOARD.md", title="t")
    assert "82.00 ± 2.83" in text and "| 86.00 |" in text


def _table(text: str, heading: str) -> list[list[str]]:
    block = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in block.splitlines()
            if line.startswith("|") and not line.startswith("|---")][1:]


def test_markdown_sorted_with_references_and_failures_and_csv(tmp_path):
    rows = [make_row("low", 0, 0.50), make_row("high", 0, 0.95), make_row("mid", 0, 0.905),
            make_row("broken", 0, None, status="failed", error="seqlab: error: config not found: x.yaml",
                     failed_stage="fit"),
            make_row("attn", 0, 0.80, task="sentiment", metric="test/accuracy")]
    text = render_markdown(rows, tmp_path / "LEADERBOARD.md")
    ner = _table(text, "## NER: CoNLL-2003 English (test)")
    assert [r[1] for r in ner] == ["high", "*published:* BiLSTM-CNN-CRF (char CNN + GloVe 100d)",
                                   "*published:* LSTM-CRF (char BiLSTM + pretrained word embeddings)", "mid", "low",
                                   "broken"]
    assert [r[0] for r in ner] == ["1", "", "", "2", "3", ""]  # references and failures are not ranked
    assert "Lample et al. 2016" in ner[2][-1] and "Ma & Hovy 2016" in ner[1][-1]
    assert ner[-1][3] == "**failed**" and "config not found: x.yaml" in ner[-1][-1]
    sentiment = _table(text, "## Sentiment: SST-2 (test)")
    assert [r[3] for r in sentiment] == ["*87.50*", "*84.90*", "80.00"]

    records = render_csv(rows, tmp_path / "board.csv")
    with open(tmp_path / "board.csv", newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(records) == 9
    assert [r["entry"] for r in table if r["task"] == "ner"][0] == "high"
    assert {r["kind"] for r in table} == {"ours", "reference"} and table[0]["main_mean"] == "95.0"


def test_per_like_metrics_sort_ascending(tmp_path):
    assert lower_is_better("test/per") and lower_is_better("val/loss") and not lower_is_better("test/f1")
    assert not lower_is_better("test/precision")
    rows = [make_row("a", 0, 0.40, task="speech", metric="test/per"),
            make_row("b", 0, 0.30, task="speech", metric="test/per")]
    text = render_markdown(rows, tmp_path / "L.md")
    assert [r[1] for r in _table(text, "## Speech")] == ["b", "a"]


def test_plots_are_written(tmp_path):
    rows = [make_row("crf", 0, 0.80), make_row("crf", 1, 0.84),
            make_row("attn", 0, 0.83, variant={"encoder": "BiLSTMEncoder", "attention": "MultiHeadSelfAttention",
                                               "head": "CRFTagger", "attends": True})]
    plots = render_plots(rows, tmp_path / "plots")
    paths = plots[("ner", "CoNLL-2003 English", "test")]
    assert [p.name for p in paths] == ["ner_conll-2003-english_test_time.png",
                                       "ner_conll-2003-english_test_attention.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_plots_leave_out_a_value_too_large_to_draw(tmp_path):
    rows = [make_row("crf", 0, 0.80), make_row("crf", 1, 0.84), make_row("huge", 0, 1e308),  # x 100: inf
            make_row("huge_seeds", 0, 1e308), make_row("huge_seeds", 1, 1e307)]  # their std overflows too
    paths = render_plots(rows, tmp_path / "plots")[("ner", "CoNLL-2003 English", "test")]
    assert len(paths) == 2 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    only_huge = render_plots([make_row("huge", 0, 1e308)], tmp_path / "alone")
    assert only_huge == {} and not list((tmp_path / "alone").iterdir())


def test_variant_from_hyper_parameters():
    ner = variant_of({"_class_path": "seqlab.tasks.TokenTagging",
                      "encoder": {"class_path": "seqlab.models.BiLSTMEncoder"},
                      "attention": {"class_path": "seqlab.models.MultiHeadSelfAttention"},
                      "head": {"class_path": "seqlab.models.CRFTagger"}})
    assert describe_variant(ner) == "BiLSTMEncoder / MultiHeadSelfAttention / CRFTagger" and ner["attends"]
    sentiment = variant_of({"encoder": {"class_path": "seqlab.models.BiLSTMEncoder"}, "attention": None,
                            "pooling": {"class_path": "seqlab.models.MaxPooling"},
                            "head": {"class_path": "seqlab.models.MLPClassifier"}})
    assert describe_variant(sentiment) == "BiLSTMEncoder / none / MaxPooling / MLPClassifier"
    assert not sentiment["attends"]
    translation = variant_of(yaml.safe_load((CONFIGS / "translation" / "multi30k_de_en_bahdanau.yaml").read_text())
                             ["model"]) if (CONFIGS / "translation").is_dir() else None
    if translation:
        assert translation["attention"] == "AdditiveAttention" and translation["head"] == "LSTMDecoder"


# -- subprocesses, imports ----------------------------------------------------------------------------------------

def test_failed_child_reports_its_last_error_line_and_timeouts_kill(tmp_path):
    crash = run_child([sys.executable, "-c", "import sys; print('warning', file=sys.stderr); "
                                             "raise ValueError('bad option --x')"], tmp_path / "crash", 60, {})
    assert crash.returncode == 1 and crash.error_line() == "ValueError: bad option --x"
    assert crash.peak_rss_mb > 1 and crash.stderr_path.read_text().startswith("$ ")
    slow = run_child([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "slow", 1, {})
    assert slow.timed_out and slow.returncode != 0 and slow.wall_s < 30 and "timed out" in slow.error_line()


def test_import_quality_rows_once(tmp_path):
    quality = tmp_path / "quality.jsonl"
    quality.write_text("\n".join(json.dumps(r) for r in [
        {"subcommand": "fit", "model": "TokenTagging", "ckpt_path": None, "metrics": {"val/f1": 0.9}},
        {"subcommand": "test", "configs": ["configs/ner/conll2003_bilstm_crf.yaml"], "model": "TokenTagging",
         "ckpt_path": str(tmp_path / "gone" / "best.ckpt"), "metrics": {"test/f1": 0.85, "test/precision": 0.8}},
        {"subcommand": "test", "model": "TokenTagging", "metrics": {"test/f1": 0.8},
         "ckpt_path": "runs/quality/conll2003_bilstm_attention_crf/version_0/checkpoints/best-epoch08.ckpt"},
    ]) + "\n")
    rows = import_rows(quality, [])
    assert [r["entry"] for r in rows] == ["conll2003_bilstm_crf (quality run)",
                                          "conll2003_bilstm_attention_crf (quality run)"]
    assert rows[0]["main_value"] == 0.85 and rows[0]["status"] == "ok" and rows[0]["task"] == "ner"
    assert rows[0]["variant"]["head"] == "CRFTagger"  # from the config: the checkpoint is gone
    assert rows[1]["variant"]["attention"] == "MultiHeadSelfAttention"
    assert import_rows(quality, rows) == []  # importing again adds nothing


def test_an_imported_row_takes_the_dataset_of_the_spec_entry_with_its_config(tmp_path):
    quality = tmp_path / "quality.jsonl"
    row = {"subcommand": "test", "model": "SentenceClassification", "metrics": {"test/accuracy": 0.49}}
    quality.write_text("\n".join(json.dumps({**row, "configs": [config], "ckpt_path": str(tmp_path / f"{i}.ckpt")})
                                 for i, config in enumerate(["configs/sentiment/sst5_bilstm.yaml",
                                                             "configs/sentiment/sst2_bilstm.yaml"])) + "\n")
    spec = load_spec(repo_root() / "leaderboards" / "default.yaml", data_root="/data")
    sst5, sst2 = import_rows(quality, [], datasets=spec.datasets_by_config())
    assert (sst5["dataset"], sst2["dataset"]) == ("SST-5", "SST-2")
    assert [r["dataset"] for r in import_rows(quality, [])] == ["SST-2", "SST-2"]  # no spec: the task's default


@pytest.mark.parametrize("change, message", [
    ({"seed": [0]}, "field 'seed': expected a whole number, got [0]"),
    ({"metrics": [0.7]}, "field 'metrics': expected a mapping, got [0.7]"),
    ({"metrics": {"test/f1": "high"}}, "field 'metrics': test/f1 should be a number, got \"high\""),
    ({"variant": "crf"}, "field 'variant': expected a mapping, got \"crf\""),
    ({"dataset": None}, "field 'dataset': expected a string, got null"),
    ({"main_value": True}, "field 'main_value': expected a number, got true"),
])
def test_a_results_row_of_the_wrong_shape_is_a_one_line_error_naming_its_line(change, message, tmp_path, capsys):
    from seqlab.leaderboard.__main__ import main

    results = tmp_path / "rows.jsonl"
    results.write_text(json.dumps(make_row("a", 0, 0.8)) + "\n" + json.dumps({**make_row("b", 0, 0.7), **change})
                       + "\n", encoding="utf-8")
    spec = write_spec(tmp_path / "s.yaml", {"results": str(results), "markdown": str(tmp_path / "LB.md"),
                                            "csv": str(tmp_path / "lb.csv"), "plots": str(tmp_path / "plots"),
                                            "bench": None, "entries": []})
    with pytest.raises(SystemExit) as exit_:
        main([str(spec), "--render-only"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == f"seqlab leaderboard: error: {results}:2: {message}"


def test_bad_import_rows_and_output_paths_are_one_line_errors(tmp_path, capsys):
    from seqlab.leaderboard.__main__ import main

    quality = tmp_path / "quality.jsonl"
    quality.write_bytes(b'\xff{"cut short"\n' + json.dumps({"subcommand": "test", "ckpt_path": "x.ckpt", "model":
                        "TokenTagging", "metrics": [0.5]}).encode() + b"\n")
    results = tmp_path / "rows.jsonl"
    outputs = {"markdown": str(tmp_path / "LB.md"), "csv": str(tmp_path / "lb.csv"), "plots": str(tmp_path / "plots"),
               "bench": None, "entries": []}
    spec = write_spec(tmp_path / "s.yaml", {"results": str(results), **outputs})
    for args, message in (
        (["--import", str(quality)], f"{quality}:2: field 'metrics': expected a mapping, got [0.5]"),
        (["--results", str(tmp_path)], f"results {tmp_path}: is a folder; give a file"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main([str(spec), "--render-only", *args])
        assert exit_.value.code == 2
        assert capsys.readouterr().err.strip() == f"seqlab leaderboard: error: {message}"
    assert not results.exists()


def test_cli_dispatches_to_the_leaderboard(tmp_path, capsys):
    from seqlab.cli import main

    spec = write_spec(tmp_path / "s.yaml", {"entries": [
        {"name": "ner/a", "task": "ner", "config": "c.yaml", "train": {"max_time": "90s"}, "seeds": [0, 1]}]})
    main(["leaderboard", str(spec), "--dry-run"])
    assert "training budget: 3m00s over 2 runs" in capsys.readouterr().out


FAKE_SEQLAB = """import json, sys
args = sys.argv[1:]
assert args[:3] == ["-m", "seqlab.cli", "test"], args
value = lambda name: args[args.index(name) + 1]
meter = json.loads(next(a for a in args if a.startswith("--trainer.callbacks+=")).split("=", 1)[1])
stats = {"tokens": 400, "tokens_per_s": 2000.0, "device": "cpu"}
open(meter["init_args"]["output_path"], "w").write(json.dumps(stats))
with open(value("--results_path"), "a") as handle:
    handle.write(json.dumps({"subcommand": "test", "ckpt_path": value("--ckpt_path"),
                             "metrics": {"test/f1": 0.5, "test/precision": 0.4}}) + "\\n")
"""


def test_checkpoint_entry_tests_the_newest_best_checkpoint_of_a_directory(tmp_path):
    """The runner's plumbing for a test-only entry, with a stand-in for ``python -m seqlab.cli test``."""
    from seqlab.leaderboard.runner import Runner

    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    state = {"w": torch.zeros(3, 4), "b": torch.zeros(4)}
    hparams = {"_class_path": "seqlab.tasks.TokenTagging", "encoder": {"class_path": "seqlab.models.BiLSTMEncoder"},
               "attention": None, "head": {"class_path": "seqlab.models.SoftmaxTagger"}}
    torch.save({"state_dict": state, "hyper_parameters": hparams, "epoch": 4,
                "callbacks": {"Timer": {"time_elapsed": {"train": 12.5}}}}, folder / "best-epoch04.ckpt")
    torch.save({"state_dict": {}}, folder / "last.ckpt")
    fake = tmp_path / "fake_python.py"
    fake.write_text(FAKE_SEQLAB)
    spec = load_spec(write_spec(tmp_path / "s.yaml", {
        "results": str(tmp_path / "rows.jsonl"), "runs": str(tmp_path / "runs"), "entries": [
            {"name": "ner/ckpt", "task": "ner", "checkpoint": str(tmp_path / "run"), "data": str(tmp_path),
             "seeds": [3]},
            {"name": "ner/gone", "task": "ner", "checkpoint": str(tmp_path / "gone.ckpt")}]}))
    (tmp_path / "python").write_text(f"#!/bin/sh\nexec {sys.executable} {fake} \"$@\"\n")
    (tmp_path / "python").chmod(0o755)
    ok, gone = Runner(spec, python=str(tmp_path / "python")).run()
    assert ok["status"] == "ok", ok["error"]
    assert ok["checkpoint"] == str(folder / "best-epoch04.ckpt") and ok["params"] == 16 and ok["epochs"] == 4
    assert ok["main_value"] == 0.5 and ok["train_time_s"] == 12.5 and ok["infer_tokens_per_s"] == 2000.0
    assert ok["model_variant"] == "BiLSTMEncoder / none / SoftmaxTagger" and ok["seed"] == 3
    assert ok["train_wall_s"] is None and ok["test_wall_s"] > 0 and ok["peak_rss_mb"] > 0
    assert gone["status"] == "failed" and gone["error"].startswith("checkpoint not found")
    assert read_rows(tmp_path / "rows.jsonl") == [ok, gone]


# -- a real run ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_tiny_spec_runs_records_renders_and_appends(tmp_path, conll_slice, sst2_slice, monkeypatch):
    from seqlab.leaderboard import main

    monkeypatch.chdir(repo_root())
    out = tmp_path / "out"
    tiny = ["--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2",
            "--model.init_args.encoder.init_args.hidden_size", "16"]
    raw = {
        "title": "tiny", "results": str(out / "rows.jsonl"), "markdown": str(out / "LEADERBOARD.md"),
        "csv": str(out / "board.csv"), "plots": str(out / "plots"), "runs": str(out / "runs"),
        "defaults": {"seeds": [0], "train": {"max_time": "3m", "max_epochs": 1, "args": tiny}},
        "entries": [
            {"name": "ner/crf", "task": "ner", "config": "configs/ner/conll2003_bilstm_crf.yaml",
             "data": str(conll_slice)},
            {"name": "sentiment/attention", "task": "sentiment",
             "config": "configs/sentiment/sst2_bilstm_attention.yaml", "data": str(sst2_slice)},
            {"name": "ner/missing", "task": "ner", "config": "configs/ner/no_such_config.yaml",
             "data": str(conll_slice)},
        ]}
    spec = write_spec(tmp_path / "tiny.yaml", raw)
    main([str(spec)])

    rows = read_rows(out / "rows.jsonl")
    assert [(r["entry"], r["status"]) for r in rows] == [
        ("ner/crf", "ok"), ("sentiment/attention", "ok"), ("ner/missing", "failed")]
    ner, sentiment, missing = rows
    for row in (ner, sentiment):
        assert row["main_value"] == row["metrics"][row["main_metric"]] and 0 <= row["main_value"] <= 1
        checkpoint = torch.load(row["checkpoint"], map_location="cpu", weights_only=True)
        assert Path(row["checkpoint"]).name.startswith("best")
        assert row["params"] == sum(t.numel() for t in checkpoint["state_dict"].values())
        assert checkpoint["hyper_parameters"]["encoder"]["init_args"]["hidden_size"] == 16  # extra args applied
        assert row["train_tokens"] > 0 and row["train_tokens_per_s"] > 0 and row["infer_tokens_per_s"] > 0
        assert row["train_wall_s"] > row["train_time_s"] > 0 and row["test_wall_s"] > 0
        assert row["peak_rss_mb"] > 100 and row["seed"] == 0 and row["device"] == "cpu"
        assert row["torch_version"] == torch.__version__ and row["git_commit"]
        assert row["epochs"] == 0 and row["global_step"] == 3
    assert ner["variant"] == {"task_class": "TokenTagging", "encoder": "BiLSTMEncoder", "attention": "none",
                              "pooling": None, "head": "CRFTagger", "embedding": "WordEmbedding", "attends": False}
    assert ner["metrics"].keys() >= {"test/f1", "test/precision", "test/recall"}
    assert sentiment["variant"]["pooling"] == "SelfAttentivePooling" and sentiment["variant"]["attends"]
    split = TreebankPreTokenizer(lowercase=True).words  # the config's pre-tokenizer
    assert sentiment["test_tokens"] == sum(len(split(line.split("\t")[0]))
                                           for line in (sst2_slice / "test.tsv").read_text().splitlines()[1:])
    assert missing["error"].startswith("config not found") and missing["failed_stage"] == "fit"

    text = (out / "LEADERBOARD.md").read_text()
    ner_table = _table(text, "## NER: CoNLL-2003 English (test)")
    assert [r[1] for r in ner_table][-2:] == ["ner/crf", "ner/missing"]  # the model is far below the references
    assert ner_table[-1][3] == "**failed**" and "config not found" in ner_table[-1][-1]
    assert ner_table[-2][2] == "BiLSTMEncoder → CRFTagger" and ner_table[-2][3] == f"{ner['main_value'] * 100:.2f}"
    assert "sentiment/attention" in text and (out / "board.csv").is_file()
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == [
        "ner_conll-2003-english_test_attention.png", "ner_conll-2003-english_test_time.png",
        "sentiment_sst-2_test_attention.png", "sentiment_sst-2_test_time.png"]

    # re-run (the broken entry again): rows are appended, the earlier ones kept; the table shows the latest run
    with pytest.raises(SystemExit) as exited:  # every run of this invocation failed: exit status 1
        main([str(spec), "--only", "ner/missing"])
    assert exited.value.code == 1
    again = read_rows(out / "rows.jsonl")
    assert again[:3] == rows and [(r["entry"], r["status"]) for r in again[3:]] == [("ner/missing", "failed")]
    assert [r[1] for r in _table((out / "LEADERBOARD.md").read_text(), "## NER")][-2:] == ["ner/crf", "ner/missing"]


def test_benchmark_rows_become_a_section_with_the_newest_row_of_each_comparison(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    old = {"name": "train_step_x", "what": "Trainer vs raw loop", "seqlab": 900.0, "reference": 1000.0, "ratio": 0.9,
           "unit": "tokens/s", "reference_kind": "measured", "threads": 1, "load_1m": 2.5,
           "time": "2026-12-01T10:00:00"}
    new = {**old, "seqlab": 1010.0, "ratio": 1.01, "time": "2026-12-01T11:00:00"}
    quoted = {**old, "name": "vs_flair_quoted", "seqlab": 8600.0, "reference": 2300.0, "ratio": 3.74,
              "reference_kind": "quoted", "time": "2026-12-01T09:00:00"}
    (bench / "ner_speed.jsonl").write_text("\n".join(json.dumps(r) for r in (new, old, quoted)) + "\nnot json\n",
                                           encoding="utf-8")
    text = render_markdown([], tmp_path / "L.md", bench=bench)
    section = text[text.index("## Speed benchmarks"):]
    lines = [line for line in section.splitlines() if line.startswith("| ner_speed")]
    assert lines == [
        "| ner_speed | train_step_x | 1,010 | 1,000 | tokens/s | 1.010 | 1 | 2.5 | 2026-12-01T11:00:00 | "
        "Trainer vs raw loop |",
        "| ner_speed | vs_flair_quoted | 8,600 | 2,300 (quoted) | tokens/s | 3.740 | 1 | 2.5 | 2026-12-01T09:00:00 | "
        "Trainer vs raw loop |",
    ]
    assert "## Speed benchmarks" not in render_markdown([], tmp_path / "M.md", bench=tmp_path / "none")


def test_checkpoint_parameters_count_tied_weights_once(tmp_path):
    import torch

    from seqlab.leaderboard.rows import inspect_checkpoint

    embedding = torch.nn.Embedding(10, 4)
    output = torch.nn.Linear(4, 10)
    output.weight = embedding.weight  # tied: one tensor under two names
    state = {"embedding.weight": embedding.weight.data, "output.weight": output.weight.data,
             "output.bias": output.bias.data}
    torch.save({"state_dict": state, "hyper_parameters": {}}, tmp_path / "tied.ckpt")
    assert inspect_checkpoint(tmp_path / "tied.ckpt")["params"] == 40 + 10


def test_git_commit_is_dirty_only_for_code_changes(tmp_path):
    """Rows appended to results/ during a run do not mark the commit dirty; a changed package file does."""
    from seqlab.leaderboard.rows import git_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "seqlab").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "seqlab" / "model.py").write_text("x = 1\n")
    (tmp_path / "results" / "rows.jsonl").write_text("{}\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    clean = git_commit(tmp_path)
    assert clean and not clean.endswith("-dirty")
    (tmp_path / "results" / "rows.jsonl").write_text("{}\n{}\n")
    assert git_commit(tmp_path) == clean
    (tmp_path / "seqlab" / "model.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == clean + "-dirty"


# ------------------------------------------------------------------ comparisons over seeds (multi-task vs single)
def _comparison_row(config: str, model: str, seed: int, metrics: dict, subcommand: str = "test") -> dict:
    return {"subcommand": subcommand, "configs": [config], "model": model, "metrics": metrics,
            "comparison": "mt_vs_single", "seed": seed}


def test_comparison_tables_give_mean_and_sample_std_over_seeds(tmp_path, capsys):
    from seqlab.leaderboard.comparisons import comparison_tables, main

    multi = [(0.88, 0.95), (0.89, 0.94), (0.87, 0.96)]  # (NER F1, POS accuracy) per seed
    single = [0.90, 0.91, 0.89]
    rows = [_comparison_row("configs/ner/single.yaml", "TokenTagging", 0, {"test/f1": 0.10}, "fit")]  # not a test row
    for seed, (ner, pos) in enumerate(multi):
        rows.append(_comparison_row("configs/multitask/mt.yaml", "MultiTask", seed,
                                    {"test/ner/f1": ner, "test/ner/loss": 3.0, "test/pos/accuracy": pos}))
    for seed, ner in enumerate(single):
        rows.append(_comparison_row("configs/ner/single.yaml", "TokenTagging", seed,
                                    {"test/f1": ner, "test/f1_PER": 0.5, "test/precision": 0.2}))
    markdown = comparison_tables(rows)
    lines = markdown.splitlines()
    assert lines[0] == "### mt_vs_single"
    assert lines[2] == "| model | seeds | ner f1 | pos accuracy |"
    # NER F1 of the multi-task arm: mean 88.00, sample std sqrt(((0)^2 + 1^2 + 1^2) / 2) = 1.00 (percent points)
    assert lines[4] == "| mt | 0, 1, 2 | 88.00 ± 1.00 (88.00, 89.00, 87.00) | 95.00 ± 1.00 (95.00, 94.00, 96.00) |"
    assert lines[5] == "| single | 0, 1, 2 | 90.00 ± 1.00 (90.00, 91.00, 89.00) |  |"

    path, out = tmp_path / "rows.jsonl", tmp_path / "table.md"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([str(path), "--out", str(out)]) == 0
    assert out.read_text().endswith(markdown) and markdown in capsys.readouterr().out
    unseeded = {k: v for k, v in rows[1].items() if k != "seed"}
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, unseeded]))
    assert main([str(path)]) == 2  # a comparison test row without its seed
    assert "mt (mt_vs_single) has no integer 'seed'" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err


def test_a_comparison_row_of_the_wrong_shape_is_a_one_line_error_naming_its_line(tmp_path, capsys):
    from seqlab.leaderboard.comparisons import main

    path = tmp_path / "rows.jsonl"
    rows = [_comparison_row("configs/ner/single.yaml", "TokenTagging", 0, {"test/f1": 0.9}),
            _comparison_row("configs/ner/single.yaml", "TokenTagging", 1, {"test/f1": "0.91"})]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([str(path)]) == 2
    assert capsys.readouterr().err.strip() == (f"seqlab: {path}:2: field 'metrics': expected a mapping of metric names "
                                               f"to numbers, got {{\"test/f1\": \"0.91\"}}")


def test_the_spec_comparisons_become_a_leaderboard_section_with_their_notes(tmp_path, capsys):
    from seqlab.leaderboard import main

    rows = []
    for seed, (ner, single) in enumerate([(0.88, 0.90), (0.89, 0.92)]):
        note = f"20 min each, side by side, --seed_everything {seed}"
        rows.append({**_comparison_row("configs/multitask/mt.yaml", "MultiTask", seed, {"test/ner/f1": ner}),
                     "note": note})
        rows.append({**_comparison_row("configs/ner/single.yaml", "TokenTagging", seed, {"test/f1": single}),
                     "note": note})
    comparisons = tmp_path / "comparisons.jsonl"
    comparisons.write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = {"results": str(tmp_path / "rows.jsonl"), "markdown": str(tmp_path / "L.md"), "csv": str(tmp_path / "L.csv"),
           "plots": str(tmp_path / "plots"), "bench": None, "comparisons": str(comparisons),
           "entries": [{"name": "ner/x", "task": "ner", "config": "configs/ner/conll2003_bilstm_crf.yaml",
                        "train": {"max_time": "1m"}}]}
    main([str(write_spec(tmp_path / "s.yaml", raw)), "--render-only"])
    text = (tmp_path / "L.md").read_text()
    section = text[text.index("## Multi-task vs single-task models"):].splitlines()
    start = section.index("### mt_vs_single")
    # NER F1: mean (88 + 89) / 2 = 88.50, sample std sqrt(2 * 0.5^2 / 1) = 0.71; single: 91.00 +- 1.41
    assert section[start + 2:start + 9] == [
        "| model | seeds | ner f1 |", "| --- | --- | --- |", "| mt | 0, 1 | 88.50 ± 0.71 (88.00, 89.00) |",
        "| single | 0, 1 | 91.00 ± 1.41 (90.00, 92.00) |", "",
        "- 20 min each, side by side, --seed_everything 0", "- 20 min each, side by side, --seed_everything 1"]
    assert f"From `{comparisons.as_posix()}`" in "\n".join(section)

    comparisons.unlink()
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "s.yaml"), "--render-only"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"seqlab leaderboard: error: comparisons: {comparisons}: no such file"]


def test_the_default_spec_renders_the_committed_multitask_comparisons():
    from seqlab.leaderboard.comparisons import comparison_section

    spec = load_spec(repo_root() / "leaderboards" / "default.yaml", data_root="/data")
    assert spec.comparisons == Path("results/multitask_comparisons.jsonl")
    section = "\n".join(comparison_section(repo_root() / spec.comparisons))
    assert "### ner_pos_chunk_vs_ner" in section and "### ner_sst2_vs_ner_and_sst2" in section
    assert "| conll2003_ner_pos_chunk | 0, 1, 2 |" in section and "| conll2003_bilstm_crf_glove | 0, 1, 2 |" in section


def test_every_line_lists_the_commands_that_made_it(tmp_path):
    from seqlab.leaderboard import main
    from seqlab.leaderboard.importer import import_commands

    base = ["--config", "configs/ner/conll2003_bilstm_crf.yaml", "--data.init_args.path", "../shared/data/ner x"]
    quality = tmp_path / "quality.jsonl"
    raw = [{"subcommand": "fit", "configs": base[1:2], "argv": ["fit", *base, "--results_path", "q.jsonl"],
            "note": "seed 0, 40 min"},
           {"subcommand": "test", "configs": base[1:2], "model": "TokenTagging", "metrics": {"test/f1": 0.91},
            "argv": ["test", *base, "--ckpt_path", "best", "--results_path", "q.jsonl"], "ckpt_path": "runs/a.ckpt"},
           {"subcommand": "test", "model": "TokenTagging", "metrics": {"test/f1": 0.90}, "ckpt_path": "runs/b.ckpt"}]
    two = ["configs/ner/two_seeds.yaml"]
    seed1 = ["--config", *two, "--seed_everything", "1"]
    raw += [{"subcommand": "test", "configs": two, "model": "TokenTagging", "metrics": {"test/f1": 0.88},
             "argv": ["test", "--config", *two, "--ckpt_path", "c"], "ckpt_path": "c", "note": "first"},
            {"subcommand": "fit", "configs": two, "argv": ["fit", *seed1, "--results_path", "q"]},
            {"subcommand": "test", "configs": two, "model": "TokenTagging",
             "metrics": {"test/f1": 0.86}, "argv": ["test", *seed1, "--ckpt_path", "best", "--results_path", "q"],
             "ckpt_path": "d"}]
    quality.write_text("".join(json.dumps(r) + "\n" for r in raw))
    results = tmp_path / "rows.jsonl"
    results.write_text(json.dumps(make_row("ner/crf", 0, 0.89, spec="s.yaml")) + "\n")
    spec = write_spec(tmp_path / "s.yaml", {
        "results": str(results), "markdown": str(tmp_path / "L.md"), "csv": str(tmp_path / "L.csv"),
        "plots": str(tmp_path / "plots"), "bench": None, "import": [str(quality)],
        "entries": [{"name": "ner/crf", "task": "ner", "config": "c.yaml", "train": {"max_time": "1m"}}]})
    main([str(spec), "--render-only"])

    commands = import_commands(quality)
    assert sorted(commands) == sorted(r["run_id"] for r in import_rows(quality, []))  # the same run ids
    text = (tmp_path / "L.md").read_text()
    section = text[text.index("## How each line was made"):].split("\n## ")[0].splitlines()
    made = section[section.index("### NER: CoNLL-2003 English (test)") + 2:]
    fit = "seqlab fit --config configs/ner/conll2003_bilstm_crf.yaml --data.init_args.path '../shared/data/ner x' " \
          "--results_path q.jsonl"
    assert made[:6] == [
        f"- conll2003_bilstm_crf (quality run): `{fit}`, then `seqlab test` with the same options and "
        "`--ckpt_path best`. seed 0, 40 min",
        "- b (quality run): the command was not recorded (tested checkpoint `runs/b.ckpt`)",
        "- ner/crf: `seqlab leaderboard s.yaml --only ner/crf` (seeds 0)",
        "- two_seeds (quality run), 2 runs:",  # mean 0.87: last
        "  - seed 0: `seqlab test --config configs/ner/two_seeds.yaml --ckpt_path c`. first",
        "  - seed 1: `seqlab fit --config configs/ner/two_seeds.yaml --seed_everything 1 --results_path q`, then "
        "`seqlab test` with the "
        "same options and `--ckpt_path best`"]


def test_an_imported_row_keeps_its_seed_so_two_seeds_of_one_config_make_one_line_with_a_spread(tmp_path):
    quality = tmp_path / "quality.jsonl"
    base = {"subcommand": "test", "model": "FrameClassification",
            "configs": ["configs/speech/timit_sample_bilstm.yaml"]}
    runs = [([], 0.70), (["--seed_everything", "1"], 0.68), (["--seed_everything=2"], 0.72),
            (["--seed_everything", "true"], 0.5)]
    quality.write_text("".join(json.dumps({**base, "argv": ["test", *argv], "ckpt_path": str(tmp_path / f"{i}.ckpt"),
                                           "metrics": {"test/frame_accuracy": value}}) + "\n"
                               for i, (argv, value) in enumerate(runs)))
    rows = import_rows(quality, [])
    assert [r["seed"] for r in rows] == [0, 1, 2, None]  # no option: Lightning's seed 0; "true": a random seed
    (line,) = [a for a in aggregate(rows[:3]) if a.entry == "timit_sample_bilstm (quality run)"]
    assert line.seeds == [0, 1, 2] and line.main == pytest.approx((0.70, 0.02, 3))
