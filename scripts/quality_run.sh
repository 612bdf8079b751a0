#!/usr/bin/env bash
# Full CoNLL-2003 train -> best dev checkpoint -> test, for one config; one row per stage in results/quality.jsonl.
# usage: scripts/quality_run.sh configs/ner/conll2003_bilstm_crf.yaml [extra seqlab options...]
set -euo pipefail
config=$1; shift
DATA=${DATA:-../shared/data}
name=$(basename "$config" .yaml)
common=(--config "$config" --data.init_args.path "$DATA/ner/conll2003/iob2" --trainer.enable_progress_bar false
        --trainer.logger.init_args.save_dir runs/quality --trainer.logger.init_args.name "$name" "$@")
start=$(date +%s)
.venv/bin/seqlab fit "${common[@]}" --results_path results/quality.jsonl
echo "train wall time: $(( $(date +%s) - start )) s ($name)"
.venv/bin/seqlab validate "${common[@]}" --ckpt_path best --results_path results/quality.jsonl
.venv/bin/seqlab test "${common[@]}" --ckpt_path best --results_path results/quality.jsonl
