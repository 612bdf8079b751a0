# seqlab: `make demo` trains the NER default on CoNLL-2003; `make test` runs the test suite.
DATA ?= ../shared/data
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Without an NVIDIA GPU, pin the CPU build of torch (no CUDA downloads); with one, resolve normally.
TORCH_CONSTRAINT := $(shell command -v nvidia-smi >/dev/null 2>&1 || echo "-c constraints/cpu.txt")
CONLL := $(DATA)/ner/conll2003/iob2
DEMO_RUN := runs/demo

.PHONY: install demo test test-fast bench clean fixtures

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints/cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(TORCH_CONSTRAINT) -e '.[glove,minilm,export,serve,test]'
	touch $@

demo: install
	rm -rf $(DEMO_RUN)
	$(BIN)/seqlab fit --config configs/ner/conll2003_bilstm_crf.yaml --data.path $(CONLL) \
		--trainer.max_epochs 3 --trainer.max_time 00:00:10:00 --trainer.default_root_dir $(DEMO_RUN) \
		--trainer.logger.init_args.save_dir $(DEMO_RUN) --trainer.logger.init_args.name ner
	$(BIN)/seqlab validate --config configs/ner/conll2003_bilstm_crf.yaml --data.path $(CONLL) \
		--trainer.logger.init_args.save_dir $(DEMO_RUN) --trainer.logger.init_args.name ner --ckpt_path best
	$(BIN)/seqlab test --config configs/ner/conll2003_bilstm_crf.yaml --data.path $(CONLL) \
		--trainer.logger.init_args.save_dir $(DEMO_RUN) --trainer.logger.init_args.name ner --ckpt_path best

# Checkpoints written by the code of e463e89 (before the data modules were rebuilt), for tests/test_checkpoint_compat.py
# and tests/test_inference.py: built once (about 5 min) in a git worktree of that commit, never committed.
FIXTURES := tests/fixtures/e463e89
fixtures: $(FIXTURES)/ner.ckpt
$(FIXTURES)/ner.ckpt: $(VENV)/.installed $(FIXTURES)/make_fixtures.sh $(FIXTURES)/make_slices.py
	WORK=$$(mktemp -d) && git worktree add -q --detach $$WORK/e463e89 e463e89 && \
	  bash $(FIXTURES)/make_fixtures.sh $$WORK/e463e89 $(abspath $(BIN))/python $(abspath $(DATA)) $$WORK/build && \
	  git worktree remove --force $$WORK/e463e89 && rm -rf $$WORK

# One pytest worker per core (pytest-xdist, a test file per worker at a time), one torch thread each.
TEST_WORKERS ?= 2
test: install fixtures
	SEQLAB_DATA=$(abspath $(DATA)) OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile \
		--durations=20 tests

test-fast: install fixtures
	SEQLAB_DATA=$(abspath $(DATA)) $(BIN)/python -m pytest -q tests -m "not slow"

# Speed ratios measured in one run (never asserted), each script's rows appended to results/bench/<script>.jsonl:
# ner_speed.py (seqlab Trainer vs raw PyTorch, seqlab CRF vs pytorch-crf, vs Flair), sentiment_speed.py (SST-2
# SentenceClassification, Trainer vs raw loop), speech_speed.py (TIMIT sample FrameClassification, Trainer vs raw loop;
# fbank features on one core vs torchaudio's kaldi.fbank, x real time), translation_speed.py (Multi30k Seq2SeqTranslation,
# Trainer vs raw loop; batched beam search vs per-sentence beam and vs greedy on the test set, with the weights of
# TRANSLATION_CKPT when set, else random ones), ner_inference_vs_flair.py (NER inference tokens/s, seqlab's Predictor and
# model vs Flair 0.15 run from .venv-peers: `make bench-peers` first, else it says so and writes no row). BENCH_ARGS
# goes to all of them (they share their options):
# cell_speed.py: training tokens/s of each custom recurrent cell (eager step loop, and with torch.compile'd steps) and
# of the weight-dropped BiLSTM vs nn.LSTM at NER sizes.
# export_speed.py: the exported NER model under onnxruntime vs the PyTorch predictor (latency p50/p99, tokens/s at
# batch 1 and 32; model only and text to records).
# resume_overhead.py: the resumable training loader vs a plain DataLoader, and its extra time per batch as a share of an
# NER training step (target < 1 %).
# make bench BENCH_ARGS="--windows 3 --threads 1" TRANSLATION_CKPT=runs/.../best.ckpt
BENCH_ARGS ?=
TRANSLATION_CKPT ?=
bench: install
	SEQLAB_DATA=$(abspath $(DATA)) $(BIN)/python benchmarks/ner_speed.py $(BENCH_ARGS)
	SEQLAB_DATA=$(abspath $(DATA)) $(BIN)/python benchmarks/sentiment_speed.py $(BENCH_ARGS)
	SEQLAB_DATA=$(abspath $(DATA)) $(BIN)/python benchmarks/speech_speed.py $(BENCH_ARGS)
	SEQLAB_DATA=$(abspath $(DATA)) $(BIN)/python benchmarks/translation_speed.py $(BENCH_ARGS) \
	  $(if $(TRANSLATION_CKPT),--checkpoint $(TRANSLATION_CKPT))
	SEQLAB_DATA=$(abspath $(DATA)) $(BIN)/python benchmarks/ner_inference_vs_flair.py $(BENCH_ARGS)
	SEQLAB_DATA=$(abspath $(DATA)) $(BIN)/python benchmarks/serve_load.py $(BENCH_ARGS)  # needs make fixtures (NER ckpt)
	SEQLAB_DATA=$(abspath $(DATA)) $(BIN)/python benchmarks/cell_speed.py $(BENCH_ARGS)
	SEQLAB_DATA=$(abspath $(DATA)) $(BIN)/python benchmarks/export_speed.py $(BENCH_ARGS)  # ONNX vs PyTorch NER
	SEQLAB_DATA=$(abspath $(DATA)) $(BIN)/python benchmarks/resume_overhead.py $(BENCH_ARGS)

# benchmarks/streaming_memory.py: peak RSS and training tokens/s of translation fits, Multi30k in memory vs Multi30k,
# 10x and 100x Multi30k streamed (synthetic corpora in a temporary folder; about 20 min on 2 CPU cores).
.PHONY: bench-streaming gpu-check
bench-streaming: install
	SEQLAB_DATA=$(abspath $(DATA)) $(BIN)/python benchmarks/streaming_memory.py $(BENCH_ARGS)

# scripts/gpu_check.sh on a CUDA machine: every task config in bf16-mixed and 32-true, rows to results/bench/gpu.jsonl.
GPU_CHECK_ARGS ?=
gpu-check:
	SEQLAB_DATA=$(abspath $(DATA)) bash scripts/gpu_check.sh $(GPU_CHECK_ARGS)

# Flair 0.15 in its own venv for benchmarks/ner_inference_vs_flair.py (run as a subprocess; never a dependency of
# seqlab), with the CPU build of torch pinned: a CUDA torch would download gigabytes and measure nothing more.
PEERS_VENV ?= .venv-peers
.PHONY: bench-peers
bench-peers: $(PEERS_VENV)/.installed
$(PEERS_VENV)/.installed: constraints/cpu.txt
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -c constraints/cpu.txt 'flair>=0.15,<0.16'
	touch $@

clean:
	rm -rf runs lightning_logs .pytest_cache

# Train and test every entry of leaderboards/default.yaml (about 2 h 35 min on 2 CPU cores), then write LEADERBOARD.md,
# results/leaderboard.csv and the plots in results/leaderboard/; rows are appended to results/leaderboard.jsonl.
.PHONY: leaderboard
leaderboard: install
	SEQLAB_DATA=$(abspath $(DATA)) $(BIN)/python -m seqlab.leaderboard leaderboards/default.yaml
