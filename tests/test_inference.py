"""``seqlab.load(path).predict(inputs)``: the Python API gives, without a Trainer, a config or the training data, the
records ``seqlab predict`` writes, for every task, from a checkpoint moved to another directory."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import seqlab
from seqlab import SeqlabError
from seqlab.encoders import TreebankPreTokenizer
from tests.conftest import repo_root, require_shared_data, run_readme_python
from tests.test_checkpoint_compat import as_before, same

FIXTURES = repo_root() / "tests" / "fixtures" / "e463e89"


def inputs_of(task: str) -> list[str]:
    lines = (FIXTURES / f"{task}_input.txt").read_text().splitlines()
    return [str(require_shared_data() / line) for line in lines] if task == "speech" else lines


def expected(task: str) -> list[dict]:
    records = [json.loads(line) for line in (FIXTURES / f"{task}_predictions.jsonl").read_text().splitlines()]
    if task == "speech":  # ids are the audio paths as given
        for record in records:
            record["id"] = str(require_shared_data() / record["id"])
    return records


@pytest.mark.parametrize("task", ["ner", "sentiment", "translation", "speech"])
def test_load_predicts_what_the_cli_predicts_from_a_moved_checkpoint(task, tmp_path):
    moved = tmp_path / "elsewhere" / "model.ckpt"
    moved.parent.mkdir()
    shutil.copy(FIXTURES / f"{task}.ckpt", moved)
    model = seqlab.load(moved, device="cpu")
    inputs = inputs_of(task)
    for batch_size in (1, 7):  # batching and length sorting change no record (beyond float rounding) nor the order
        same(as_before(task, model.predict(inputs, batch_size=batch_size)), expected(task), task)
    assert model.predict([]) == []


def test_ner_entities_point_into_the_raw_text():
    model = seqlab.load(FIXTURES / "ner.ckpt")
    model.data.pre_tokenizer = TreebankPreTokenizer(ptb_quotes=False)  # raw text, split as CoNLL is
    text = "Peter Blackburn, of the European Commission, met Germany's minister in Brussels."
    (record,) = model.predict([text])
    assert record["text"] == text and record["tokens"][:3] == ["Peter", "Blackburn", ","]
    assert "Germany" in record["tokens"] and "'s" in record["tokens"]
    assert record["entities"], record["tags"]
    for entity in record["entities"]:
        assert text[entity["start"]:entity["end"]] == entity["text"]
        assert entity["text"].split() == " ".join(record["tokens"][entity["token_start"]:entity["token_end"]]).split()


def test_bad_inputs_are_one_line_errors(tmp_path):
    model = seqlab.load(FIXTURES / "sentiment.ckpt")
    with pytest.raises(SeqlabError, match="input 2: empty text"):
        model.predict(["fine", "   "])
    with pytest.raises(TypeError, match="a list of inputs"):
        model.predict("a single string")
    with pytest.raises(SeqlabError, match="checkpoint not found"):
        seqlab.load(tmp_path / "missing.ckpt")
    (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(SeqlabError, match="cannot read checkpoint"):
        seqlab.load(tmp_path / "broken.ckpt")
    assert model.labels == ["negative", "positive"]


def test_bad_arguments_and_inputs_are_one_line_errors(tmp_path):
    model = seqlab.load(FIXTURES / "sentiment.ckpt")
    for call, message in (
        (lambda: model.predict(None), "predict takes a list of inputs (texts, or audio paths for speech), got "
                                      "NoneType"),
        (lambda: model.predict(["fine", None]), "input 2: expected a text (or an audio path), got NoneType"),
        (lambda: model.predict(["fine", 3]), "input 2: expected a text (or an audio path), got int"),
        (lambda: model.predict(["fine \ud800"]), "input 1: character 6 is '\\ud800', a lone surrogate, not Unicode "
                                                 "text"),
        (lambda: model.predict(["fine"], batch_size="4"), "batch_size must be a whole number of at least 1, got '4'"),
        (lambda: model.predict(["fine"], batch_size=None), "batch_size must be a whole number of at least 1, got None"),
        (lambda: seqlab.load(FIXTURES / "ner.ckpt").predict(["Peter"], marginals="no"),
         "predict: marginals must be True or False, got 'no'"),
        (lambda: seqlab.load(None), "seqlab.load takes the path of a checkpoint, got NoneType"),
        (lambda: seqlab.load(FIXTURES / "sentiment.ckpt", device="gpu"),
         "device gpu: not a torch device (cpu, cuda, cuda:1, mps)"),
        (lambda: seqlab.load(FIXTURES / "sentiment.ckpt", device="meta"), "device meta: holds no data, so no model"),
    ):
        with pytest.raises(SeqlabError) as error:
            call()
        assert str(error.value).startswith(message), str(error.value)
    assert model.predict(text for text in ["fine", "bad"]) == model.predict(["fine", "bad"])  # any iterable
    torch.save({"hyper_parameters": {"_class_path": "os.system"}, "state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(SeqlabError, match="foreign.ckpt: no seqlab task class recorded in the checkpoint"):
        seqlab.load(tmp_path / "foreign.ckpt")
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(SeqlabError) as error:
        seqlab.load(tmp_path / "list.ckpt")
    assert str(error.value) == (f"cannot read checkpoint {tmp_path / 'list.ckpt'}: it holds a list, not a "
                                "checkpoint's dictionary")
    without_data = torch.load(FIXTURES / "ner.ckpt", weights_only=True)
    del without_data["datamodule_hyper_parameters"]
    torch.save(without_data, tmp_path / "no-data.ckpt")
    with pytest.raises(SeqlabError) as error:
        seqlab.load(tmp_path / "no-data.ckpt")
    assert str(error.value) == "the checkpoint records no seqlab data module (was it written by `seqlab fit`?)"
    speech = seqlab.load(FIXTURES / "speech.ckpt")
    with pytest.raises(SeqlabError) as error:  # "" used to be the working directory, searched for audio
        speech.predict([str(FIXTURES / "speech_input.txt"), "  "])
    assert str(error.value) == "input 2: empty path (an audio file, or a folder of them)"


def test_readme_python_api_example_runs(tmp_path, monkeypatch, capsys):
    run_readme_python("## Python API", "seqlab.load", FIXTURES / "ner.ckpt", tmp_path, monkeypatch)
    printed = capsys.readouterr().out
    assert "'type':" in printed and "'start':" in printed


def test_optional_outputs_agree_with_the_records():
    ner = seqlab.load(FIXTURES / "ner.ckpt")
    assert ner.optional_outputs == ["marginals"]
    plain = ner.predict(inputs_of("ner"))
    detailed = ner.predict(inputs_of("ner"), batch_size=4, marginals=True)
    assert not any("marginals" in record for record in plain)
    single_token_entities = 0
    for before, record in zip(plain, detailed):
        assert record["entities"] == before["entities"] and len(record["marginals"]) == len(record["tokens"])
        for token in record["marginals"]:
            assert sum(token.values()) == pytest.approx(1.0, abs=1e-4)
        for entity in record["entities"]:
            assert 0.0 <= entity["confidence"] <= 1.0
            if entity["token_end"] - entity["token_start"] == 1:  # BIOES: P(S-X at that token) is the entity's
                tag = record["tags"][entity["token_start"]]
                assert entity["confidence"] == pytest.approx(record["marginals"][entity["token_start"]][tag], abs=1e-4)
                single_token_entities += 1
    assert single_token_entities > 0
    with pytest.raises(SeqlabError, match="no output posteriors for TokenTagging"):
        ner.predict(["Peter"], posteriors=True)
    assert ner.task.predict_marginals is False  # an option of one call only

    speech = seqlab.load(FIXTURES / "speech.ckpt")
    (record,) = speech.predict(inputs_of("speech")[:1], posteriors=True)
    assert len(record["posteriors"]) == len(record["frames"])
    for label, posterior in zip(record["frames"], record["posteriors"]):
        assert max(posterior, key=posterior.get) == label and sum(posterior.values()) == pytest.approx(1.0, abs=1e-4)

    translation = seqlab.load(FIXTURES / "translation.ckpt")
    for record in translation.predict(inputs_of("translation")[:3], attention=True):
        assert record["log_prob"] <= 0.0 and len(record["attention"]) == len(record["tokens"])
        for weights in record["attention"]:
            assert sum(weights) == pytest.approx(1.0, abs=1e-3)
