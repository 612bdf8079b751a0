"""Running the seqlab CLI in tests: in-process for speed, or as a subprocess like a user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import repo_root

CONFIGS = repo_root() / "configs"


def run_options(tmp_path: Path, data_path: Path) -> list[str]:
    """Point data, logs and checkpoints at test folders; no progress bar."""
    return [
        "--data.init_args.path", str(data_path),
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
        "--trainer.enable_progress_bar", "false",
    ]


def seqlab(*args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``seqlab ARGS`` in a subprocess (from the repo root, offline) -> the completed process, output captured."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONWARNINGS": "ignore",
                   **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "seqlab.cli", *args], cwd=repo_root(), env=environment,
        capture_output=True, text=True, timeout=timeout,
    )


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
