"""scripts/gpu_check.sh and scripts/gpu_check.py: without a CUDA device, one line and exit status 2 (nothing installed,
nothing run); on the CPU (``--accelerator cpu --steps 2``) the row a config gets: its training tokens/s in bf16-mixed
against 32-true, with each run's step count."""

from __future__ import annotations

import importlib.util
import json
import subprocess

import pytest
import torch

from tests.conftest import repo_root

SCRIPTS = repo_root() / "scripts"
TINY = ["--model.init_args.source_embedding.init_args.embedding_dim", "16",
        "--model.init_args.encoder.init_args.hidden_size", "16", "--model.init_args.decoder.init_args.embedding_dim",
        "16", "--model.init_args.decoder.init_args.hidden_size", "16", "--data.init_args.max_vocab_size", "300"]


def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPTS / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")


@needs_no_cuda
def test_the_shell_script_stops_with_one_line_without_cuda(tmp_path):
    done = subprocess.run(["bash", str(SCRIPTS / "gpu_check.sh"), "--steps", "2", "--output",
                           str(tmp_path / "g.jsonl")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("gpu_check: error: no CUDA device")
    assert done.stdout == "" and not (tmp_path / "g.jsonl").exists()


@needs_no_cuda
def test_the_python_part_stops_with_one_line_without_cuda(capsys):
    assert gpu_check().main(["--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("gpu_check: error: no CUDA device")


def test_an_unknown_config_is_one_line(tmp_path, capsys):
    assert gpu_check().main(["--accelerator", "cpu", "--configs", "ner/nonexistent", "--output",
                             str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no config ner/nonexistent in" in err and "ner/conll2003_bilstm_crf" in err


def test_on_the_cpu_a_config_gets_its_row(tmp_path, multi30k_slice):
    data = tmp_path / "data"
    (data / "translation" / "multi30k").mkdir(parents=True)
    (data / "translation" / "multi30k" / "raw").symlink_to(multi30k_slice, target_is_directory=True)
    output = tmp_path / "gpu.jsonl"
    code = gpu_check().main(["--accelerator", "cpu", "--steps", "2", "--configs", "translation/multi30k_de_en_lstm",
                             "--data", str(data), "--cache-dir", str(tmp_path / "cache"), "--output", str(output), "--",
                             *TINY])
    assert code == 0
    [row] = [json.loads(line) for line in output.read_text().splitlines()]
    assert row["name"] == "translation/multi30k_de_en_lstm" and row["unit"] == "tokens/s"
    assert row["bf16-mixed_global_step"] == row["32-true_global_step"] == 2
    assert row["seqlab"] == row["bf16-mixed_tokens_per_s"] > 0 and row["reference"] == row["32-true_tokens_per_s"] > 0
    assert row["ratio"] == pytest.approx(row["seqlab"] / row["reference"])
    assert row["accelerator"] == "cpu" and row["devices"] == 1 and "bf16-mixed_error" not in row
