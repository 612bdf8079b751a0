"""Run a spec: for each entry and seed, ``seqlab fit`` (when it has a budget) then ``seqlab test`` on the best
checkpoint, each in its own subprocess (a crash or a bad option fails that run only), one row per run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from seqlab.leaderboard.rows import (SCHEMA, append_row, describe_variant, environment, inspect_checkpoint,
                                     read_rows)
from seqlab.leaderboard.spec import Entry, Spec, lightning_duration

METER = "seqlab.leaderboard.meter.ThroughputMeter"


@dataclass
class ChildResult:
    returncode: int
    wall_s: float
    peak_rss_mb: Optional[float]
    stderr_path: Path
    timed_out: bool = False

    def error_line(self) -> str:
        """The last meaningful stderr line (a ``seqlab: error:`` line or the exception of a traceback)."""
        if self.timed_out:
            return f"timed out after {self.wall_s:.0f} s"
        try:
            lines = [line.strip() for line in self.stderr_path.read_text(encoding="utf-8", errors="replace")
                     .splitlines() if line.strip()]
        except OSError:
            lines = []
        errors = [line for line in lines if line.startswith("seqlab: error:")]
        line = errors[-1] if errors else (lines[-1] if lines else f"exit status {self.returncode}")
        return line[:500]


def run_child(command: list[str], log_stem: Path, timeout: float, env: dict[str, str]) -> ChildResult:
    """Run ``command`` with stdout/stderr in ``log_stem.out``/``.err``; its own max RSS from ``wait4``; killed (with
    its process group) after ``timeout`` seconds."""
    log_stem.parent.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_stem.with_suffix(".out"), log_stem.with_suffix(".err")
    with open(out_path, "w", encoding="utf-8") as out, open(err_path, "w", encoding="utf-8") as err:
        err.write("$ " + " ".join(command) + "\n")
        err.flush()
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, start_new_session=True)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except KeyboardInterrupt:
            kill()
            raise
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
    return ChildResult(process.returncode, wall, usage.ru_maxrss / 1024, err_path, timed_out.is_set())


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "entry"


def _meter_option(path: Path) -> str:
    return "--trainer.callbacks+=" + json.dumps({"class_path": METER, "init_args": {"output_path": str(path)}})


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _last_row(path: Path, subcommand: str) -> dict:
    rows = [r for r in read_rows(path) if r.get("subcommand") == subcommand]
    return rows[-1] if rows else {}


def find_best(directory: Path) -> Optional[Path]:
    from seqlab.checkpoints import find_checkpoint

    return find_checkpoint([directory], "best") or find_checkpoint([directory], "last")


class Runner:
    """Runs the entries of a spec; ``on_event(kind, **info)`` reports progress (see ``__main__``)."""

    def __init__(self, spec: Spec, python: str = sys.executable,
                 on_event: Optional[Callable[..., None]] = None) -> None:
        self.spec = spec
        self.python = python
        self.on_event = on_event or (lambda kind, **info: None)

    def child_env(self, entry: Entry) -> dict[str, str]:
        env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
               "HF_DATASETS_OFFLINE": os.environ.get("HF_DATASETS_OFFLINE", "1"),
               "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "ignore"), **entry.env}
        return env

    def run(self, entries: Optional[list[Entry]] = None) -> list[dict]:
        entries = entries if entries is not None else self.spec.entries
        jobs = [(e, s) for e in entries for s in e.seeds]
        rows = []
        for index, (entry, seed) in enumerate(jobs, 1):
            self.on_event("start", index=index, total=len(jobs), entry=entry, seed=seed)
            row = self.run_one(entry, seed)
            append_row(self.spec.results, row)
            rows.append(row)
            self.on_event("done", index=index, total=len(jobs), entry=entry, seed=seed, row=row)
        return rows

    def _base_row(self, entry: Entry, seed: int, run_id: str) -> dict:
        return {
            "schema": SCHEMA, "run_id": run_id, "status": "running", "error": None, "failed_stage": None,
            "source": "leaderboard", "spec": str(self.spec.path) if self.spec.path else None,
            "entry": entry.name, "task": entry.task, "dataset": entry.dataset, "split": "test",
            "configs": [str(c) for c in entry.configs], "data_path": str(entry.data) if entry.data else None,
            "seed": seed, "budget_s": entry.budget_seconds() or None,
            "max_epochs": entry.train.max_epochs if entry.train else None,
            "main_metric": entry.main_metric, "main_value": None, "metrics": {},
            "variant": None, "model_variant": None, "params": None, "checkpoint": None,
            "train_wall_s": None, "train_time_s": None, "train_tokens": None, "train_tokens_per_s": None,
            "test_wall_s": None, "test_tokens": None, "infer_tokens_per_s": None, "epochs": None,
            "global_step": None, "peak_rss_mb": None, "cuda_max_allocated_mb": None,
            "device": None, "device_name": None, "torch_threads": None,
            **environment(),  # per run: the code may change between the entries of a long run
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "finished_at": None,
        }

    def run_one(self, entry: Entry, seed: int) -> dict:
        """Train (if the entry has a budget) and test one seed -> its row (status ok or failed, never raises for a
        failed child)."""
        run_id = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        run_dir = self.spec.runs / _safe(entry.name) / f"seed{seed}" / run_id
        row = self._base_row(entry, seed, run_id)
        row["run_dir"] = str(run_dir)
        env = self.child_env(entry)
        results = run_dir / "results.jsonl"
        peaks: list[float] = []
        cuda_peaks: list[float] = []

        def fail(stage: str, message: str) -> dict:
            row.update(status="failed", failed_stage=stage, error=message,
                       peak_rss_mb=max(peaks) if peaks else None,
                       finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
            return row

        data_options = ["--data.init_args.path", str(entry.data)] if entry.data else []
        if entry.train is not None:
            missing = [str(c) for c in entry.configs if not c.is_file()]
            if missing:
                return fail("fit", f"config not found: {', '.join(missing)}")
            command = [self.python, "-m", "seqlab.cli", "fit"]
            for config in entry.configs:
                command += ["--config", str(config)]
            command += [*data_options, "--seed_everything", str(seed),
                        "--trainer.default_root_dir", str(run_dir),
                        "--trainer.logger.init_args.save_dir", str(run_dir.parent.parent),
                        "--trainer.logger.init_args.name", run_dir.parent.name,
                        "--trainer.logger.init_args.version", run_dir.name,
                        "--trainer.enable_progress_bar", "false",
                        "--results_path", str(results), _meter_option(run_dir / "fit_stats.json")]
            if entry.train.max_time:
                command += ["--trainer.max_time", lightning_duration(entry.train.max_time)]
            if entry.train.max_epochs is not None:
                command += ["--trainer.max_epochs", str(entry.train.max_epochs)]
            command += entry.train.args
            fit = run_child(command, run_dir / "fit", entry.child_timeout(), env)
            peaks.append(fit.peak_rss_mb or 0.0)
            row["train_wall_s"] = fit.wall_s
            if fit.returncode != 0:
                return fail("fit", fit.error_line())
            stats = _read_json(run_dir / "fit_stats.json")
            row.update(train_time_s=stats.get("seconds"), train_tokens=stats.get("tokens"),
                       train_tokens_per_s=stats.get("tokens_per_s"), global_step=stats.get("global_step"))
            if stats.get("cuda_max_allocated_mb") is not None:
                cuda_peaks.append(stats["cuda_max_allocated_mb"])
            checkpoint = find_best(run_dir)
            if checkpoint is None:
                return fail("fit", f"no best*.ckpt or last*.ckpt under {run_dir}")
        else:
            checkpoint = entry.checkpoint
            if checkpoint is not None and checkpoint.is_dir():
                checkpoint = find_best(checkpoint)
            if checkpoint is None or not checkpoint.is_file():
                return fail("test", f"checkpoint not found: {entry.checkpoint}")
        row["checkpoint"] = str(checkpoint)
        try:
            info = inspect_checkpoint(checkpoint)
        except Exception as error:  # unreadable file
            return fail("test", f"cannot read checkpoint {checkpoint}: {str(error).splitlines()[0][:300]}")
        row.update(variant=info["variant"], model_variant=describe_variant(info["variant"]), params=info["params"],
                   epochs=info["epoch"])
        if entry.train is None and info.get("timer_train_s"):
            row["train_time_s"] = info["timer_train_s"]

        command = [self.python, "-m", "seqlab.cli", "test", "--ckpt_path", str(checkpoint), *data_options,
                   "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                   "--trainer.default_root_dir", str(run_dir),
                   "--results_path", str(results), _meter_option(run_dir / "test_stats.json"), *entry.test_args]
        test = run_child(command, run_dir / "test", entry.child_timeout(), env)
        peaks.append(test.peak_rss_mb or 0.0)
        row["test_wall_s"] = test.wall_s
        if test.returncode != 0:
            return fail("test", test.error_line())
        stats = _read_json(run_dir / "test_stats.json")
        if stats.get("cuda_max_allocated_mb") is not None:
            cuda_peaks.append(stats["cuda_max_allocated_mb"])
        metrics = (_last_row(results, "test").get("metrics")) or {}
        row.update(metrics=metrics, main_value=metrics.get(entry.main_metric),
                   test_tokens=stats.get("tokens"), infer_tokens_per_s=stats.get("tokens_per_s"),
                   device=stats.get("device"), device_name=stats.get("device_name"),
                   torch_threads=stats.get("torch_threads"),
                   peak_rss_mb=max(peaks), cuda_max_allocated_mb=max(cuda_peaks) if cuda_peaks else None)
        if row["main_value"] is None:
            return fail("test", f"the test row has no {entry.main_metric} (metrics: {', '.join(sorted(metrics))})")
        row.update(status="ok", finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        return row

