"""The CLI with the translation task on a real Multi30k slice: each link takes effect, fit -> test logs greedy and
beam BLEU and the sacrebleu signature, the checkpoint carries the tokenizer (predict without data or config),
one-line errors for bad input."""

from __future__ import annotations

import inspect

import pytest
import torch

from seqlab.cli import SeqlabCLI, main
from seqlab.tasks import Seq2SeqTranslation
from seqlab.tasks import translation as translation_task
from tests.cli_helpers import CONFIGS, read_rows, run_options, seqlab

BAHDANAU = str(CONFIGS / "translation" / "multi30k_de_en_bahdanau.yaml")
LSTM = str(CONFIGS / "translation" / "multi30k_de_en_lstm.yaml")

#: small sizes, so that a few training steps and beam decoding run in seconds on a CPU
TINY = [
    "--data.init_args.max_vocab_size", "800",
    "--model.init_args.source_embedding.init_args.embedding_dim", "32",
    "--model.init_args.encoder.init_args.hidden_size", "32",
    "--model.init_args.encoder.init_args.num_layers", "1",
    "--model.init_args.decoder.init_args.embedding_dim", "32",
    "--model.init_args.decoder.init_args.hidden_size", "48",
    "--model.init_args.decoder.init_args.attention.init_args.attention_size", "32",
    "--model.init_args.beam_search.init_args.beam_size", "3",
    "--model.init_args.search.init_args.max_length_offset", "3",
    "--model.init_args.beam_search.init_args.max_length_offset", "3",
    "--model.init_args.search.init_args.max_length_ratio", "1.2",
    "--model.init_args.beam_search.init_args.max_length_ratio", "1.2",
    "--model.init_args.optimizer.init_args.lr", "0.005",
]


def test_each_link_takes_effect(tmp_path, multi30k_slice):
    # separate word vocabularies: German and English sizes differ from each other and from any default
    cli = SeqlabCLI(run=False, args=["--config", LSTM, *run_options(tmp_path, multi30k_slice),
                                     "--data.init_args.joint", "false", "--data.init_args.tokenizer", "word"])
    data, model = cli.datamodule, cli.model
    assert data.source_vocab_size != data.target_vocab_size
    words = model.model.embedder.words
    assert model.hparams.source_vocab_size == data.source_vocab_size == words.embedding.num_embeddings
    assert model.hparams.target_vocab_size == data.target_vocab_size == model.model.decoder.output.out_features
    assert model.hparams.source_padding_idx == data.source_padding_idx == words.padding_idx
    assert model.hparams.target_padding_idx == data.target_padding_idx == model.model.decoder.padding_idx
    assert (model.model.bos_index, model.model.eos_index) == (data.bos_index, data.eos_index) == (2, 3)
    assert model.target_encoder is data.target_encoder  # the detokenizer, linked (not in the hyperparameters)
    # the linked arguments have no defaults: a dropped link fails instantiation instead of passing silently
    required = {name for name, p in inspect.signature(Seq2SeqTranslation).parameters.items() if p.default is p.empty}
    assert {"source_vocab_size", "target_vocab_size", "source_padding_idx", "target_padding_idx", "bos_index",
            "eos_index"} <= required


@pytest.fixture(scope="module")
def trained(tmp_path_factory, multi30k_slice):
    """A tiny Bahdanau model after 30 steps on the slice (predictions with attention), and its run folder."""
    root = tmp_path_factory.mktemp("translation_run")
    cli = SeqlabCLI(args=["fit", "--config", BAHDANAU, *run_options(root, multi30k_slice), *TINY,
                          "--data.init_args.cache_dir", str(root / "cache"),
                          "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "30",
                          "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
                          "--model.init_args.predict_attention", "true"])
    return cli, root


def test_fit_then_test_logs_greedy_and_beam_bleu_and_the_signature(trained, multi30k_slice, monkeypatch):
    cli, root = trained
    assert {"train/loss", "val/loss", "val/bleu", "val/chrf"} <= set(cli.trainer.callback_metrics)
    last = next((root / "runs").rglob("last.ckpt"))
    results = root / "results.jsonl"
    messages: list[str] = []  # what the task prints with rank_zero_info (a log handler may be off by now)
    monkeypatch.setattr(translation_task, "rank_zero_info", messages.append)
    test = SeqlabCLI(args=["test", "--config", BAHDANAU, *run_options(root, multi30k_slice), *TINY,
                           "--data.init_args.cache_dir", str(root / "cache"), "--ckpt_path", str(last),
                           "--trainer.logger", "false", "--results_path", str(results)])
    metrics = test.trainer.callback_metrics
    for key in ("test/loss", "test/nll", "test/bleu_greedy", "test/chrf_greedy", "test/bleu_lc_greedy", "test/bleu",
                "test/chrf", "test/bleu_lc"):
        assert key in metrics, key
    # 30 steps of a tiny model: BLEU is near 0, but chrF already sees some right words (an untrained model: ~1)
    assert 0 <= float(metrics["test/bleu"]) <= float(metrics["test/bleu_lc"]) < 100 and float(metrics["test/chrf"]) > 4
    printed = "\n".join(messages)
    assert "sacrebleu nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" in printed
    assert "over 100 sentences" in printed  # the whole test split, each sentence once
    (row,) = read_rows(results)
    assert row["metrics"]["test/bleu"] == pytest.approx(float(metrics["test/bleu"]))


def test_checkpoint_round_trip_gives_the_same_translations(trained):
    cli, root = trained
    last = next((root / "runs").rglob("last.ckpt"))
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    state = checkpoint["TranslationData"]
    assert state["joint"] and "BPE" in state["source"]["tokenizer"]
    restored = Seq2SeqTranslation.load_from_checkpoint(last, map_location="cpu",
                                                       target_encoder=cli.datamodule.target_encoder).eval()
    trained_model = cli.model.eval()  # its target_encoder linked by the CLI
    batch = next(iter(cli.datamodule.test_dataloader()))
    with torch.no_grad():
        assert restored.predict_step(batch) == trained_model.predict_step(batch)


@pytest.mark.slow
def test_predict_from_a_moved_checkpoint_without_data_or_config(trained, tmp_path):
    cli, root = trained
    last = next((root / "runs").rglob("last.ckpt"))
    moved = tmp_path / "model.ckpt"
    moved.write_bytes(last.read_bytes())
    sources = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."]
    (tmp_path / "in.de").write_text("\n".join(sources) + "\n", encoding="utf-8")
    out = tmp_path / "translations.jsonl"
    result = seqlab("predict", "--ckpt_path", str(moved), "--data.init_args.path", str(tmp_path / "gone"),
                    "--data.init_args.predict_path", str(tmp_path / "in.de"),
                    "--prediction_writer.output_path", str(out),
                    "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                    "--trainer.default_root_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_rows(out)
    assert [r["source"] for r in rows] == sources
    for row in rows:
        assert set(row) == {"source", "translation", "score", "log_prob", "source_tokens", "tokens", "attention"}
        assert isinstance(row["translation"], str) and row["score"] <= 0 and row["log_prob"] <= 0
        assert len(row["attention"]) == len(row["tokens"])
        for weights in row["attention"]:
            assert len(weights) == len(row["source_tokens"]) and sum(weights) == pytest.approx(1.0, abs=1e-3)


def one_line_error(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("seqlab: error: ")
    return last


def test_bad_inputs_give_one_line_errors(tmp_path, multi30k_slice, capsys):
    folder = tmp_path / "mismatch"
    folder.mkdir()
    (folder / "train.de").write_text("Ein Hund.\nZwei Hunde.\nDrei Hunde.\n", encoding="utf-8")
    (folder / "train.en").write_text("A dog.\nTwo dogs.\n", encoding="utf-8")
    common = ["fit", "--config", LSTM, "--trainer.fast_dev_run", "1", "--trainer.logger", "false",
              "--data.init_args.cache_dir", str(tmp_path / "cache")]
    message = one_line_error(capsys, *common, "--data.init_args.path", str(folder))
    assert f"{folder / 'train.de'} has 3 lines" in message and f"{folder / 'train.en'} has 2" in message
    message = one_line_error(capsys, *common, "--data.init_args.path", str(multi30k_slice),
                             "--data.init_args.target_lang", "fr")
    assert "no 'fr' file for split 'train'" in message and "available languages: de, en" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train.de").write_text("Ein Hund.\n\n", encoding="utf-8")
    (empty / "train.en").write_text("A dog.\nTwo dogs.\n", encoding="utf-8")
    message = one_line_error(capsys, *common, "--data.init_args.path", str(empty),
                             "--data.init_args.on_bad_row", "error")
    assert "train.de:2: empty source or target line" in message


@pytest.mark.slow
def test_the_default_hub_path_offline_is_one_line(tmp_path):
    result = seqlab("fit", "--config", LSTM, "--trainer.fast_dev_run", "1", "--trainer.logger", "false",
                    "--data.init_args.cache_dir", str(tmp_path / "cache"), timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("seqlab: error: could not load 'bentrevett/multi30k' from the Hugging Face hub")
    assert "Offline? Pass local files" in last and "Traceback" not in result.stderr


@pytest.mark.slow
def test_test_bleu_agrees_on_one_and_two_processes(trained, multi30k_slice, tmp_path):
    """The same checkpoint tested by 1 and by 2 CPU processes (DDP, gloo): hypotheses are gathered from both ranks
    before scoring, each of the 100 test sentences once, so greedy and beam BLEU and chrF are identical. (The 100
    sentences fit one evaluation batch: on 2 processes they are cut into one batch per rank.)"""
    _, root = trained
    last = next((root / "runs").rglob("last.ckpt"))
    results = tmp_path / "results.jsonl"
    common = ["test", "--config", BAHDANAU, *run_options(tmp_path, multi30k_slice), *TINY,
              "--data.init_args.cache_dir", str(root / "cache"), "--ckpt_path", str(last),
              "--results_path", str(results), "--trainer.logger", "false", "--trainer.accelerator", "cpu"]
    for extra in (["--trainer.devices", "1"], ["--trainer.devices", "2", "--trainer.strategy", "ddp"]):
        run = seqlab(*common, *extra)
        assert run.returncode == 0, run.stderr[-4000:]
    single, double = read_rows(results)
    assert single["world_size"] == 1 and double["world_size"] == 2
    for key in ("test/bleu", "test/chrf", "test/bleu_lc", "test/bleu_greedy", "test/chrf_greedy"):
        assert single["metrics"][key] == pytest.approx(double["metrics"][key], abs=1e-9), key
    assert single["metrics"]["test/chrf"] > 0.0
