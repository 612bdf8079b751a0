#!/usr/bin/env bash
# GPU check (issue 14, item 7): each task config trained a few hundred steps on the GPU in bf16-mixed and 32-true
# (DDP over every visible GPU when there are two or more); one row of tokens (frames)/s and peak GPU memory per config
# appended to results/bench/gpu.jsonl. Options go to scripts/gpu_check.py (--steps, --configs, --precisions, --data,
# --output; --help). Installs nothing itself: runs `make install` first when .venv is missing.
#   scripts/gpu_check.sh --steps 200                      # one config per task, about 5 minutes on one H200
#   scripts/gpu_check.sh --steps 100 --configs all        # every config of leaderboards/default.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  if ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: error: no CUDA device (nvidia-smi lists no GPU); run it on a machine with an NVIDIA GPU" >&2
    exit 2
  fi
  make install >&2
fi
exec .venv/bin/python scripts/gpu_check.py "$@"
