#!/usr/bin/env bash
# Full train -> best dev checkpoint -> validate and test, for one config; one row per stage in results/quality.jsonl.
# The data folder under $DATA follows the config's task folder (ner -> ner/conll2003/iob2, sentiment -> sentiment/sst2
# or sentiment/sst_trees for sst5_*, speech -> speech/timit_sample, translation -> translation/multi30k/raw).
# usage: scripts/quality_run.sh configs/ner/conll2003_bilstm_crf.yaml [extra seqlab options...]
set -euo pipefail
config=$1; shift
DATA=${DATA:-../shared/data}
name=$(basename "$config" .yaml)
case "$(basename "$(dirname "$config")")" in
  ner) data="$DATA/ner/conll2003/iob2" ;;
  sentiment) case "$name" in sst5*) data="$DATA/sentiment/sst_trees" ;; *) data="$DATA/sentiment/sst2" ;; esac ;;
  speech) data="$DATA/speech/timit_sample" ;;
  translation) data="$DATA/translation/multi30k/raw" ;;
  *) echo "quality_run.sh: no data folder known for $config" >&2; exit 2 ;;
esac
common=(--config "$config" --data.init_args.path "$data" --trainer.enable_progress_bar false
        --trainer.logger.init_args.save_dir runs/quality --trainer.logger.init_args.name "$name" "$@")
start=$(date +%s)
.venv/bin/seqlab fit "${common[@]}" --results_path results/quality.jsonl
echo "train wall time: $(( $(date +%s) - start )) s ($name)"
.venv/bin/seqlab validate "${common[@]}" --ckpt_path best --results_path results/quality.jsonl
.venv/bin/seqlab test "${common[@]}" --ckpt_path best --results_path results/quality.jsonl
