"""GPU check (issue 14, item 7): each task config trained ``--steps`` steps on the GPU in each of ``--precisions``
(bf16-mixed and 32-true), DDP over every visible GPU when there are two or more (``configs/trainer/ddp_gpu.yaml``,
else ``gpu.yaml``), without validation; one row per config appended to ``--output`` (results/bench/gpu.jsonl):
training tokens/s (frames/s for speech) in bf16-mixed against 32-true, with each precision's peak GPU memory
(``torch.cuda.max_memory_allocated`` on rank 0) and step count.

Configs and their data come from the leaderboard spec (``--spec``, default leaderboards/default.yaml: a config's
data path under ``--data``); ``--configs`` picks them by path under configs/ without ``.yaml``
(``translation/multi30k_de_en_bahdanau``), or ``all``. Each run is a ``seqlab fit`` subprocess with seqlab's
``ThroughputMeter``. ``--accelerator cpu`` runs the same on the CPU (the tests do, with ``--steps 2``). Without a CUDA
device (and ``--accelerator gpu``) it stops with one line, exit status 2. A failed run is reported and the others go
on; the exit status is then 1.

Options after ``--`` go to every ``seqlab fit``. Example (one H200, four configs x two precisions, about 5 minutes):
``python scripts/gpu_check.py --steps 200``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = ["ner/conll2003_bilstm_crf", "sentiment/sst2_bilstm_attention", "speech/timit_sample_bilstm",
                   "translation/multi30k_de_en_bahdanau"]
METER = "seqlab.leaderboard.meter.ThroughputMeter"


def config_name(config: Path) -> str:
    """``configs/ner/conll2003_bilstm_crf.yaml`` -> ``ner/conll2003_bilstm_crf``."""
    return config.with_suffix("").as_posix().split("configs/", 1)[-1]


def chosen_entries(spec_path: Path, data: Optional[Path], names: list[str]) -> list:
    """The spec's training entries of the configs ``names`` (``all``: every config once), in the order given."""
    from seqlab.leaderboard.spec import load_spec

    entries = {}
    for entry in load_spec(spec_path, data_root=data).entries:
        if entry.train is not None and entry.configs:
            entries.setdefault(config_name(entry.configs[0]), entry)
    if names == ["all"]:
        return list(entries.values())
    unknown = [name for name in names if name not in entries]
    if unknown:
        raise LookupError(f"no config {', '.join(unknown)} in {spec_path} (known: {', '.join(entries)})")
    return [entries[name] for name in names]


def fit(entry, precision: str, args: argparse.Namespace, work: Path, devices: int) -> dict:
    """One ``seqlab fit`` child -> its ThroughputMeter numbers (or ``{"error": ...}``)."""
    name = f"{config_name(entry.configs[0]).replace('/', '_')}_{precision}"
    stats = work / f"{name}.json"
    trainer = [] if args.accelerator == "cpu" else [
        "--config", str(REPO_ROOT / "configs" / "trainer" / ("ddp_gpu.yaml" if devices > 1 else "gpu.yaml"))]
    command = [sys.executable, "-m", "seqlab.cli", "fit", *(arg for c in entry.configs for arg in ("--config", str(c))),
               *trainer, "--seed_everything", "0", "--data.init_args.path", str(entry.data),
               "--trainer.accelerator", args.accelerator, "--trainer.precision", precision,
               "--trainer.max_steps", str(args.steps), "--trainer.max_epochs", "-1", "--trainer.max_time", "null",
               "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
               "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
               "--trainer.default_root_dir", str(work / name), "--model.init_args.lr_scheduler", "null",
               "--model.init_args.checkpoint_every_n_steps", str(10 * args.steps),
               "--trainer.callbacks+=" + json.dumps({"class_path": METER, "init_args": {"output_path": str(stats)}}),
               *(entry.train.args if entry.train else []),
               *(["--data.init_args.cache_dir", str(args.cache_dir)] if args.cache_dir else []),
               *(["--trainer.devices", "1"] if args.accelerator == "cpu" else []), *args.fit_args]
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    log = work / f"{name}.log"
    with open(log, "w", encoding="utf-8") as handle:
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode != 0 or not stats.is_file():
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return {"error": (lines[-1] if lines else f"exit status {done.returncode}")[:300]}
    result = json.loads(stats.read_text(encoding="utf-8"))
    result["wall_s"] = round(time.perf_counter() - start, 1)
    return result


def check_row(entry, runs: dict[str, dict], args: argparse.Namespace, devices: int) -> dict:
    """One config's row: the first precision's units/s against the second's (bf16-mixed vs 32-true by default)."""
    unit = "frames/s" if entry.task == "speech" else "tokens/s"
    first, *rest = args.precisions
    seqlab, reference = runs[first].get("tokens_per_s"), rest and runs[rest[0]].get("tokens_per_s")
    row = {"name": config_name(entry.configs[0]), "what": f"training {unit} over {args.steps} steps, "
           f"{' vs '.join(args.precisions)}, {devices} x {args.accelerator}" + (" (DDP)" if devices > 1 else ""),
           "seqlab": seqlab, "reference": reference or None, "unit": unit,
           "ratio": seqlab / reference if seqlab and reference else None,
           "reference_kind": "measured" if reference else "none", "accelerator": args.accelerator,
           "devices": devices, "steps": args.steps, "threads": os.cpu_count(),
           "load_1m": round(os.getloadavg()[0], 2), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for precision, run in runs.items():
        for key in ("tokens_per_s", "cuda_max_allocated_mb", "peak_rss_mb", "global_step", "seconds", "wall_s",
                    "device_name", "world_size", "error"):
            if run.get(key) is not None:
                row[f"{precision}_{key}"] = run[key]
    return row


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps per run")
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS,
                        help="configs under configs/ without .yaml (default: one per task), or 'all'")
    parser.add_argument("--precisions", nargs="+", default=["bf16-mixed", "32-true"])
    parser.add_argument("--accelerator", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--data", type=Path, default=None,
                        help="the shared data folder (default: $SEQLAB_DATA, else ../shared/data)")
    parser.add_argument("--spec", type=Path, default=REPO_ROOT / "leaderboards" / "default.yaml")
    parser.add_argument("--cache-dir", type=Path, default=None, help="the datasets cache (default: datasets')")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "results" / "bench" / "gpu.jsonl")
    parser.add_argument("fit_args", nargs="*", help="after --: more options for every seqlab fit")
    args = parser.parse_args(argv)
    import torch

    if args.accelerator == "gpu" and not torch.cuda.is_available():
        print("gpu_check: error: no CUDA device (torch.cuda.is_available() is False); run it on a machine with an "
              "NVIDIA GPU, or pass --accelerator cpu", file=sys.stderr)
        return 2
    devices = torch.cuda.device_count() if args.accelerator == "gpu" else 1
    from seqlab import SeqlabError

    try:
        entries = chosen_entries(args.spec, args.data, args.configs)
    except (LookupError, SeqlabError) as error:
        print(f"gpu_check: error: {error}", file=sys.stderr)
        return 2
    failed = 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as temporary:
        for entry in entries:
            runs = {precision: fit(entry, precision, args, Path(temporary), devices) for precision in args.precisions}
            row = check_row(entry, runs, args, devices)
            failed += any("error" in run for run in runs.values())
            with open(args.output, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            summary = ", ".join(f"{p}: {r['tokens_per_s']:.0f} {row['unit']}" + (
                f", {r['cuda_max_allocated_mb']:.0f} MB" if r.get("cuda_max_allocated_mb") else "")
                if "error" not in r else f"{p}: FAILED ({r['error']})" for p, r in runs.items())
            print(f"{row['name']}: {summary}", flush=True)
    print(f"{len(entries)} rows appended to {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
