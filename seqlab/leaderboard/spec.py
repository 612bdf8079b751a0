"""The leaderboard spec (``leaderboards/*.yaml``): which configs to run on which data, with which budget and seeds.

```yaml
data_root: null                   # relative data paths resolve here; default $SEQLAB_DATA, else ../shared/data
results: results/leaderboard.jsonl
markdown: LEADERBOARD.md
csv: results/leaderboard.csv
plots: results/leaderboard        # PNG folder
bench: results/bench              # the benchmarks' JSONL rows, shown in a last section (null: none)
comparisons: results/multitask_comparisons.jsonl  # side-by-side runs over seeds, a section of their own (default: none)
runs: runs/leaderboard            # log/checkpoint folder, one subfolder per entry and seed
defaults: {seeds: [0], train: {max_time: 10m}}    # merged into every entry (an entry's own keys win)
entries:
  - name: ner/bilstm_crf
    task: ner                     # ner | sentiment | speech | translation
    config: configs/ner/conll2003_bilstm_crf.yaml     # or a list of configs
    data: ner/conll2003/iob2
    train: {max_time: 13m, max_epochs: 60, args: [--data.init_args.batch_size, "32"]}
    seeds: [0, 1]
  - name: ner/my_model
    task: ner
    checkpoint: path/to/best.ckpt # test only (a directory: its newest best*.ckpt)
    data: ner/conll2003/iob2
```

Other paths (configs, checkpoints, outputs) resolve against the current directory (the repository root under
``make leaderboard``).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from seqlab import SeqlabError

#: task -> (default dataset name, main metric, secondary metrics)
TASKS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "ner": ("CoNLL-2003 English", "test/f1", ("test/precision", "test/recall")),
    "sentiment": ("SST-2", "test/accuracy", ("test/f1",)),
    "speech": ("TIMIT sample", "test/frame_accuracy", ("test/per",)),
    "translation": ("Multi30k de-en", "test/bleu", ("test/chrf", "test/bleu_greedy", "test/bleu_lc")),
}

ENTRY_KEYS = {"name", "task", "config", "data", "dataset", "checkpoint", "train", "seeds", "test_args", "timeout",
              "env"}
TRAIN_KEYS = {"max_time", "max_epochs", "args"}
SPEC_KEYS = {"data_root", "results", "markdown", "csv", "plots", "bench", "comparisons", "runs", "defaults", "entries",
             "title", "budget", "import"}


def default_data_root() -> Path:
    """``$SEQLAB_DATA``, else ``../shared/data`` (from the current directory)."""
    return Path(os.environ.get("SEQLAB_DATA") or "../shared/data").expanduser()


def parse_duration(value: Any, where: str = "") -> float:
    """Seconds from ``90`` / ``"90s"`` / ``"15m"`` / ``"1.5h"`` / ``"HH:MM:SS"`` / ``"DD:HH:MM:SS"``; ``where``
    names the value in an error."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return float(value)
    text = str(value).strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", text)
    if match:
        return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    parts = text.split(":")
    if 2 <= len(parts) <= 4 and all(p.strip().isdigit() for p in parts):
        seconds = 0.0
        for part, unit in zip(reversed(parts), (1, 60, 3600, 86400)):
            seconds += int(part) * unit
        return seconds
    raise SeqlabError(f"{where + ': ' if where else ''}cannot read duration {value!r} (use seconds, '15m', '1h', "
                      f"'HH:MM:SS' or 'DD:HH:MM:SS')")


def lightning_duration(seconds: float) -> str:
    """``--trainer.max_time`` format: ``DD:HH:MM:SS``."""
    total = int(round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days:02d}:{hours:02d}:{minutes:02d}:{secs:02d}"


@dataclass
class Train:
    max_time: Optional[float] = None  # seconds
    max_epochs: Optional[int] = None
    args: list[str] = field(default_factory=list)


@dataclass
class Entry:
    name: str
    task: str
    data: Optional[Path]
    configs: list[Path] = field(default_factory=list)
    dataset: str = ""
    checkpoint: Optional[Path] = None
    train: Optional[Train] = None
    seeds: list[int] = field(default_factory=lambda: [0])
    test_args: list[str] = field(default_factory=list)
    timeout: Optional[float] = None  # seconds per subprocess; default from the budget
    env: dict[str, str] = field(default_factory=dict)

    @property
    def main_metric(self) -> str:
        return TASKS[self.task][1]

    def budget_seconds(self) -> float:
        """The training budget of one seed (0 for a checkpoint entry)."""
        return (self.train.max_time or 0.0) if self.train else 0.0

    def child_timeout(self) -> float:
        """Time allowed to one subprocess: the budget plus room for data preparation, validation and test."""
        if self.timeout:
            return self.timeout
        return self.budget_seconds() * 1.5 + 900 if self.train and self.train.max_time else 6 * 3600


@dataclass
class Spec:
    entries: list[Entry]
    path: Optional[Path] = None
    data_root: Path = field(default_factory=default_data_root)
    results: Path = Path("results/leaderboard.jsonl")
    markdown: Path = Path("LEADERBOARD.md")
    csv: Path = Path("results/leaderboard.csv")
    plots: Path = Path("results/leaderboard")
    bench: Optional[Path] = Path("results/bench")
    comparisons: Optional[Path] = None
    runs: Path = Path("runs/leaderboard")
    title: str = "seqlab leaderboard"
    budget: str = ""
    imports: list[Path] = field(default_factory=list)

    def budget_seconds(self) -> float:
        return sum(e.budget_seconds() * len(e.seeds) for e in self.entries)

    def datasets_by_config(self) -> dict[str, str]:
        """config path (POSIX) -> the dataset of the entries that train it."""
        return {Path(c).as_posix(): e.dataset for e in self.entries for c in e.configs}


def _str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(v) for v in value]
    raise SeqlabError(f"{where}: expected a list of strings, got {type(value).__name__}")


def _text(value: Any, where: str) -> str:
    """A string value of the spec (a number is taken as its text)."""
    if isinstance(value, (list, dict, bool)):
        raise SeqlabError(f"{where}: expected a string, got {type(value).__name__}")
    return str(value)


def _mapping(value: Any, where: str, keys: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SeqlabError(f"{where}: expected a mapping ({keys}), got {type(value).__name__}")
    return value


def _whole(value: Any, where: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SeqlabError(f"{where}: expected a whole number of at least {minimum}, got {value!r}")
    return value


def _merge(defaults: dict, entry: dict) -> dict:
    merged = {**defaults, **entry}
    if isinstance(defaults.get("train"), dict) and isinstance(entry.get("train"), dict):
        merged["train"] = {**defaults["train"], **entry["train"]}
    if "checkpoint" in entry and "train" not in entry:
        merged.pop("train", None)  # a checkpoint entry does not inherit the default budget
    return merged


def parse_entry(raw: dict, index: int, data_root: Path) -> Entry:
    where = f"entries[{index}]" + (f" ({raw.get('name')})" if isinstance(raw, dict) and raw.get("name") else "")
    if not isinstance(raw, dict):
        raise SeqlabError(f"{where}: expected a mapping")
    unknown = set(raw) - ENTRY_KEYS
    if unknown:
        raise SeqlabError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(ENTRY_KEYS))})")
    for key in ("name", "task"):
        if not raw.get(key):
            raise SeqlabError(f"{where}: '{key}' is required")
    task = _text(raw["task"], f"{where}.task")
    if task not in TASKS:
        raise SeqlabError(f"{where}: unknown task '{task}' (one of {', '.join(TASKS)})")
    has_train, has_checkpoint = raw.get("train") is not None, raw.get("checkpoint") is not None
    if has_train == has_checkpoint:
        raise SeqlabError(f"{where}: give either 'checkpoint' or 'train' (a training budget)")
    configs = [Path(c) for c in _str_list(raw.get("config"), f"{where}.config")]
    if has_train and not configs:
        raise SeqlabError(f"{where}: 'config' is required to train")
    train = None
    if has_train:
        budget = _mapping(raw["train"], f"{where}.train", ", ".join(sorted(TRAIN_KEYS)))
        unknown = set(budget) - TRAIN_KEYS
        if unknown:
            raise SeqlabError(f"{where}.train: unknown key(s) {', '.join(sorted(unknown))}")
        train = Train(
            max_time=parse_duration(budget["max_time"], f"{where}.train.max_time")
            if budget.get("max_time") is not None else None,
            max_epochs=_whole(budget["max_epochs"], f"{where}.train.max_epochs", 1)
            if budget.get("max_epochs") is not None else None,
            args=_str_list(budget.get("args"), f"{where}.train.args"),
        )
    data = raw.get("data")
    data_path = None
    if data is not None:
        data_path = Path(_text(data, f"{where}.data")).expanduser()
        data_path = data_path if data_path.is_absolute() else data_root / data_path
    seeds = raw.get("seeds", [0])
    seeds = [seeds] if isinstance(seeds, int) else (seeds or [0])
    if not isinstance(seeds, list):
        raise SeqlabError(f"{where}.seeds: expected a whole number or a list of them, got {seeds!r}")
    return Entry(
        name=_text(raw["name"], f"{where}.name"), task=task, data=data_path, configs=configs,
        dataset=_text(raw.get("dataset") or TASKS[task][0], f"{where}.dataset"),
        checkpoint=Path(_text(raw["checkpoint"], f"{where}.checkpoint")) if has_checkpoint else None, train=train,
        seeds=[_whole(s, f"{where}.seeds", 0) for s in seeds],
        test_args=_str_list(raw.get("test_args"), f"{where}.test_args"),
        timeout=parse_duration(raw["timeout"], f"{where}.timeout") if raw.get("timeout") is not None else None,
        env={str(k): _text(v, f"{where}.env.{k}")
             for k, v in _mapping(raw.get("env"), f"{where}.env", "variable: value").items()},
    )


def load_spec(path: str | Path, data_root: Optional[str | Path] = None) -> Spec:
    """Read and check a spec file; errors name the entry and key."""
    path = Path(path)
    if not path.is_file():
        raise SeqlabError(f"leaderboard spec not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise SeqlabError(f"{path}: not UTF-8 text (byte {error.start + 1})") from None
    except yaml.YAMLError as error:
        raise SeqlabError(f"{path}: invalid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise SeqlabError(f"{path}: expected a mapping with 'entries'")
    unknown = set(raw) - SPEC_KEYS
    if unknown:
        raise SeqlabError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(SPEC_KEYS))})")
    root = Path(data_root) if data_root else (Path(_text(raw["data_root"], f"{path}: data_root"))
                                              if raw.get("data_root") else default_data_root())
    root = root.expanduser()
    defaults = _mapping(raw.get("defaults"), f"{path}: defaults", "keys merged into every entry")
    entries = raw.get("entries") or []
    if not isinstance(entries, list):
        raise SeqlabError(f"{path}: entries: expected a list of entries, got {type(entries).__name__}")
    try:
        entries = [parse_entry(_merge(defaults, e) if isinstance(e, dict) else e, i, root)
                   for i, e in enumerate(entries)]
    except SeqlabError as error:
        raise SeqlabError(f"{path}: {error}") from None
    names = [e.name for e in entries]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise SeqlabError(f"{path}: duplicated entry name(s) {', '.join(duplicated)}")
    spec = Spec(entries=entries, path=path, data_root=root,
                title=_text(raw.get("title") or "seqlab leaderboard", f"{path}: title"),
                budget=_text(raw.get("budget") or "", f"{path}: budget").strip(),
                imports=[Path(p) for p in _str_list(raw.get("import"), f"{path}: import")])
    for key in ("results", "markdown", "csv", "plots", "runs"):
        if raw.get(key):
            setattr(spec, key, Path(_text(raw[key], f"{path}: {key}")))
    if "bench" in raw:
        spec.bench = Path(_text(raw["bench"], f"{path}: bench")) if raw["bench"] else None
    if raw.get("comparisons"):
        spec.comparisons = Path(_text(raw["comparisons"], f"{path}: comparisons"))
    return spec
