"""Plain-torch networks under the tasks, and MultiTask: losses equal the tasks', a step trains the shared body from
every task and each head from its own only, per-task metric keys, DDP validation, checkpoint round trips."""

from __future__ import annotations

import shlex
from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import yaml
from pytorch_lightning.utilities import CombinedLoader

import seqlab
from seqlab import SeqlabError
from seqlab.data_modules import MultiTaskData
from seqlab.inference import MultiTaskPredictor

from seqlab.models import (
    BiLSTMEncoder,
    CharBiLSTM,
    CRFTagger,
    MultiHeadSelfAttention,
    SelfAttentivePooling,
    WordEmbedding,
)
from seqlab.tasks import Classification, MultiTask, SentenceClassification, SpanTagging, TokenTagging, WordTagging
from tests.cli_helpers import CONFIGS, read_rows
from tests.cli_helpers import seqlab as seqlab_command
from tests.conftest import repo_root, require_shared_data
from tests.tasks.batches import Batches
from tests.tasks.test_sentence_classification import LABELS as SENTIMENT
from tests.tasks.test_sentence_classification import make_batch as sentence_batch
from tests.tasks.test_token_tagging import LABELS as ENTITIES
from tests.tasks.test_token_tagging import make_batch as token_batch

POS = ["NN", "VB", "DT", "JJ"]
SMALL = dict(word_embedding=partial(WordEmbedding, embedding_dim=6), encoder=partial(BiLSTMEncoder, hidden_size=8))


def pos_batch(generator):
    batch = token_batch(generator)
    batch["tag_ids"] = torch.randint(0, len(POS), batch["mask"].shape, generator=generator) * batch["mask"]
    return batch


def multitask(**kwargs) -> MultiTask:
    tasks = {"ner": SpanTagging(tagger=CRFTagger, attention=partial(MultiHeadSelfAttention, num_heads=2)),
             "pos": WordTagging(loss_weight=0.5),
             "sentiment": Classification(pooling=partial(SelfAttentivePooling, attention_size=5, hops=2),
                                         class_weights=[1.0, 2.0, 0.5])}
    return MultiTask(tasks, vocab_size=40, task_labels={"ner": ENTITIES, "pos": POS, "sentiment": SENTIMENT},
                     embedding_dropout=0.0, **SMALL, **kwargs)


def tagged(batch: dict, task: str) -> dict:
    return {**batch, "task": task}


# ----------------------------------------------------------------------------- the plain network is the task's loss
def test_network_loss_is_the_token_tagging_training_loss():
    generator = torch.Generator().manual_seed(0)
    task = TokenTagging(40, ENTITIES, char_vocab_size=20, char_encoder=partial(CharBiLSTM), **SMALL)
    batch = token_batch(generator)
    torch.manual_seed(3)
    step = task.training_step(batch, 0)
    torch.manual_seed(3)
    plain = task.model.loss(task.model(batch), batch)
    torch.manual_seed(3)  # the network's loss is the CRF's mean negative log-likelihood of the gold tags
    reference = task.model.head.tagger.crf.nll(task.model(batch), batch["tag_ids"], batch["mask"]).mean()
    assert torch.equal(step, plain) and torch.allclose(plain, reference)


def test_network_loss_is_the_sentence_classification_training_loss_with_penalty_and_class_weights():
    generator = torch.Generator().manual_seed(0)
    task = SentenceClassification(40, SENTIMENT, pooling=partial(SelfAttentivePooling, attention_size=5, hops=3,
                                                                 penalty_weight=0.5),
                                  class_weights=[1.0, 2.0, 0.5], **SMALL)
    batch = sentence_batch(generator)
    torch.manual_seed(3)
    step = task.training_step(batch, 0)
    torch.manual_seed(3)
    output = task.model(batch)
    plain = task.model.loss(output, batch)
    reference = F.cross_entropy(output.logits, batch["label_ids"], weight=torch.tensor([1.0, 2.0, 0.5]))
    assert output.pooled.penalty is not None and output.pooled.penalty > 0
    assert torch.equal(step, plain) and torch.allclose(plain, reference + output.pooled.penalty)


# ----------------------------------------------------------------------------- MultiTask
def test_a_step_trains_the_body_from_every_task_and_each_head_from_its_own_only():
    generator = torch.Generator().manual_seed(0)
    model = multitask()
    batches = {"ner": token_batch(generator), "pos": pos_batch(generator), "sentiment": sentence_batch(generator)}
    body = dict(model.model.body.named_parameters())
    for name, batch in batches.items():
        model.zero_grad(set_to_none=True)
        model.training_step(tagged(batch, name), 0).backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in body.values()), name
        for head_name, head in model.model.heads.items():
            grads = [p.grad for p in head.parameters()]
            if head_name == name:
                assert all(g is not None for g in grads), name
            else:
                assert all(g is None for g in grads), (name, head_name)


def test_the_step_loss_is_the_weighted_loss_of_the_task_head():
    generator = torch.Generator().manual_seed(0)
    model = multitask()
    batch = pos_batch(generator)
    torch.manual_seed(1)
    step = model.training_step(tagged(batch, "pos"), 0)
    torch.manual_seed(1)
    emissions = model.model.heads["pos"](model.model.body(batch))  # (B, T, K)
    # the softmax tagger's loss: cross-entropy summed over the real tokens, averaged over the sentences
    nll = F.cross_entropy(emissions[batch["mask"]], batch["tag_ids"][batch["mask"]], reduction="sum")
    assert torch.allclose(step, 0.5 * nll / batch["mask"].shape[0])


def test_tasks_of_the_model_and_the_data_must_agree():
    with pytest.raises(ValueError, match="differ"):
        MultiTask({"ner": SpanTagging()}, vocab_size=10, task_labels={"pos": POS})
    with pytest.raises(ValueError, match="monitor_task 'chunk' is not a task"):
        MultiTask({"ner": SpanTagging()}, vocab_size=10, task_labels={"ner": ENTITIES}, monitor_task="chunk")


def evaluation_loader(generator, tasks=("ner", "pos", "sentiment")) -> CombinedLoader:
    makers = {"ner": token_batch, "pos": pos_batch, "sentiment": sentence_batch}
    return CombinedLoader({name: Batches([tagged(makers[name](generator), name) for _ in range(2)])
                           for name in tasks}, mode="sequential")


def test_validation_logs_each_task_metrics_under_its_name_and_they_equal_the_metrics_by_hand(tmp_path):
    generator = torch.Generator().manual_seed(0)
    model = multitask()
    loader = evaluation_loader(generator)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    results = trainer.validate(model, dataloaders=loader, verbose=False)  # one dict per task's loader
    metrics = {key: value for result in results for key, value in result.items()}
    assert set(metrics) == {"val/ner/loss", "val/ner/precision", "val/ner/recall", "val/ner/f1",
                            "val/pos/loss", "val/pos/accuracy",
                            "val/sentiment/loss", "val/sentiment/accuracy", "val/sentiment/f1"}
    assert model.monitor == "val/ner/f1"
    model.eval()
    # POS accuracy by hand over the same batches (the loader made two ner batches first, then two pos batches)
    generator = torch.Generator().manual_seed(0)
    batches = [token_batch(generator) for _ in range(2)] + [pos_batch(generator) for _ in range(2)]
    correct = total = 0
    with torch.no_grad():
        for batch in batches[2:]:
            predicted = model.model.heads["pos"].tagger.decode(model(tagged(batch, "pos")), batch["mask"])
            correct += int((predicted == batch["tag_ids"])[batch["mask"]].sum())
            total += int(batch["mask"].sum())
    assert metrics["val/pos/accuracy"] == pytest.approx(correct / total, abs=1e-6)


def test_training_logs_each_task_loss_as_its_batch_weighted_epoch_mean(tmp_path):
    generator = torch.Generator().manual_seed(0)
    model = multitask(optimizer=partial(torch.optim.SGD, lr=0.0))  # the weights stay those of the losses by hand
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    makers = {"ner": token_batch, "pos": pos_batch, "sentiment": sentence_batch}
    order = ["ner", "pos", "ner", "sentiment", "pos", "ner"]
    batches = [tagged(makers[name](generator), name) for name in order]
    batches[2] = {key: value[:2] if torch.is_tensor(value) else value for key, value in batches[2].items()}
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, max_epochs=1,
                         enable_checkpointing=False, limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(model, train_dataloaders=Batches(batches))
    model.eval()
    with torch.no_grad():
        for name in ("ner", "pos", "sentiment"):
            mine = [batch for batch in batches if batch["task"] == name]
            sizes = [batch["mask"].shape[0] for batch in mine]
            losses = [float(model.model.loss(model(batch), batch, name)) * size for batch, size in zip(mine, sizes)]
            assert float(trainer.callback_metrics[f"train/{name}/loss"]) == pytest.approx(sum(losses) / sum(sizes),
                                                                                          rel=1e-5)


def test_predict_gives_each_task_its_records():
    generator = torch.Generator().manual_seed(0)
    model = multitask().eval()
    with torch.no_grad():
        ner = model.predict_step(tagged(token_batch(generator), "ner"))
        pos = model.predict_step(tagged(pos_batch(generator), "pos"))
        sentiment = model.predict_step(tagged(sentence_batch(generator), "sentiment"))
    assert {r["task"] for r in ner} == {"ner"} and all(set(r["tags"]) <= set(ENTITIES) for r in ner)
    assert all(r["entities"] == [] and set(r["tags"]) <= set(POS) for r in pos)
    assert all(r["task"] == "sentiment" and r["label"] in SENTIMENT for r in sentiment)
    assert all(sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5) for r in sentiment)


# ----------------------------------------------------------------------------- through the CLI, on real data
def tiny_recipe(tmp_path: Path, conll: Path) -> Path:
    """NER + POS + chunks of a CoNLL-2003 slice (its four columns) under a small shared BiLSTM."""
    span = {"class_path": "seqlab.tasks.SpanTagging"}
    config = {
        "model": {"class_path": "seqlab.tasks.MultiTask", "init_args": {
            "objectives": {"ner": span, "pos": {"class_path": "seqlab.tasks.WordTagging"}, "chunk": span},
            "word_embedding": {"class_path": "seqlab.models.WordEmbedding", "init_args": {"embedding_dim": 16}},
            "char_encoder": {"class_path": "seqlab.models.CharBiLSTM",
                             "init_args": {"embedding_dim": 8, "hidden_size": 8}},
            "encoder": {"class_path": "seqlab.models.BiLSTMEncoder", "init_args": {"hidden_size": 16}},
            "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.01}}}},
        "data": {"class_path": "seqlab.data_modules.MultiTaskData", "init_args": {
            "tasks": {name: {"class_path": "seqlab.data_modules.TokenClassificationData",
                             "init_args": {"path": str(conll), "tag_column": column, "batch_size": 32,
                                           **({"tag_format": "plain"} if name == "pos" else {})}}
                      for name, column in (("ner", 3), ("pos", 1), ("chunk", 2))},
            "sampling": {"class_path": "seqlab.data_modules.Uniform"}, "steps_per_epoch": 90}},
        "trainer": {"max_epochs": 2, "enable_progress_bar": False, "default_root_dir": str(tmp_path),
                    "logger": {"class_path": "pytorch_lightning.loggers.TensorBoardLogger",
                               "init_args": {"save_dir": str(tmp_path / "runs"), "name": "multitask"}}},
    }
    path = tmp_path / "multitask.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def sentences(path: Path) -> list[list[str]]:
    return [block.splitlines() for block in path.read_text(encoding="utf-8").split("\n\n") if block.strip()]


@pytest.fixture(scope="module")
def conll_pos_slice(tmp_path_factory, conll_slice) -> Path:
    """The CoNLL slice, its validation and test sentences kept where every POS tag occurs in its training slice (a
    tag unseen in training is an input error)."""
    target = tmp_path_factory.mktemp("conll_pos_slice")
    train = (conll_slice / "train.txt").read_text(encoding="utf-8")
    (target / "train.txt").write_text(train, encoding="utf-8")
    known = {line.split()[1] for block in sentences(conll_slice / "train.txt") for line in block}
    for name in ("valid.txt", "test.txt"):
        kept = [block for block in sentences(conll_slice / name) if all(line.split()[1] in known for line in block)]
        (target / name).write_text("\n\n".join("\n".join(block) for block in kept) + "\n", encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def trained(tmp_path_factory, conll_pos_slice):
    """A tiny multi-task model fitted on the slice through the CLI: (its folder, config, last checkpoint)."""
    folder = tmp_path_factory.mktemp("multitask_fit")
    config = tiny_recipe(folder, conll_pos_slice)
    fit = seqlab_command("fit", "--config", str(config), "--results_path", str(folder / "fit.jsonl"))
    assert fit.returncode == 0, fit.stderr[-4000:]
    return folder, config, next((folder / "runs").rglob("last.ckpt"))


@pytest.mark.slow
def test_fit_logs_every_task_and_a_loaded_checkpoint_predicts_each_task_as_the_trained_model(trained):
    folder, config, last = trained
    (row,) = read_rows(folder / "fit.jsonl")
    for key in ("val/ner/f1", "val/ner/precision", "val/pos/accuracy", "val/chunk/f1", "val/chunk/loss"):
        assert key in row["metrics"], key
    assert row["metrics"]["val/pos/accuracy"] > 0.4  # 60 POS steps: well above the majority tag (NNP, 23 %)
    texts = ["EU rejects German call to boycott British lamb .", "Peter Blackburn", "The European Commission said"]
    loaded = seqlab.load(last)
    assert isinstance(loaded, MultiTaskPredictor) and loaded.tasks == ["ner", "pos", "chunk"]
    everything = loaded.predict(texts)
    # the same weights and encoders in this process, built from the checkpoint by Lightning and the data module
    task = MultiTask.load_from_checkpoint(last, map_location="cpu", weights_only=False)
    data = MultiTaskData.from_checkpoint(last)
    again = MultiTaskPredictor(task, data)
    for name in loaded.tasks:
        records = loaded.predict(texts, task=name)
        assert records == again.predict(texts, task=name)
        assert [{k: v for k, v in r.items() if k != "task"} for r in records] == [e[name] for e in everything]
        assert all(len(r["tags"]) == len(r["tokens"]) for r in records)
        assert all(set(r["tags"]) <= set(loaded.labels[name]) for r in records)
    assert any(r["entities"] for r in loaded.predict(texts, task="chunk"))  # noun phrases found
    with pytest.raises(SeqlabError, match="no task 'sentiment'"):
        loaded.predict(texts, task="sentiment")


@pytest.mark.slow
def test_ddp_validation_of_a_multitask_model_equals_one_process(trained):
    folder, config, last = trained
    results = folder / "validate.jsonl"
    for extra in ([], ["--config", str(CONFIGS / "trainer" / "ddp_cpu.yaml")]):
        run = seqlab_command("validate", "--config", str(config), *extra, "--ckpt_path", str(last), "--trainer.logger",
                     "false", "--results_path", str(results))
        assert run.returncode == 0, run.stderr[-4000:]
    single, double = read_rows(results)
    assert single["world_size"] == 1 and double["world_size"] == 2
    keys = [key for key in single["metrics"] if key.startswith("val/") and not key.endswith("/loss")]
    assert {"val/ner/f1", "val/pos/accuracy", "val/chunk/f1"} <= set(keys)
    for key in keys:  # every validation sentence of every task counted once, on 1 process or 2
        assert single["metrics"][key] == pytest.approx(double["metrics"][key], abs=1e-6), key


README_LINES = [line.strip() for line in (repo_root() / "README.md").read_text(encoding="utf-8").splitlines()
                if line.strip().startswith("seqlab fit --config configs/multitask/")]


def test_the_readme_gives_one_line_per_recipe():
    recipes = sorted(f"configs/multitask/{p.name}" for p in (CONFIGS / "multitask").glob("*.yaml"))
    assert sorted(line.split()[3] for line in README_LINES) == recipes


@pytest.mark.slow
@pytest.mark.parametrize("line", README_LINES, ids=lambda line: line.split("/")[-1].split()[0])
def test_readme_recipe_line_trains_two_steps_on_the_shared_data(line, tmp_path):
    require_shared_data("ner/conll2003/original")
    require_shared_data("sentiment/sst2")
    args = shlex.split(line)[1:]  # after "seqlab"
    run = seqlab_command(*args, "--trainer.fast_dev_run", "2", "--trainer.logger", "false", "--trainer.default_root_dir",
                 str(tmp_path), "--results_path", str(tmp_path / "row.jsonl"))
    assert run.returncode == 0, run.stderr[-4000:]
    (row,) = read_rows(tmp_path / "row.jsonl")
    tasks = {key.split("/")[1] for key in row["metrics"] if key.startswith("val/")}
    assert tasks == set(yaml.safe_load((repo_root() / args[2]).read_text())["model"]["init_args"]["objectives"])


@pytest.mark.slow
def test_cli_predict_writes_every_task_record_of_each_input_as_the_python_api(trained):
    folder, config, last = trained
    texts = ["EU rejects German call to boycott British lamb .", "Peter Blackburn"]
    inputs, output = folder / "input.txt", folder / "predictions.jsonl"
    inputs.write_text("\n".join(texts) + "\n", encoding="utf-8")
    run = seqlab_command("predict", "--ckpt_path", str(last), "--data.init_args.predict_path", str(inputs),
                         "--prediction_writer.output_path", str(output), "--trainer.logger", "false")
    assert run.returncode == 0, run.stderr[-4000:]
    rows = read_rows(output)
    assert [row["task"] for row in rows] == ["ner", "pos", "chunk"] * 2  # each input's tasks together, in order
    loaded = seqlab.load(last)
    expected = [{"task": name, **records[name]} for records in loaded.predict(texts) for name in loaded.tasks]
    assert rows == expected
