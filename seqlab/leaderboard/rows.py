"""Leaderboard rows: one JSON line per run (task, dataset, model variant, metrics, cost, environment), appended to
``results/leaderboard.jsonl``; reading them back, the latest row per (entry, seed), and mean +- std over seeds."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from seqlab import SeqlabError

SCHEMA = 1

#: metric names (the part after ``stage/``) where lower is better
LOWER_IS_BETTER = ("per", "wer", "cer", "ter", "loss")

#: numeric row fields averaged over seeds besides the metrics
COST_FIELDS = ("params", "train_time_s", "train_wall_s", "train_tokens_per_s", "infer_tokens_per_s", "peak_rss_mb",
               "cuda_max_allocated_mb", "epochs")


def lower_is_better(metric: str) -> bool:
    name = metric.rsplit("/", 1)[-1].lower()
    return any(name == key or name.startswith(key + "_") for key in LOWER_IS_BETTER)


# -- files -------------------------------------------------------------------------------------------------------

def read_rows(path: str | Path, check: Optional[Callable[[dict], str]] = None) -> list[dict]:
    """The rows of a JSONL file in file order; a missing file is empty; a line cut short by a killed run is skipped.
    ``check(row)``: what is wrong with a row ('' when nothing), a SeqlabError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:  # not JSON, or not UTF-8: cut short
            continue
        if isinstance(row, dict):
            problem = check(row) if check else ""
            if problem:
                raise SeqlabError(f"{path}:{number}: {problem}")
            rows.append(row)
    return rows


_TEXT, _WHOLE, _NUMBER, _MAPPING = ((str,), "a string"), ((int,), "a whole number"), ((int, float), "a number"), \
    ((dict,), "a mapping")
#: the fields of a leaderboard row that the tables read -> ((types, in words), required); None where not required
ROW_FIELDS: dict[str, tuple[tuple[tuple[type, ...], str], bool]] = {
    **{name: (_TEXT, True) for name in ("entry", "task", "dataset", "main_metric")},
    **{name: (_TEXT, False) for name in ("split", "source", "status", "error", "failed_stage", "spec", "run_id")},
    **{name: (_NUMBER, False) for name in ("main_value", "budget_s", *COST_FIELDS)},
    "seed": (_WHOLE, False), "metrics": (_MAPPING, False), "variant": (_MAPPING, False),
}


def leaderboard_row_problem(row: dict) -> str:
    """What is wrong with a leaderboard row (this ``SCHEMA``'s) for the tables: a field missing or of another type
    (a hand edit); '' when nothing. Rows of other schemas are not read by the tables and pass."""
    if row.get("schema") != SCHEMA:
        return ""
    for name, ((types, expected), required) in ROW_FIELDS.items():
        value = row.get(name)
        if (value is not None or required) and (isinstance(value, bool) or not isinstance(value, types)):
            return f"field '{name}': expected {expected}, got {json.dumps(value)}"
    for name, value in (row.get("metrics") or {}).items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, _NUMBER[0])):
            return f"field 'metrics': {name} should be a number, got {json.dumps(value)}"
    for name, value in (row.get("variant") or {}).items():
        if value is not None and not isinstance(value, (str, bool)):
            return f"field 'variant': {name} should be a class name, got {json.dumps(value)}"
    return ""


def read_results(path: str | Path) -> list[dict]:
    """The rows of a leaderboard results file (``read_rows``), a row the tables cannot read a SeqlabError naming the
    file, line and field."""
    return read_rows(path, leaderboard_row_problem)


def append_row(path: str | Path, row: dict) -> None:
    """Append one row (never rewrites the file, so earlier rows are kept)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, sort_keys=False, default=str) + "\n")


# -- environment and checkpoints ------------------------------------------------------------------------------------

CODE_PATHS = ("seqlab", "configs", "pyproject.toml")  # what a run's numbers depend on (results/ is written by runs)


def git_commit(cwd: str | Path = ".") -> Optional[str]:
    """``HEAD``'s hash, with ``-dirty`` when tracked files under ``CODE_PATHS`` are modified; None outside a git
    checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                timeout=20).stdout.strip()
        if not commit:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS], cwd=cwd,
                               capture_output=True, text=True, timeout=20).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    import torch

    return {
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def _class_name(value: Any) -> Optional[str]:
    """``{"class_path": "seqlab.models.CRFTagger", ...}`` -> ``CRFTagger``; None for None/absent."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("class_path")
    if isinstance(value, str) and value:
        return value.rsplit(".", 1)[-1]
    return None


def variant_of(hparams: dict) -> dict[str, Any]:
    """The model variant from a checkpoint's ``hyper_parameters`` (or a config's ``model.init_args``): encoder,
    attention (``none`` without one), head (a translation model's decoder), pooling and word embedding classes,
    and whether it attends."""
    init = hparams.get("init_args", hparams) if "class_path" in hparams else hparams
    embedding = init.get("word_embedding") or init.get("source_embedding")
    members = [_class_name(m) for m in ((embedding or {}).get("init_args") or {}).get("embeddings", [])] \
        if isinstance(embedding, dict) else []
    decoder = init.get("decoder") if isinstance(init.get("decoder"), dict) else {}
    variant = {
        "task_class": _class_name(hparams.get("_class_path") or hparams.get("class_path")),
        "encoder": _class_name(init.get("encoder")),
        # a translation model's attention lives in its decoder
        "attention": _class_name(init.get("attention")) or _class_name((decoder.get("init_args") or {})
                                                                       .get("attention")) or "none",
        "pooling": _class_name(init.get("pooling")),
        "head": _class_name(init.get("head")) or _class_name(decoder or None),
        "embedding": "+".join(m for m in members if m) or _class_name(embedding),
    }
    variant["attends"] = variant["attention"] != "none" or "attent" in (variant["pooling"] or "").lower()
    return variant


def describe_variant(variant: dict) -> str:
    """``BiLSTMEncoder / MultiHeadSelfAttention / CRFTagger`` (pooling before head for sentence models)."""
    parts = [variant.get("encoder") or "?", variant.get("attention") or "none"]
    if variant.get("pooling"):
        parts.append(variant["pooling"])
    parts.append(variant.get("head") or "?")
    return " / ".join(parts)


def _distinct_numel(tensors) -> int:
    """Elements of the distinct tensors: views of the same storage, offset and shape count once (torch.save keeps
    the sharing of tied weights)."""
    sizes = {}
    for tensor in tensors:
        if hasattr(tensor, "untyped_storage"):
            key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
            sizes[key] = tensor.numel()
    return int(sum(sizes.values()))


def inspect_checkpoint(path: str | Path) -> dict[str, Any]:
    """Variant, parameter count (every tensor in the state_dict; one shared by two names, e.g. tied embeddings,
    once), epochs, steps and training time (Lightning's Timer state) of a checkpoint."""
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict") or {}
    timer = next((v for k, v in (checkpoint.get("callbacks") or {}).items() if k == "Timer" or k.startswith("Timer")),
                 None)
    elapsed = (timer or {}).get("time_elapsed") or {}
    return {
        "variant": variant_of(dict(checkpoint.get("hyper_parameters") or {})),
        "params": _distinct_numel(state.values()),
        "epoch": checkpoint.get("epoch"),
        "global_step": checkpoint.get("global_step"),
        "timer_train_s": elapsed.get("train"),
        "data_path": (checkpoint.get("datamodule_hyper_parameters") or {}).get("path"),
    }


# -- aggregation ----------------------------------------------------------------------------------------------------

def _finite(value: Any) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def mean_std(values: Iterable[Any]) -> tuple[Optional[float], Optional[float], int]:
    """(mean, sample standard deviation (n - 1), n) of the finite values; std is None for fewer than two."""
    numbers = [v for v in (_finite(x) for x in values) if v is not None]
    if not numbers:
        return None, None, 0
    return statistics.fmean(numbers), (statistics.stdev(numbers) if len(numbers) > 1 else None), len(numbers)


def fmt_mean_std(mean: Optional[float], std: Optional[float], factor: float = 1.0, digits: int = 2) -> str:
    """``"88.00 ± 1.00"``: mean and std times ``factor``; the mean alone without a std, "–" without a mean."""
    if mean is None:
        return "–"
    text = f"{mean * factor:.{digits}f}"
    return text + (f" ± {std * factor:.{digits}f}" if std is not None else "")


def latest_runs(rows: list[dict]) -> list[dict]:
    """The last row per (entry, seed, source) in file order: re-running an entry replaces it in the tables (the
    JSONL keeps every row)."""
    latest: dict[tuple, dict] = {}
    for row in rows:
        if row.get("schema") != SCHEMA:
            continue
        latest[(row.get("task"), row.get("dataset"), row.get("entry"), row.get("seed"), row.get("source"))] = row
    return list(latest.values())


@dataclass
class Aggregate:
    """One table line: an entry's runs over seeds."""
    task: str
    dataset: str
    split: str
    entry: str
    main_metric: str
    variant: dict = field(default_factory=dict)
    source: str = "leaderboard"
    seeds: list = field(default_factory=list)
    failed_seeds: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)  # field -> (mean, std, n); metrics keyed by their metric name
    budget_s: Optional[float] = None
    run_ids: list = field(default_factory=list)  # of the runs the line shows
    spec: Optional[str] = None  # the leaderboard spec that ran them (None: imported)

    @property
    def ok(self) -> bool:
        return bool(self.seeds)

    @property
    def main(self) -> tuple[Optional[float], Optional[float], int]:
        return self.stats.get(self.main_metric, (None, None, 0))


def aggregate(rows: list[dict]) -> list[Aggregate]:
    """Group the latest runs by (task, dataset, split, entry): mean +- sample std over the seeds that succeeded."""
    groups: dict[tuple, list[dict]] = {}
    for row in latest_runs(rows):
        key = (row.get("task"), row.get("dataset"), row.get("split") or "test", row.get("entry"))
        groups.setdefault(key, []).append(row)
    result = []
    for (task, dataset, split, entry), runs in groups.items():
        ok = [r for r in runs if r.get("status") == "ok" and _finite(r.get("main_value")) is not None]
        failed = [r for r in runs if r not in ok]
        last = (ok or runs)[-1]
        agg = Aggregate(task=task, dataset=dataset, split=split, entry=entry, main_metric=last.get("main_metric"),
                        variant=last.get("variant") or {}, source=last.get("source") or "leaderboard",
                        seeds=[r.get("seed") for r in ok], failed_seeds=[r.get("seed") for r in failed],
                        errors=[f"{r.get('failed_stage') or 'run'}: {r.get('error') or 'failed'}" for r in failed],
                        budget_s=last.get("budget_s"), run_ids=[r.get("run_id") for r in (ok or runs)],
                        spec=last.get("spec"))
        metric_names = {m for r in ok for m in (r.get("metrics") or {})}
        for name in metric_names:
            agg.stats[name] = mean_std((r.get("metrics") or {}).get(name) for r in ok)
        for name in COST_FIELDS:
            agg.stats[name] = mean_std(r.get(name) for r in ok)
        result.append(agg)
    return result


def sort_key(agg: Aggregate):
    """Succeeded entries first, by the main metric (descending; ascending for PER-like metrics), failed last."""
    mean = agg.main[0]
    if mean is None:
        return (1, 0.0, agg.entry)
    return (0, mean if lower_is_better(agg.main_metric) else -mean, agg.entry)
