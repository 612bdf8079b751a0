"""Every YAML in configs/ parses and runs ``--trainer.fast_dev_run 2`` on a real data slice of its task."""

import pytest

from seqlab.cli import SeqlabCLI
from tests.cli_helpers import CONFIGS, run_options
from tests.conftest import require_shared_data, write_conll_slice, write_head_lines, write_lines_slice

#: configs/multitask/ recipes name their tasks' files themselves: tests/test_multitask.py runs the README's lines
TASK_CONFIGS = sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent.name not in ("trainer", "multitask"))
DATA_FOR = {"ner": "conll_slice", "sentiment": "sst2_slice", "speech": "timit_sample", "translation": "multi30k_slice"}
#: configs of another dataset than their task folder's default: config stem prefix -> data fixture
DATA_BY_PREFIX = {"sst5": "sst_trees_slice"}
#: configs whose data module runs a transformer over every sentence (to cache its features): a smaller slice
TRANSFORMER_DATA_FOR = {"ner": "conll_tiny", "sentiment": "sst2_tiny"}
TRANSFORMER_DATA_BY_PREFIX = {"sst5": "sst_trees_tiny"}


def data_fixture(config) -> str:
    by_task, by_prefix = ((TRANSFORMER_DATA_FOR, TRANSFORMER_DATA_BY_PREFIX) if config.stem.endswith("_minilm")
                          else (DATA_FOR, DATA_BY_PREFIX))
    return next((f for prefix, f in by_prefix.items() if config.stem.startswith(prefix)), by_task[config.parent.name])


@pytest.fixture(scope="session")
def conll_tiny(tmp_path_factory):
    """64 train / 32 valid / 32 test sentences of CoNLL-2003."""
    source, target = require_shared_data("ner/conll2003/iob2"), tmp_path_factory.mktemp("conll_tiny")
    for name, count in (("train", 64), ("valid", 32), ("test", 32)):
        write_conll_slice(source / f"{name}.txt.gz", target / f"{name}.txt", count)
    return target


@pytest.fixture(scope="session")
def sst2_tiny(tmp_path_factory):
    """128 train phrases / 64 dev / 64 test sentences of SST-2."""
    source, target = require_shared_data("sentiment/sst2"), tmp_path_factory.mktemp("sst2_tiny")
    for name, target_name, count in (("train.tsv.gz", "train.tsv", 128), ("dev.tsv", "dev.tsv", 64),
                                     ("test.tsv", "test.tsv", 64)):
        write_lines_slice(source / name, target / target_name, count)
    return target


@pytest.fixture(scope="session")
def sst_trees_tiny(tmp_path_factory):
    """The first 16 train / 16 dev / 16 test SST trees (about 600 training phrases)."""
    source, target = require_shared_data("sentiment/sst_trees"), tmp_path_factory.mktemp("sst_trees_tiny")
    for split in ("train", "dev", "test"):
        write_head_lines(source / f"{split}.txt.gz", target / f"{split}.txt", 16)
    return target


@pytest.mark.parametrize("config", TASK_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_runs_fast_dev_run(config, tmp_path, request):
    data = request.getfixturevalue(data_fixture(config))
    cli = SeqlabCLI(args=["fit", "--config", str(config), "--config", str(CONFIGS / "trainer" / "default.yaml"),
                          *run_options(tmp_path, data), "--trainer.fast_dev_run", "2"])
    assert cli.trainer.state.finished
    assert cli.trainer.global_step == 2
    assert cli.model.monitor in cli.trainer.callback_metrics


def test_every_task_folder_has_data_for_its_configs():
    assert {p.parent.name for p in TASK_CONFIGS} <= set(DATA_FOR)


def test_ddp_trainer_config_parses(tmp_path, conll_slice):
    cli = SeqlabCLI(run=False, args=["--config", str(CONFIGS / "ner" / "conll2003_bilstm_softmax.yaml"),
                                     "--config", str(CONFIGS / "trainer" / "ddp_cpu.yaml"),
                                     *run_options(tmp_path, conll_slice)])
    assert cli.config.trainer.devices == 2 and cli.config.trainer.strategy == "ddp"


def test_seed_recipe_config_builds_the_recipe(tmp_path, sst2_slice):
    """sst2_seed_recipe.yaml is the textbook model: frozen GloVe rows, a unidirectional LSTM 64 with variational
    dropout 0.1 on inputs and state, its last state, Dense ReLU 64, Dropout 0.5, softmax; and fast_dev_run leaves the
    frozen rows as loaded."""
    import torch

    from seqlab.models import LastStatePooling, RecurrentEncoder, VariationalLSTMCell

    cli = SeqlabCLI(args=["fit", "--config", str(CONFIGS / "sentiment" / "sst2_seed_recipe.yaml"),
                          "--config", str(CONFIGS / "trainer" / "default.yaml"),
                          *run_options(tmp_path, sst2_slice), "--trainer.fast_dev_run", "2"])
    model = cli.model.model  # the plain-torch network
    words = model.body.embedder.words.embedding.weight
    assert not words.requires_grad and words.shape[1] == 50
    torch.testing.assert_close(words, cli.datamodule.word_vectors)  # the GloVe rows, untouched by two steps
    encoder = model.body.encoder
    assert isinstance(encoder, RecurrentEncoder) and encoder.output_size == 64 and len(encoder.layers) == 1
    (layer,) = encoder.layers[0]
    assert isinstance(layer.cell, VariationalLSTMCell) and not layer.reverse
    assert (layer.cell.input_dropout, layer.cell.recurrent_dropout) == (0.1, 0.1)
    assert isinstance(model.head.pooling, LastStatePooling)
    dense, relu, dropout, out = model.head.classifier.layers
    assert (dense.out_features, dropout.p, out.out_features) == (64, 0.5, 2)


#: configs trained two steps in bfloat16 mixed precision on CPU with configs/trainer/bf16.yaml (their fused Adam is
#: unfused to clip gradients); speech and translation configs take minutes so on CPUs without native bfloat16: their
#: tasks train in bf16-mixed at small sizes in tests/test_mixed_precision.py
BF16_CONFIGS = ["ner/conll2003_bilstm_crf", "sentiment/sst2_bilstm_attention"]


@pytest.mark.parametrize("name", BF16_CONFIGS)
def test_bf16_trainer_config_runs_on_cpu(name, tmp_path, request):
    import torch

    config = CONFIGS / f"{name}.yaml"
    data = request.getfixturevalue(data_fixture(config))
    cli = SeqlabCLI(args=["fit", "--config", str(config), "--config", str(CONFIGS / "trainer" / "default.yaml"),
                          "--config", str(CONFIGS / "trainer" / "bf16.yaml"), *run_options(tmp_path, data),
                          "--trainer.accelerator", "cpu", "--trainer.fast_dev_run", "2"])
    assert cli.trainer.precision == "bf16-mixed" and cli.trainer.global_step == 2
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])


@pytest.mark.parametrize("name, expected", [
    ("gpu", {"accelerator": "gpu", "devices": 1, "precision": "bf16-mixed"}),
    ("ddp_gpu", {"accelerator": "gpu", "devices": -1, "strategy": "ddp"}),
    ("multinode", {"accelerator": "gpu", "devices": -1, "num_nodes": 2, "strategy": "ddp"}),
    ("bf16", {"precision": "bf16-mixed"}),
])
def test_gpu_trainer_configs_parse_as_trainer_options(name, expected):
    """Parsed against the Trainer's signature (a misspelled key or a wrong type fails) and seqlab's option checks;
    building them needs GPUs."""
    from jsonargparse import ActionConfigFile, ArgumentParser
    from pytorch_lightning import Trainer

    from seqlab.config_checks import check_trainer_options

    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_class_arguments(Trainer, "trainer")
    trainer = parser.parse_args(["--config", str(CONFIGS / "trainer" / f"{name}.yaml")]).trainer
    check_trainer_options(trainer)
    assert {key: trainer[key] for key in expected} == expected


#: every config that trains on SST-2 -> where its sentiment data options are
SST2_DATA = {**{p: ("data", "init_args") for p in sorted(CONFIGS.glob("sentiment/sst2_*.yaml"))},
             CONFIGS / "multitask" / "conll2003_ner_sst2.yaml": ("data", "init_args", "tasks", "sentiment", "init_args")}


@pytest.mark.parametrize("config", list(SST2_DATA), ids=lambda p: p.stem)
def test_sst2_configs_split_and_lower_case_raw_text_as_sst2_is(config):
    """GLUE's SST-2 and GloVe 6B are lower-cased and PTB-tokenized: users' raw text must reach the model so."""
    import functools
    import importlib

    import yaml

    options = functools.reduce(lambda node, key: node[key], SST2_DATA[config], yaml.safe_load(config.read_text()))
    spec = options["pre_tokenizer"]
    module, _, name = spec["class_path"].rpartition(".")
    pre_tokenizer = getattr(importlib.import_module(module), name)(**spec.get("init_args", {}))
    assert pre_tokenizer.words("Great movie! It's not bad.") == ["great", "movie", "!", "it", "'s", "not", "bad", "."]
