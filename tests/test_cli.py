"""The CLI: links take effect, checkpoints carry vocabularies, one-line errors."""

import json
import re

import pytest
import torch
import yaml

from seqlab import SeqlabError, load
from seqlab.cli import SeqlabCLI
from seqlab.config_checks import condense_config_error
from seqlab.export import OnnxPredictor, export
from seqlab.models import CASING_CLASSES, SequenceDropout, casing_class
from seqlab.tasks import TokenTagging
from tests.cli_helpers import CONFIGS, read_rows, run_options, seqlab
from tests.test_robustness_scripts import script

CRF = str(CONFIGS / "ner" / "conll2003_bilstm_crf.yaml")


def test_each_link_takes_effect(tmp_path, conll_slice):
    cli = SeqlabCLI(run=False, args=["--config", CRF, *run_options(tmp_path, conll_slice),
                                     "--data.init_args.min_freq", "2"])
    data, model = cli.datamodule, cli.model
    # the linked values differ from the task's defaults, so a dropped link would show
    assert model.hparams.vocab_size == data.vocab_size == model.word_embedder.embedding.num_embeddings
    assert data.vocab_size < len({t for tokens in data.raw_split("train")["tokens"] for t in tokens})
    chars = model.model.body.embedder.chars
    assert model.hparams.char_vocab_size == data.char_vocab_size == chars.embedding.num_embeddings
    assert model.hparams.padding_idx == data.padding_idx == model.word_embedder.embedding.padding_idx
    assert model.labels == data.labels and model.tagger.num_tags == len(data.labels)
    assert data.labels[0] == "O" and any(label.startswith("S-") for label in data.labels)  # BIOES from config
    assert "characters" not in model.hparams  # linked, but only a CasingEmbedding reads it: not kept without one


def test_checkpoint_round_trip_and_predict_without_config(tmp_path, conll_slice):
    cli = SeqlabCLI(args=["fit", "--config", CRF, *run_options(tmp_path, conll_slice),
                          "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "6",
                          "--trainer.limit_val_batches", "2"])
    last = next((tmp_path / "runs").rglob("last.ckpt"))
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["TokenClassificationData"]["words"]["itos"] == cli.datamodule.words.itos
    assert checkpoint["TokenClassificationData"]["tags"]["itos"] == cli.datamodule.labels

    trained = cli.model.eval()
    restored = TokenTagging.load_from_checkpoint(last, map_location="cpu").eval()
    batch = next(iter(cli.datamodule.test_dataloader()))
    with torch.no_grad():
        torch.testing.assert_close(restored(batch), trained(batch))
        expected = trained.predict_step(batch)
    assert restored.predict_step(batch) == expected

    # predict with only the checkpoint: no config, no training data (the data path is gone)
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("\n".join(" ".join(r["tokens"]) for r in expected) + "\n", encoding="utf-8")
    moved = tmp_path / "elsewhere.ckpt"
    last.rename(moved)
    out = tmp_path / "predictions.jsonl"
    result = seqlab("predict", "--ckpt_path", str(moved), "--data.init_args.path", str(tmp_path / "gone"),
                    "--data.init_args.predict_path", str(sentences), "--prediction_writer.output_path", str(out),
                    "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                    "--trainer.default_root_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_rows(out)
    assert [r["tags"] for r in rows] == [r["tags"] for r in expected]
    assert all(set(r) == {"text", "tokens", "tags", "entities"} for r in rows)

    # a model option on the command line wins over the checkpoint's hyperparameters
    override = SeqlabCLI(args=["validate", "--ckpt_path", str(moved), *run_options(tmp_path, conll_slice),
                               "--trainer.limit_val_batches", "1", "--model.init_args.checkpoint_every_n_steps", "7"])
    assert override.model.checkpoint_every_n_steps == 7
    assert override.model.labels == trained.labels


def test_misspelled_config_key_is_one_line(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text(open(CRF).read().replace("hidden_size: 256", "hiden_size: 256"))
    result = seqlab("fit", "--config", str(config), "--trainer.fast_dev_run", "1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "seqlab: error: config key 'model.encoder.hiden_size' is not accepted (misspelled?)")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("message,expected", [
    ('Parser key "data":\n  Option \'batchsize\' is not accepted', "config key 'data.batchsize' is not accepted"),
    ('Unrecognized arguments: --trainer.max_epoch 3', "unrecognized arguments: --trainer.max_epoch 3"),
    # jsonargparse 4.53 for --model.init_args.encoder.init_args.hidden_size=nul (the encoder is a callable)
    ('Parser key "model":\n  Does not validate against any of the Union subtypes\n  Subtypes: [<class '
     "'seqlab.tasks.base.SequenceTask'>, <class 'NoneType'>]\n  Errors:\n    - Problem with given class_path "
     "'seqlab.tasks.TokenTagging':\n        Parser key \"encoder\":\n          Type typing.Callable[[int], "
     "seqlab.models.encoders.SequenceEncoder] expects a function or a callable class: Parser key \"hidden_size\":\n"
     "            Expected a <class 'int'>. Got value: nul. Got value: Namespace(class_path='seqlab.models."
     "BiLSTMEncoder', init_args=Namespace(hidden_size='nul'))\n    - Expected a <class 'NoneType'>\n  Given value "
     "type: <class 'jsonargparse._util.NestedArg'>\n  Given value: NestedArg(key='encoder.init_args.hidden_size', "
     "val='nul')", "--model.encoder.hidden_size: expected int, got 'nul'"),
])
def test_condensed_config_errors(message, expected):
    assert condense_config_error(message).startswith(expected)


def test_bad_inputs_give_one_line_errors(tmp_path, conll_slice):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("train", "valid", "test"):
        (bad / f"{name}.txt").write_text((conll_slice / f"{name}.txt").read_text())
    lines = (bad / "valid.txt").read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.split() and line.split()[-1] == "B-PER")
    lines[index] = lines[index].rsplit(" ", 1)[0] + " B-ANIMAL"
    (bad / "valid.txt").write_text("\n".join(lines) + "\n")
    cases = {
        "unseen tag": (str(bad), f"valid.txt:{index + 1}: entity type 'ANIMAL' does not occur in the training data"),
        "missing path": (str(tmp_path / "missing"), "data path not found"),
        "offline hub": ("someone/conll-mirror", "could not load 'someone/conll-mirror' from the Hugging Face hub"),
    }
    for name, (path, expected) in cases.items():
        result = seqlab("fit", "--config", CRF, "--data.init_args.path", path, "--trainer.fast_dev_run", "1",
                        "--trainer.logger", "false")
        last_line = result.stderr.strip().splitlines()[-1]
        assert result.returncode == 2, (name, result.stderr[-2000:])
        assert last_line.startswith("seqlab: error: ") and expected in last_line, (name, last_line)
        assert "Traceback" not in result.stderr, name


def test_print_config(tmp_path):
    result = seqlab("fit", "--config", CRF, "--print_config")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "class_path: seqlab.models.CRFTagger" in result.stdout


def test_last_checkpoint_skips_a_file_cut_short_by_a_kill(tmp_path):
    import os
    import time

    from seqlab.checkpoints import find_checkpoint

    good = tmp_path / "version_0" / "checkpoints" / "last.ckpt"
    good.parent.mkdir(parents=True)
    torch.save({"epoch": 3}, good)
    truncated = tmp_path / "version_0" / "checkpoints" / "last-step.ckpt"
    data = (good.read_bytes() * 2)[: len(good.read_bytes()) // 2]
    truncated.write_bytes(data)
    later = time.time() + 10
    os.utime(truncated, (later, later))
    assert find_checkpoint([tmp_path], "last") == good
    assert find_checkpoint([tmp_path], "best") is None


def test_checkpoint_search_stays_inside_this_runs_directory(tmp_path, conll_slice):
    """Another run's newer checkpoint in the working directory must never be picked by --ckpt_path best/last."""
    cli = SeqlabCLI(run=False, args=["--config", CRF, *run_options(tmp_path, conll_slice),
                                     "--trainer.logger.init_args.name", "mine"])
    assert SeqlabCLI._run_roots(cli.config) == [tmp_path / "runs" / "mine"]
    no_logger = SeqlabCLI(run=False, args=["--config", CRF, *run_options(tmp_path, conll_slice),
                                           "--trainer.logger", "false"])
    assert SeqlabCLI._run_roots(no_logger.config) == [tmp_path / "checkpoints"]


def test_a_run_writes_seqlabs_three_checkpoints_and_not_lightnings_default(tmp_path, conll_slice):
    SeqlabCLI(args=["fit", "--config", CRF, *run_options(tmp_path, conll_slice), "--trainer.max_epochs", "1",
                    "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
                    "--model.init_args.checkpoint_every_n_steps", "2"])
    assert sorted(p.name for p in (tmp_path / "runs").rglob("*.ckpt")) == ["best-epoch00.ckpt", "last-step.ckpt",
                                                                          "last.ckpt"]


def test_last_checkpoint_is_the_final_one_and_a_users_own_model_checkpoint_is_kept(tmp_path, conll_slice):
    """last.ckpt holds the final weights when the final epoch is not the best one; and, though Lightning lets a
    module's configure_callbacks replace the trainer's callbacks of the same type, a ModelCheckpoint given on the
    command line (here: every epoch) still writes, beside best/last/last-step."""
    every = tmp_path / "every"
    own = ["--trainer.callbacks+=pytorch_lightning.callbacks.ModelCheckpoint", "--trainer.callbacks.dirpath",
           str(every), "--trainer.callbacks.filename", "ep{epoch}", "--trainer.callbacks.save_top_k", "-1",
           "--trainer.callbacks.auto_insert_metric_name", "false"]
    cli = SeqlabCLI(args=["fit", "--config", CRF, *run_options(tmp_path, conll_slice), *own, "--seed_everything", "0",
                          "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "3",
                          "--trainer.limit_val_batches", "2", "--model.init_args.checkpoint_every_n_steps", "2"])
    assert sorted(p.name for p in every.iterdir()) == ["ep0.ckpt", "ep1.ckpt"]
    saved = {p.name for p in (tmp_path / "runs").rglob("*.ckpt")}
    assert {"last.ckpt", "last-step.ckpt"} <= saved and any(name.startswith("best-epoch") for name in saved)
    best = next((tmp_path / "runs").rglob("best-epoch*.ckpt"))
    assert best.name == "best-epoch00.ckpt"  # so last.ckpt below is not also the best
    final = torch.load(every / "ep1.ckpt", map_location="cpu", weights_only=True)
    last = torch.load(next((tmp_path / "runs").rglob("last.ckpt")), map_location="cpu", weights_only=True)
    assert final["global_step"] == last["global_step"] == 6  # last.ckpt: the final weights, best or not
    assert final["state_dict"].keys() == last["state_dict"].keys()
    assert all(torch.equal(final["state_dict"][k], last["state_dict"][k]) for k in final["state_dict"])
    assert cli.trainer.checkpoint_callback.filename == "best-epoch{epoch:02d}"  # what best resolves to

    cli.trainer.validate(cli.model, datamodule=cli.datamodule)  # callbacks attached again: none doubled
    checkpoints = [c for c in cli.trainer.callbacks if type(c).__name__ == "ModelCheckpoint"]
    assert sorted(str(c.filename) for c in checkpoints) == ["best-epoch{epoch:02d}", "ep{epoch}", "last",
                                                            "last-step"]


def test_epoch_weight_averaging_is_the_mean_of_the_epochs_weights_and_leaves_training_alone(tmp_path, conll_slice):
    """EpochWeightAveraging(start_epoch=1) over 3 epochs: epoch 0's checkpoint holds its own weights; later ones the
    mean of the weights at the end of epochs 1..e (brute force over the per-epoch current weights); the current
    weights equal those of a run without the callback; validation scored the mean."""
    def fit(name: str, *extra: str) -> SeqlabCLI:
        every = tmp_path / name
        return SeqlabCLI(args=["fit", "--config", CRF, *run_options(tmp_path / f"run_{name}", conll_slice),
                               "--seed_everything", "3", "--trainer.max_epochs", "3",
                               "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2",
                               "--trainer.callbacks+=pytorch_lightning.callbacks.ModelCheckpoint",
                               "--trainer.callbacks.dirpath", str(every), "--trainer.callbacks.filename", "ep{epoch}",
                               "--trainer.callbacks.save_top_k", "-1",
                               "--trainer.callbacks.auto_insert_metric_name", "false", *extra])

    def epochs(name: str) -> list[dict]:
        return [torch.load(tmp_path / name / f"ep{e}.ckpt", map_location="cpu", weights_only=True) for e in range(3)]

    averaged = fit("averaged", "--trainer.callbacks+=seqlab.callbacks.EpochWeightAveraging",
                   "--trainer.callbacks.start_epoch", "1")
    fit("plain")
    swa, plain = epochs("averaged"), epochs("plain")
    assert "current_model_state" not in swa[0]
    current = [swa[0]["state_dict"], swa[1]["current_model_state"], swa[2]["current_model_state"]]
    for mine, reference in zip(current, plain):
        assert all(torch.equal(mine[k], reference["state_dict"][k]) for k in mine)
    for e in (1, 2):
        for k, value in swa[e]["state_dict"].items():
            if value.is_floating_point():
                mean = torch.stack([current[i][k] for i in range(1, e + 1)]).mean(0)
                torch.testing.assert_close(value, mean, rtol=0, atol=1e-6)
    assert any(not torch.equal(swa[2]["state_dict"][k], current[2][k]) for k in current[2])

    averager = script("average_checkpoints")  # its offline form, over the plain run's epochs 1 and 2
    assert averager.main([str(tmp_path / "mean.ckpt"), str(tmp_path / "plain" / "ep1.ckpt"),
                          str(tmp_path / "plain" / "ep2.ckpt")]) == 0
    loaded = load(str(tmp_path / "mean.ckpt")).task.state_dict()
    for k, value in swa[2]["state_dict"].items():
        torch.testing.assert_close(loaded[k], value, rtol=0, atol=1e-6)

    fitted = float(averaged.trainer.callback_metrics["val/loss"])  # epoch 2's, of the mean of epochs 1 and 2
    model = averaged.model.state_dict()  # after fit the model holds the mean
    assert all(torch.equal(model[k], swa[2]["state_dict"][k]) for k in model)
    trainer = averaged.trainer
    trainer.callbacks = [c for c in trainer.callbacks if type(c).__name__ != "EpochWeightAveraging"]
    assert trainer.validate(averaged.model, datamodule=averaged.datamodule)[0]["val/loss"] == pytest.approx(fitted)
    averaged.model.load_state_dict(current[2])
    assert trainer.validate(averaged.model, datamodule=averaged.datamodule)[0]["val/loss"] != pytest.approx(fitted)


def test_a_weight_averaging_run_validates_checkpoints_and_predicts_with_the_averaged_weights(tmp_path, conll_slice):
    """With Lightning's EMA callback (README: weight averaging) validation scores the averaged weights, checkpoints
    hold them as ``state_dict``, and seqlab.load and ``seqlab validate`` without the callback use exactly them."""
    ema = ["--trainer.callbacks+=pytorch_lightning.callbacks.EMAWeightAveraging", "--trainer.callbacks.decay", "0.5"]
    cli = SeqlabCLI(args=["fit", "--config", CRF, *run_options(tmp_path, conll_slice), *ema,
                          "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "6",
                          "--trainer.limit_val_batches", "2"])
    fitted_f1 = float(cli.trainer.callback_metrics["val/f1"])
    last = next((tmp_path / "runs").rglob("last.ckpt"))
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    averaged, current = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert any(not torch.equal(averaged[k], current[k]) for k in averaged)  # the average is not the last step
    model = cli.model.state_dict()  # after fit the model holds the average
    assert all(torch.equal(model[k], averaged[k]) for k in averaged)

    predictor = load(str(last))
    loaded = predictor.task.state_dict()
    assert all(torch.equal(loaded[k], averaged[k]) for k in averaged)

    validated = SeqlabCLI(args=["validate", "--ckpt_path", str(last), *run_options(tmp_path, conll_slice),
                                "--trainer.limit_val_batches", "2"])
    assert float(validated.trainer.callback_metrics["val/f1"]) == pytest.approx(fitted_f1, abs=1e-6)


def test_sequence_dropout_from_the_config_is_restored_from_the_checkpoint(tmp_path, conll_slice):
    """A dropout module given as an option (``SequenceDropout`` for the embeddings and the encoder's states) trains
    and comes back from the checkpoint as the same class and probability, through the Python API and the CLI."""
    locked = '{"class_path": "seqlab.models.SequenceDropout", "init_args": {"p": 0.4}}'
    cli = SeqlabCLI(args=["fit", "--config", CRF, *run_options(tmp_path, conll_slice),
                          "--model.init_args.embedding_dropout", locked,
                          "--model.init_args.encoder.init_args.dropout", locked,
                          "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3",
                          "--trainer.limit_val_batches", "1"])
    body = cli.model.model.body
    assert type(body.embedder.dropout) is SequenceDropout and body.embedder.dropout.p == 0.4
    assert type(body.encoder.dropout) is SequenceDropout and body.encoder.dropout.p == 0.4
    last = next((tmp_path / "runs").rglob("last.ckpt"))
    hparams = torch.load(last, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert hparams["embedding_dropout"] == {"class_path": "seqlab.models.SequenceDropout", "init_args": {"p": 0.4}}
    validated = SeqlabCLI(args=["validate", "--ckpt_path", str(last), *run_options(tmp_path, conll_slice),
                                "--trainer.limit_val_batches", "1"])
    for restored in (load(str(last)).task, validated.model):
        restored_body = restored.model.body
        assert type(restored_body.embedder.dropout) is SequenceDropout and restored_body.embedder.dropout.p == 0.4
        assert type(restored_body.encoder.dropout) is SequenceDropout and restored_body.encoder.dropout.p == 0.4


def fit_four_batches(tmp_path, data_path, *options: str) -> SeqlabCLI:
    """``seqlab fit`` of the CRF config with ``options``: one epoch of 4 training batches, 1 validation batch."""
    return SeqlabCLI(args=["fit", "--config", CRF, *run_options(tmp_path, data_path), *options,
                           "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4",
                           "--trainer.limit_val_batches", "1"])


@pytest.mark.parametrize("objective, options", [
    ("language_model", []),
    ("char_language_model", ["--model.init_args.char_encoder", "seqlab.models.SentenceCharBiLSTM"]),
])
def test_a_language_model_objective_trains_from_the_command_line_and_its_checkpoint_predicts(
        objective, options, tmp_path, conll_slice):
    """``--model.init_args.language_model`` (README), or ``char_language_model`` over a sentence-level character
    BiLSTM: training logs ``train/lm_loss`` (``train/char_lm_loss``); the checkpoint restores the objective's
    weights with the task, and ``seqlab.load`` predicts as the trained model does."""
    cli = fit_four_batches(tmp_path, conll_slice, *options,
                           f"--model.init_args.{objective}", "seqlab.models.BidirectionalLanguageModel",
                           f"--model.init_args.{objective}.max_words", "200")
    assert float(cli.trainer.callback_metrics[f"train/{objective.replace('language_model', 'lm')}_loss"]) > 0
    assert getattr(cli.model, objective).classes == 200
    last = next((tmp_path / "runs").rglob("last.ckpt"))
    predictor = load(str(last))
    restored = predictor.task.state_dict()
    trained = cli.model.state_dict()
    assert any(k.startswith(f"{objective}.") for k in restored)
    assert all(torch.equal(restored[k], trained[k]) for k in trained)
    batch = next(iter(cli.datamodule.test_dataloader()))
    with torch.no_grad():
        assert predictor.task.eval().predict_step(batch) == cli.model.eval().predict_step(batch)
    assert [len(r["tags"]) for r in predictor.predict(["EU rejects German call .", "Peter Blackburn"])] == [5, 2]


def test_adversarial_training_from_the_command_line_is_restored_from_the_checkpoint(tmp_path, conll_slice):
    """``--model.init_args.adversary seqlab.models.EmbeddingAdversary`` trains with ``train/adversarial_loss``; the
    checkpoint stores the adversary as configuration and gives it back, ``seqlab.load`` predicts as the trained
    model does, and the model exports as any other."""
    cli = fit_four_batches(tmp_path, conll_slice, "--model.init_args.adversary", "seqlab.models.EmbeddingAdversary",
                           "--model.init_args.adversary.epsilon", "0.05")
    assert float(cli.trainer.callback_metrics["train/adversarial_loss"]) > 0
    last = next((tmp_path / "runs").rglob("last.ckpt"))
    hparams = torch.load(last, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert hparams["adversary"] == {"class_path": "seqlab.models.EmbeddingAdversary",
                                    "init_args": {"epsilon": 0.05, "weight": 0.5}}
    predictor = load(str(last))
    assert predictor.task.adversary.epsilon == 0.05
    batch = next(iter(cli.datamodule.test_dataloader()))
    with torch.no_grad():
        assert predictor.task.eval().predict_step(batch) == cli.model.eval().predict_step(batch)
    assert export(predictor, tmp_path / "tagger.pt", "torchscript").exists()  # export checks its graph's outputs


@pytest.mark.parametrize("options", [[], ["--model.init_args.char_encoder", "null"]])
def test_casing_vectors_from_the_command_line_read_the_linked_characters_and_survive_load_and_export(
        options, tmp_path, conll_slice):
    """``--model.init_args.casing seqlab.models.CasingEmbedding`` (beside the character BiLSTM, or alone): the data
    module's character vocabulary is linked in and the batch's words are classed as ``casing_class`` classes them;
    ``seqlab.load`` and an ONNX export (which then takes char ids) tag as the trained model does."""
    cli = fit_four_batches(tmp_path, conll_slice, *options, "--model.init_args.casing", "seqlab.models.CasingEmbedding",
                           "--model.init_args.casing.embedding_dim", "6")
    embedder = cli.model.model.body.embedder
    assert cli.model.hparams.characters == cli.datamodule.chars.itos
    assert embedder.casing.output_size == 6 and (embedder.chars is None) == bool(options)
    batch = next(iter(cli.datamodule.train_dataloader()))
    classes = embedder.casing.classes(batch["char_ids"])[batch["mask"]]
    width = cli.datamodule.hparams.max_word_length  # characters kept per word
    assert [CASING_CLASSES[i] for i in classes] == [casing_class(w[:width]) for words in batch["tokens"] for w in words]
    last = next((tmp_path / "runs").rglob("last.ckpt"))
    predictor = load(str(last))
    assert torch.equal(predictor.task.model.body.embedder.casing.embedding.weight, embedder.casing.embedding.weight)
    test_batch = next(iter(cli.datamodule.test_dataloader()))
    with torch.no_grad():
        assert predictor.task.eval().predict_step(test_batch) == cli.model.eval().predict_step(test_batch)
    sentences = ["EU rejects German call to boycott British lamb .", "Peter Blackburn scored 3-0 in 1996 ."]
    expected = predictor.predict(sentences)
    assert export(predictor, tmp_path / "tagger.pt", "torchscript").exists()  # export checks its graph's outputs
    export(predictor, tmp_path / "tagger.onnx", "onnx")
    onnx_records = OnnxPredictor(tmp_path / "tagger.onnx", predictor=predictor).predict(sentences)
    assert [r["tags"] for r in onnx_records] == [r["tags"] for r in expected]


def test_auxiliary_columns_train_taggers_beside_ner_and_the_checkpoint_needs_no_such_columns(tmp_path, conll_slice):
    """``--data.init_args.auxiliary_columns '{pos: 1, chunk: 2}'`` (CoNLL-2003's POS and chunk columns) gives the
    model one tagger per column, trained on the training sentences (``train/pos_loss``, ``train/chunk_loss``); the
    checkpoint keeps their labels, and scores files with only token and NER columns exactly as the four-column files,
    as ``predict`` tags raw text."""
    cli = fit_four_batches(tmp_path, conll_slice, "--data.init_args.auxiliary_columns", "{pos: 1, chunk: 2}",
                           "--model.init_args.auxiliary_loss_weight", "0.5")
    assert float(cli.trainer.callback_metrics["train/pos_loss"]) > 0
    assert float(cli.trainer.callback_metrics["train/chunk_loss"]) > 0
    taggers = cli.model.auxiliary_taggers
    assert {name: tagger.labels for name, tagger in taggers.items()} == cli.datamodule.auxiliary_labels
    assert "NNP" in taggers["pos"].labels and "B-NP" in taggers["chunk"].labels
    last = next((tmp_path / "runs").rglob("last.ckpt"))
    two_columns = tmp_path / "two_columns"
    two_columns.mkdir()
    for name in ("valid.txt", "test.txt"):
        lines = (conll_slice / name).read_text().splitlines()
        (two_columns / name).write_text("".join(" ".join(line.split()[::3]) + "\n" for line in lines))
    scores = {}
    for path in (conll_slice, two_columns):
        tested = SeqlabCLI(args=["test", "--ckpt_path", str(last), "--data.init_args.path", str(path),
                                 "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                                 "--trainer.default_root_dir", str(tmp_path)])
        assert tested.datamodule.auxiliary_labels == cli.datamodule.auxiliary_labels
        scores[path] = {k: float(v) for k, v in tested.trainer.callback_metrics.items()}
    assert scores[two_columns] == scores[conll_slice] and scores[conll_slice]["test/loss"] > 0
    predictor = load(str(last))
    restored, trained = predictor.task.state_dict(), cli.model.state_dict()
    assert all(torch.equal(restored[k], trained[k]) for k in trained)
    assert [len(r["tags"]) for r in predictor.predict(["EU rejects German call .", "Peter Blackburn"])] == [5, 2]


class _Parsed(Exception):
    """Raised with the parsed configuration, before any class is built."""


class _ParseOnly(SeqlabCLI):
    def before_instantiate_classes(self) -> None:
        raise _Parsed(self.config)


def _parsed_config(*args: str):
    with pytest.raises(_Parsed) as parsed:
        _ParseOnly(run=False, args=list(args))
    return parsed.value.args[0]


def test_null_for_a_key_inside_a_dict_of_classes_reaches_the_class_as_none():
    multitask = str(CONFIGS / "multitask" / "conll2003_ner_sst2.yaml")
    config = _parsed_config("--config", multitask, "--data.init_args.tasks.ner.init_args.vectors", "null",
                            "--data.init_args.tasks.sentiment.init_args.max_length=null",
                            "--data.init_args.tasks.sentiment.init_args.batch_size", "16")
    ner, sentiment = config.data.init_args.tasks["ner"].init_args, config.data.init_args.tasks["sentiment"].init_args
    # jsonargparse alone gives the first as the string "None" and refuses the second (an Optional[int])
    assert ner.vectors is None and sentiment.max_length is None
    assert sentiment.batch_size == 16 and ner.tag_scheme == "BIOES"  # other keys as given or as in the config
    # a null outside dicts of classes was never turned into text; it stays None
    glove = str(CONFIGS / "ner" / "conll2003_bilstm_crf_glove.yaml")
    assert _parsed_config("--config", glove, "--data.init_args.vectors", "null").data.init_args.vectors is None
    # --print_config shows what runs
    result = seqlab("fit", "--config", multitask, "--data.init_args.tasks.ner.init_args.vectors=null", "--print_config")
    assert result.returncode == 0, result.stderr[-2000:]
    printed = yaml.safe_load(result.stdout)["data"]["init_args"]["tasks"]
    assert printed["ner"]["init_args"]["vectors"] is None and printed["ner"]["init_args"]["tag_scheme"] == "BIOES"


def test_null_for_a_nested_class_argument_is_refused_where_the_type_takes_none_or_the_name_is_unknown():
    glove = str(CONFIGS / "ner" / "conll2003_bilstm_crf_glove.yaml")
    cases = {
        "--model.init_args.encoder.init_args.hidden_size": "null is not allowed here (expected int)",
        "--model.init_args.encoder.init_args.hidden_sise": "no such option",
    }
    for option, expected in cases.items():
        with pytest.raises(SeqlabError, match=re.escape(f"{option}: {expected}")):
            _parsed_config("--config", glove, option, "null")
    config = _parsed_config("--config", glove, "--model.init_args.char_encoder", "null",
                            "--model.init_args.lr_scheduler.init_args.decay", "0.1")
    assert config.model.init_args.char_encoder is None and config.model.init_args.lr_scheduler.init_args.decay == 0.1
