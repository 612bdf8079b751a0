"""Two "nodes" of one process each on loopback, started by torchrun as on a cluster (gloo): ``seqlab fit`` with
``configs/trainer/multinode.yaml`` and ``--trainer.num_nodes 2``. Both ranks see disjoint data, together all of
it, and the validation metric of the run equals a single-process validation of its final checkpoint."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import defaultdict

import pytest
import torch

from tests.cli_helpers import CONFIGS, read_rows, seqlab
from tests.conftest import repo_root, require_shared_data, write_conll_slice

pytestmark = pytest.mark.slow

SOFTMAX = str(CONFIGS / "ner" / "conll2003_bilstm_softmax.yaml")
TRAIN, VALID, BATCH, EPOCHS = 400, 60, 20, 5  # 20 global batches an epoch (no padding): 10 steps on each rank
STEPS = EPOCHS * TRAIN // (2 * BATCH)


@pytest.fixture(scope="module")
def small_conll(tmp_path_factory):
    source = require_shared_data("ner/conll2003/iob2")
    target = tmp_path_factory.mktemp("small_conll")
    for name, count in (("train", TRAIN), ("valid", VALID), ("test", 10)):
        write_conll_slice(source / f"{name}.txt.gz", target / f"{name}.txt", count)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def common(tmp_path, data):
    return ["--config", SOFTMAX, "--seed_everything", "3", "--data.init_args.path", str(data),
            "--data.init_args.batch_size", str(BATCH), "--model.init_args.encoder.init_args.hidden_size", "64",
            "--model.init_args.optimizer.init_args.lr", "0.01", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
            "--results_path", str(tmp_path / "results.jsonl")]


def test_two_nodes_by_torchrun_see_disjoint_data_and_validate_like_one_process(tmp_path, small_conll):
    recorder = tmp_path / "recorder.yaml"
    recorder.write_text(json.dumps({"trainer": {"callbacks": [{
        "class_path": "tests.rank_recorder.RecordExamples", "init_args": {"path": str(tmp_path / "seen")}}]}}))
    port = free_port()
    fit = ["fit", *common(tmp_path, small_conll), "--config", str(CONFIGS / "trainer" / "multinode.yaml"),
           "--config", str(recorder), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
           "--trainer.num_nodes", "2", "--trainer.max_epochs", str(EPOCHS),
           "--model.init_args.checkpoint_every_n_steps", str(STEPS)]  # last-step.ckpt: the final weights
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONWARNINGS": "ignore",
           "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                               "--node_rank", str(rank), "--master_addr", "127.0.0.1", "--master_port", str(port),
                               "-m", "seqlab.cli", *fit], cwd=repo_root(), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    try:
        errors = [node.communicate(timeout=600)[1] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    assert [node.returncode for node in nodes] == [0, 0], errors[0][-3000:] + errors[1][-3000:]

    seen = defaultdict(list)  # (stage, epoch, rank) -> example indices
    for rank in (0, 1):
        for line in (tmp_path / "seen" / f"rank{rank}.jsonl").read_text().splitlines():
            row = json.loads(line)
            assert row["rank"] == rank
            seen[row["stage"], row["epoch"], rank].extend(row["index"])
    for epoch in range(EPOCHS):
        for stage, size in (("train", TRAIN), ("validate", VALID)):
            first, second = seen[stage, epoch, 0], seen[stage, epoch, 1]
            assert first and second and not set(first) & set(second), (stage, epoch)
            assert sorted(first + second) == list(range(size)), (stage, epoch)
    assert seen["train", 0, 0] != seen["train", 1, 0]  # each epoch its own order

    (fit_row,) = read_rows(tmp_path / "results.jsonl")
    assert fit_row["world_size"] == 2
    final = max((tmp_path / "runs").rglob("last-step.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    assert torch.load(final, map_location="cpu", weights_only=True)["global_step"] == STEPS
    single = seqlab("validate", *common(tmp_path, small_conll), "--ckpt_path", str(final), "--trainer.logger", "false",
                    env={"OMP_NUM_THREADS": "1"})
    assert single.returncode == 0, single.stderr[-4000:]
    validate_row = read_rows(tmp_path / "results.jsonl")[-1]
    assert validate_row["world_size"] == 1
    assert fit_row["metrics"]["val/f1"] > 0.05  # learnt something, so equal values are not both zero
    for name in ("val/f1", "val/precision", "val/recall"):
        assert validate_row["metrics"][name] == pytest.approx(fit_row["metrics"][name], abs=1e-6), name
