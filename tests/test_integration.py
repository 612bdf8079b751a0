"""The real CLI in subprocesses on a real CoNLL slice: DDP on two CPU processes, resume after a kill."""

import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.cli_helpers import CONFIGS, read_rows, seqlab
from tests.conftest import repo_root

pytestmark = pytest.mark.slow

CRF = str(CONFIGS / "ner" / "conll2003_bilstm_crf.yaml")
DDP = str(CONFIGS / "trainer" / "ddp_cpu.yaml")


def common(tmp_path, data):
    return ["--data.init_args.path", str(data), "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
            "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"]


def test_ddp_fit_then_validate_with_one_and_two_processes_agree(tmp_path, conll_slice):
    results = tmp_path / "results.jsonl"
    fit = seqlab("fit", "--config", CRF, "--config", DDP, *common(tmp_path, conll_slice),
                 "--trainer.max_epochs", "4", "--results_path", str(results))
    assert fit.returncode == 0, fit.stderr[-4000:]
    best = next((tmp_path / "runs").rglob("best-*.ckpt"))
    for extra in ([], ["--config", DDP]):
        run = seqlab("validate", "--config", CRF, *extra, *common(tmp_path, conll_slice), "--ckpt_path", str(best),
                     "--trainer.logger", "false", "--results_path", str(results))
        assert run.returncode == 0, run.stderr[-4000:]
    fit_row, single, double = read_rows(results)
    assert fit_row["world_size"] == 2 and single["world_size"] == 1 and double["world_size"] == 2
    # every validation sentence counted once on 1 or 2 processes: identical entity F1
    assert single["metrics"]["val/f1"] == pytest.approx(double["metrics"]["val/f1"], abs=1e-6)
    # 1,000 training sentences, 4 epochs: far above chance (which is ~0 for entity F1)
    assert single["metrics"]["val/f1"] > 0.3


def test_fit_killed_mid_epoch_resumes_from_last_and_finishes(tmp_path, conll_slice):
    args = ["fit", "--config", CRF, *common(tmp_path, conll_slice), "--trainer.max_epochs", "2",
            "--model.init_args.checkpoint_every_n_steps", "5"]
    process = subprocess.Popen([sys.executable, "-m", "seqlab.cli", *args], cwd=repo_root(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    periodic = None
    while time.time() < deadline and process.poll() is None:
        periodic = next((tmp_path / "runs").rglob("last-step.ckpt"), None)
        if periodic is not None:
            break
        time.sleep(0.2)
    assert periodic is not None, "no periodic checkpoint was written"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not list((tmp_path / "runs").rglob("last.ckpt")), "killed before the first epoch ended"

    resumed = seqlab(*args, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "using checkpoint" in resumed.stderr and "last-step.ckpt" in resumed.stderr
    final = torch.load(next((tmp_path / "runs").rglob("last.ckpt")), map_location="cpu", weights_only=True)
    assert final["epoch"] == 1  # the second (last) epoch completed
    steps_per_epoch = -(-1000 // 32)
    assert final["global_step"] >= 2 * steps_per_epoch - 1
