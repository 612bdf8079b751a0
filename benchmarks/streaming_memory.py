"""Memory and speed of the Streaming training split on translation corpora 10x and 100x the size of Multi30k.

Corpora: Multi30k's 29,000 training pairs (the shared data's files), and synthetic corpora ``--sizes`` times that
size: the real pairs repeated, each copy in its own random order, written as plain text into a temporary folder
(``--workdir``, never the repository; about 3 MB per 1x), with Multi30k's validation and test files beside them.

Throughput of the data path (load-robust): in one process, each loader's time to fetch a batch (in memory and
streamed over Multi30k, fetched in turn) plus a training step of the Bahdanau config's model per target token.

Memory: ``seqlab fit`` of the Multi30k LSTM config (``configs/translation/multi30k_de_en_lstm.yaml``; ``--model-size
small`` shrinks it so that a step is cheap) for ``--steps`` steps in a subprocess each, without validation, one torch
thread per process unless ``--threads``: Multi30k in memory (the default ``InMemory`` dataset; also each of
``--in-memory`` larger corpora, for contrast), Multi30k streamed, and each larger corpus streamed
(``seqlab.data_modules.Streaming``, shuffle buffer 10,000). Peak RSS: the child's ``ru_maxrss`` from ``os.wait4``
(the whole process: vocabulary fitting, data preparation and training; it counts the pages of memory-mapped Arrow
files read, which the kernel can drop), and the peak of its anonymous resident memory (``RssAnon``, polled every
0.1 s) beside it; tokens/s of the whole run: source tokens per
second of training (seqlab's ``ThroughputMeter``; data loading included, validation excluded), runs one after the
other, so a change in the machine's load between them weighs in.

Rows (results/bench/streaming_memory.jsonl): ``tokens_per_s_data_path`` (streaming over in memory; target >= 0.9),
``peak_rss_<N>x_streaming`` (that run over Multi30k in memory; target <= 1.5), ``peak_rss_<N>x_in_memory``
(likewise, for contrast) and ``tokens_per_s_<N>x_streaming`` (the whole run's, over Multi30k in memory's). Never
asserts.
Example: ``python benchmarks/streaming_memory.py --steps 300 --sizes 10 100``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # benchmarks/ is not a package: find paired.py beside us
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from paired import REPO_ROOT, add_common_arguments, append_rows, print_table, row  # noqa: E402

CONFIG = REPO_ROOT / "configs" / "translation" / "multi30k_de_en_lstm.yaml"
METER = "seqlab.leaderboard.meter.ThroughputMeter"
STREAMING = {"class_path": "seqlab.data_modules.Streaming", "init_args": {"shuffle_buffer": 10000}}
SMALL = ["--model.init_args.source_embedding.init_args.embedding_dim", "128",
         "--model.init_args.encoder.init_args.hidden_size", "128",
         "--model.init_args.encoder.init_args.num_layers", "1",
         "--model.init_args.decoder.init_args.embedding_dim", "128",
         "--model.init_args.decoder.init_args.hidden_size", "256",
         "--model.init_args.decoder.init_args.num_layers", "1"]
PAIRS = 29000  # Multi30k's training pairs


def lines_of(folder: Path, name: str) -> list[str]:
    """The lines of ``folder/name.gz`` (or ``folder/name``)."""
    packed = folder / f"{name}.gz"
    with (gzip.open(packed, "rt", encoding="utf-8") if packed.exists() else open(folder / name, encoding="utf-8")) as f:
        return f.readlines()


def write_corpus(raw: Path, folder: Path, factor: int) -> int:
    """``folder`` with train.de/train.en: the pairs of ``raw`` (Multi30k) ``factor`` times, each copy shuffled; its
    other files (validation, test) linked. Returns the number of training pairs."""
    pairs = list(zip(lines_of(raw, "train.de"), lines_of(raw, "train.en")))
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(factor)
    with open(folder / "train.de", "w", encoding="utf-8") as de, open(folder / "train.en", "w", encoding="utf-8") as en:
        for _ in range(factor):
            rng.shuffle(pairs)
            de.writelines(source for source, _ in pairs)
            en.writelines(target for _, target in pairs)
    for path in raw.iterdir():
        if not path.name.startswith("train.") and not (folder / path.name).exists():
            (folder / path.name).symlink_to(path.resolve())
    return len(pairs) * factor


def resident(pid: int, key: str) -> float:
    """A line of /proc/PID/status in MB (0 once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            return next((int(line.split()[1]) / 1024 for line in status if line.startswith(key + ":")), 0.0)
    except OSError:
        return 0.0


def fit(data: Path, work: Path, name: str, streaming: bool, args: argparse.Namespace) -> dict:
    """One ``seqlab fit`` child: its ThroughputMeter numbers, its peak RSS and wall time."""
    stats = work / f"{name}.json"
    command = [sys.executable, "-m", "seqlab.cli", "fit", "--config", str(CONFIG), "--seed_everything", "0",
               "--data.init_args.path", str(data), "--data.init_args.cache_dir", str(work / "cache"),
               "--trainer.max_steps", str(args.steps), "--trainer.limit_val_batches", "0",
               "--trainer.num_sanity_val_steps", "0", "--trainer.logger", "false",
               "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(work / name),
               "--model.init_args.lr_scheduler", "null",
               "--trainer.callbacks+=" + json.dumps({"class_path": METER, "init_args": {"output_path": str(stats)}}),
               *(SMALL if args.model_size == "small" else [])]
    if streaming:
        command += ["--data.init_args.dataset", json.dumps(STREAMING)]
    threads = str(args.threads or 1)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "HF_DATASETS_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    start, load = time.perf_counter(), os.getloadavg()[0]
    with open(work / f"{name}.log", "w", encoding="utf-8") as log:
        child = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        anonymous = 0.0  # the peak of its anonymous resident memory (RssAnon: not the file pages it maps), polled
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            anonymous = max(anonymous, resident(child.pid, "RssAnon"))
            time.sleep(0.1)
    if os.waitstatus_to_exitcode(status) != 0:
        tail = (work / f"{name}.log").read_text(encoding="utf-8").strip().splitlines()[-5:]
        raise SystemExit(f"{name}: seqlab fit failed:\n" + "\n".join(tail))
    result = json.loads(stats.read_text(encoding="utf-8"))
    result.update(peak_rss_mb=usage.ru_maxrss / 1024, peak_anon_mb=anonymous, wall_s=time.perf_counter() - start, load_at_start=load)
    print(f"{name}: peak RSS {result['peak_rss_mb']:.0f} MB (anonymous {anonymous:.0f} MB), "
          f"{result['tokens_per_s']:.0f} tokens/s over "
          f"{result['global_step']} steps, {result['wall_s']:.0f} s in all", flush=True)
    return result


def endless(loader):
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def data_path_throughput(raw: Path, work: Path, args: argparse.Namespace) -> dict:
    """Training tokens/s (real target tokens) with batches from the streaming and from the in-memory loader over the
    same Multi30k files, in one process, as step time + fetch time: each loader's seconds to fetch a batch (windows of
    ``--fetch-batches`` batches from each loader in turn, which goes first alternating, after a warm-up window; the
    streaming loader's first fill of its shuffle buffer is spread over the epoch's batches), and a training step of
    the Bahdanau config's model in plain PyTorch (``translation_speed``) per target token, over ``--step-batches``
    batches from both loaders. Returns the figures."""
    import datasets
    import torch
    from translation_speed import build_task, target_tokens, translation_loss

    from paired import raw_stepper
    from seqlab.data_modules import Streaming, TranslationData

    datasets.disable_progress_bars()
    torch.set_num_threads(args.threads or 1)
    in_memory = TranslationData(path=str(raw), batch_size=64, seed=0, cache_dir=str(work / "cache"))
    in_memory.setup("fit")
    streamed = TranslationData(path=str(raw), batch_size=64, seed=0, cache_dir=str(work / "cache"),
                               dataset=Streaming(shuffle_buffer=10000))
    streamed.load_state_dict(in_memory.state_dict())  # the same tokenizer (fitting it again would give the same)
    task = build_task(in_memory, None)
    tokens = target_tokens(task.model.target_padding_idx)
    loaders = {"in_memory": in_memory.train_dataloader(), "streaming": streamed.train_dataloader()}
    epoch_batches = {side: len(loader) for side, loader in loaders.items()}
    loaders, first = {side: endless(loader) for side, loader in loaders.items()}, {}
    for side, loader in loaders.items():
        start = time.perf_counter()
        next(loader)
        first[side] = time.perf_counter() - start
    fetch: dict[str, list[float]] = {side: [] for side in loaders}
    kept: dict[str, list[dict]] = {side: [] for side in loaders}
    for window in range(args.windows + 1):
        for side in sorted(loaders, reverse=window % 2 == 1):
            start = time.perf_counter()
            batches = [next(loaders[side]) for _ in range(args.fetch_batches)]
            if window:  # window 0 warms up
                fetch[side].append((time.perf_counter() - start) / len(batches))
                kept[side] += batches
    step, step_seconds, step_tokens = raw_stepper(task, translation_loss), 0.0, 0
    mixed = [batch for pair in zip(kept["in_memory"], kept["streaming"]) for batch in pair][:args.step_batches + 2]
    for number, batch in enumerate(mixed):
        start = time.perf_counter()
        step(batch)
        if number >= 2:  # two warm-up steps
            step_seconds, step_tokens = step_seconds + time.perf_counter() - start, step_tokens + tokens(batch)
    per_token = step_seconds / step_tokens
    result = {"step_ms_per_1k_tokens": per_token * 1e6}
    for side in loaders:
        batch_tokens = statistics.mean(map(tokens, kept[side]))
        fetched = statistics.median(fetch[side]) + first[side] / epoch_batches[side]
        result[side] = batch_tokens / (per_token * batch_tokens + fetched)
        result[f"{side}_fetch_ms"] = round(fetched * 1e3, 3)
        result[f"{side}_tokens_per_batch"] = round(batch_tokens, 1)
        result[f"{side}_first_batch_s"] = round(first[side], 3)
    print(f"data path: fetch {result['in_memory_fetch_ms']:.2f} ms a batch in memory, "
          f"{result['streaming_fetch_ms']:.2f} ms streamed (first batch {first['streaming']:.2f} s, spread over "
          f"{epoch_batches['streaming']}); a step {per_token * 1e3 * batch_tokens:.0f} ms for "
          f"{batch_tokens:.0f} target tokens; {result['streaming']:.0f} vs {result['in_memory']:.0f} tokens/s",
          flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, "the shared data folder (translation/multi30k/raw inside)", "streaming_memory.jsonl")
    parser.add_argument("--steps", type=int, default=300, help="training steps per run (fewer than an epoch: 453)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100], help="synthetic corpora, x Multi30k")
    parser.add_argument("--in-memory", type=int, nargs="*", default=[10],
                        help="larger corpora also trained in memory, for contrast (of --sizes)")
    parser.add_argument("--model-size", choices=("small", "config"), default="small")
    parser.add_argument("--workdir", type=Path, default=None, help="for the corpora and runs (default: a temp dir)")
    parser.add_argument("--fetch-batches", type=int, default=50,
                        help="batches per loader and window of the data-path comparison (0: none)")
    parser.add_argument("--step-batches", type=int, default=20, help="training steps timed for the data-path "
                        "comparison")
    args = parser.parse_args(argv)
    if not 0 <= args.steps < PAIRS // 64:
        parser.error(f"--steps must be between 0 (no fits) and {PAIRS // 64 - 1}: the runs have no validation, so no "
                     "epoch may end")
    raw = args.data / "translation" / "multi30k" / "raw"
    with tempfile.TemporaryDirectory(dir=args.workdir) as temporary:
        work = Path(temporary)
        print(f"corpora and runs in {work}; {args.steps} steps per run, model {args.model_size}, "
              f"{args.threads or 1} torch thread(s), load average {os.getloadavg()[0]:.2f}", flush=True)
        data_path = data_path_throughput(raw, work, args) if args.fetch_batches else None
        runs, pairs = {}, {1: len(lines_of(raw, "train.de"))}
        base = fit(raw, work, "1x_in_memory", False, args) if args.steps else {}
        if args.steps:
            runs["1x_streaming"] = fit(raw, work, "1x_streaming", True, args)
        for factor in args.sizes if args.steps else []:
            start = time.perf_counter()
            pairs[factor] = write_corpus(raw, work / f"x{factor}", factor)
            print(f"{factor}x corpus: {pairs[factor]} pairs written in {time.perf_counter() - start:.0f} s", flush=True)
            runs[f"{factor}x_streaming"] = fit(work / f"x{factor}", work, f"{factor}x_streaming", True, args)
            if factor in args.in_memory:
                runs[f"{factor}x_in_memory"] = fit(work / f"x{factor}", work, f"{factor}x_in_memory", False, args)
            (work / f"x{factor}" / "train.de").unlink()  # keep at most one large corpus on disk
            (work / f"x{factor}" / "train.en").unlink()

    rows = []
    if data_path is not None:
        streaming, in_memory = data_path.pop("streaming"), data_path.pop("in_memory")
        rows.append(row("tokens_per_s_data_path", "training target tokens/s with batches from the streaming vs the "
                        "in-memory loader over Multi30k: a step of the Bahdanau config's model per token + each "
                        "loader's fetch time per batch (interleaved; the shuffle buffer's first fill spread over the "
                        "epoch); target >= 0.9", streaming, in_memory, "tokens/s", args, args.fetch_batches,
                        threads=args.threads or 1, **data_path))
    for name, run in runs.items():
        factor = int(name.split("x", 1)[0])
        extra = {"threads": args.threads or 1, "steps": args.steps, "model_size": args.model_size,
                 "baseline_peak_rss_mb": round(base["peak_rss_mb"]), "baseline_tokens_per_s": round(
                     base["tokens_per_s"]), "training_pairs": pairs[factor], "wall_s": round(run["wall_s"], 1),
                 "tokens_per_s": round(run["tokens_per_s"]), "peak_rss_mb": round(run["peak_rss_mb"]),
                 "peak_anon_mb": round(run["peak_anon_mb"]), "baseline_peak_anon_mb": round(base["peak_anon_mb"]),
                 "load_at_start": round(run["load_at_start"], 2)}
        kind = "streamed" if name.endswith("streaming") else "in memory"
        rows.append(row(f"peak_rss_{name}", f"peak RSS of a {args.steps}-step translation fit, {factor}x Multi30k "
                        f"{kind} vs Multi30k in memory" + (" (target <= 1.5)" if kind == "streamed" else ""),
                        run["peak_rss_mb"], base["peak_rss_mb"], "MB", args, args.steps, **extra))
        if kind == "streamed":
            rows.append(row(f"tokens_per_s_{name}", f"training source tokens/s of the whole run, {factor}x Multi30k "
                            "streamed vs Multi30k in memory (runs one after the other: the machine's load between "
                            "them weighs in)", run["tokens_per_s"], base["tokens_per_s"], "tokens/s", args,
                            args.steps, **extra))
    print_table(rows)
    append_rows(rows, args.json)


if __name__ == "__main__":
    main()
