"""Exact resume: ``seqlab fit`` killed with SIGKILL mid-epoch and resumed with ``--ckpt_path last`` ends with the
weights and validation metrics of the uninterrupted run; the sampler's data-order seed follows --seed_everything."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from seqlab.cli import SeqlabCLI
from tests.cli_helpers import CONFIGS, read_rows, run_options
from tests.conftest import repo_root, require_shared_data, write_conll_slice

CRF = str(CONFIGS / "ner" / "conll2003_bilstm_crf.yaml")
TRAIN, BATCH, EPOCHS, EVERY = 200, 20, 2, 4  # 10 steps an epoch; periodic checkpoints at steps 4, 8, ..., 20
KILL_AFTER = 12  # the first periodic checkpoint inside the second epoch


@pytest.fixture(scope="module")
def tiny_conll(tmp_path_factory):
    source = require_shared_data("ner/conll2003/iob2")
    target = tmp_path_factory.mktemp("tiny_conll")
    for name, count in (("train", TRAIN), ("valid", 60), ("test", 10)):
        write_conll_slice(source / f"{name}.txt.gz", target / f"{name}.txt", count)
    return target


def fit_command(run_dir, data):
    return [sys.executable, "-m", "seqlab.cli", "fit", "--config", CRF, "--seed_everything", "7",
            "--data.init_args.path", str(data), "--data.init_args.batch_size", str(BATCH),
            "--model.init_args.encoder.init_args.hidden_size", "64",  # dropout 0.5 and word dropout stay
            "--model.init_args.checkpoint_every_n_steps", str(EVERY), "--trainer.max_epochs", str(EPOCHS),
            "--trainer.default_root_dir", str(run_dir), "--trainer.logger.init_args.save_dir", str(run_dir / "runs"),
            "--trainer.enable_progress_bar", "false", "--results_path", str(run_dir / "results.jsonl")]


ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}


def step_of(path):
    """The global step of a checkpoint, or None while it is being written."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["global_step"]
    except Exception:
        return None


def final_checkpoint(run_dir):
    """The periodic checkpoint of the last step (each run, resumed or not, writes one at step 20)."""
    found = [torch.load(p, map_location="cpu", weights_only=True) for p in (run_dir / "runs").rglob("last-step.ckpt")]
    return max(found, key=lambda c: c["global_step"])


@pytest.mark.slow
def test_killed_mid_epoch_and_resumed_equals_the_uninterrupted_run(tmp_path, tiny_conll):
    whole_log = tmp_path / "whole.log"
    with whole_log.open("w") as log:  # the uninterrupted run goes on while the other is killed
        whole = subprocess.Popen(fit_command(tmp_path / "whole", tiny_conll), cwd=repo_root(), env=ENV,
                                 stdout=subprocess.DEVNULL, stderr=log)
    killed_dir = tmp_path / "killed"
    process = subprocess.Popen(fit_command(killed_dir, tiny_conll), cwd=repo_root(), env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, step = time.time() + 300, None
        while time.time() < deadline and process.poll() is None:
            runs = killed_dir / "runs"
            periodic = next(runs.rglob("last-step.ckpt"), None) if runs.is_dir() else None
            step = step_of(periodic) if periodic is not None else None
            if step is not None and step >= KILL_AFTER:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        process.wait(timeout=60)
        assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
        assert whole.wait(timeout=300) == 0, whole_log.read_text()[-4000:]
    finally:
        for running in (process, whole):
            if running.poll() is None:
                running.kill()
    newest = max((killed_dir / "runs").rglob("last*.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    stopped_at = step_of(newest)
    assert newest.name == "last-step.ckpt" and stopped_at % (TRAIN // BATCH) != 0, "not killed mid-epoch"

    resumed = subprocess.run([*fit_command(killed_dir, tiny_conll), "--ckpt_path", "last"], cwd=repo_root(), env=ENV,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "last-step.ckpt" in resumed.stderr and "not resumable" not in resumed.stderr

    expected, got = final_checkpoint(tmp_path / "whole"), final_checkpoint(killed_dir)
    assert expected["global_step"] == got["global_step"] == EPOCHS * TRAIN // BATCH
    assert expected["state_dict"].keys() == got["state_dict"].keys()
    for name, weight in expected["state_dict"].items():
        torch.testing.assert_close(got["state_dict"][name], weight, rtol=0, atol=1e-6, msg=name)
    (whole_row,) = read_rows(tmp_path / "whole" / "results.jsonl")
    resumed_row = read_rows(killed_dir / "results.jsonl")[-1]
    validation = {k: v for k, v in whole_row["metrics"].items() if k.startswith("val/")}
    assert validation and validation == pytest.approx(
        {k: v for k, v in resumed_row["metrics"].items() if k.startswith("val/")}, abs=1e-6)


@pytest.mark.parametrize("extra, seed", [([], 5), (["--data.init_args.seed", "3"], 3)])
def test_the_data_order_seed_follows_seed_everything_unless_given(tmp_path, tiny_conll, extra, seed):
    cli = SeqlabCLI(run=False, args=["--config", CRF, *run_options(tmp_path, tiny_conll), "--seed_everything", "5",
                                     *extra])
    assert cli.datamodule.seed == seed
    assert cli.datamodule.train_dataloader().batch_sampler.seed == seed
