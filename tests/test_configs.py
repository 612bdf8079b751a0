"""Every YAML in configs/ parses and runs ``--trainer.fast_dev_run 2`` on a real data slice of its task."""

import pytest

from seqlab.cli import SeqlabCLI
from tests.cli_helpers import CONFIGS, run_options

TASK_CONFIGS = sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent.name != "trainer")
DATA_FOR = {"ner": "conll_slice", "sentiment": "sst2_slice", "speech": "timit_sample", "translation": "multi30k_slice"}
#: configs of another dataset than their task folder's default: config stem prefix -> data fixture
DATA_BY_PREFIX = {"sst5": "sst_trees_slice"}


def data_fixture(config) -> str:
    return next((f for prefix, f in DATA_BY_PREFIX.items() if config.stem.startswith(prefix)), DATA_FOR[config.parent.name])


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
