"""``--import results/quality.jsonl``: turn ``seqlab test --results_path`` rows (e.g. the quality runs of
``scripts/quality_run.sh``) into leaderboard rows, without retraining. The variant and parameter count come from the
checkpoint when it still exists, else the variant from the config; each imported row gets a stable ``run_id``, so
importing the same file twice adds nothing."""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path
from typing import Optional

import yaml

from seqlab import SeqlabError
from seqlab.leaderboard.rows import SCHEMA, describe_variant, environment, inspect_checkpoint, read_rows, variant_of
from seqlab.leaderboard.spec import TASKS

MODEL_TASKS = {"TokenTagging": "ner", "SentenceClassification": "sentiment", "FrameClassification": "speech",
               "Seq2SeqTranslation": "translation"}


def task_of(row: dict) -> Optional[str]:
    task = MODEL_TASKS.get(str(row.get("model")))
    if task is None and "translat" in str(row.get("model", "")).lower():
        task = "translation"
    return task


def _run_name(row: dict) -> str:
    configs = row.get("configs") or []
    if configs:
        return Path(configs[0]).stem
    parts = Path(str(row.get("ckpt_path"))).parts
    # runs/quality/<name>/version_0/checkpoints/best.ckpt -> <name>
    return parts[-4] if len(parts) >= 4 else Path(str(row.get("ckpt_path"))).stem


def _posix(config: str) -> str:
    return Path(config).as_posix()


def _config_variant(row: dict, task: str, name: str) -> Optional[dict]:
    candidates = [Path(c) for c in row.get("configs") or []] + [Path("configs") / task / f"{name}.yaml"]
    for config in candidates:
        if config.is_file():
            try:
                raw = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
            except (UnicodeDecodeError, yaml.YAMLError) as error:
                raise SeqlabError(f"{config}: cannot read the config ({str(error).splitlines()[0]})") from None
            model = (raw.get("model") if isinstance(raw, dict) else None) or {}
            if isinstance(model, dict) and model:
                return variant_of(model)
    return None


def quality_row_problem(raw: dict) -> str:
    """What in a ``seqlab test --results_path`` row keeps ``import_rows`` from reading it ('' when nothing)."""
    if raw.get("subcommand") != "test" or not raw.get("ckpt_path"):
        return ""
    expected = {"ckpt_path": (str, "a path"), "model": (str, "a class name"), "metrics": (dict, "a mapping"),
                "configs": (list, "a list of paths"), "argv": (list, "a list of arguments")}
    for field, (kind, words) in expected.items():
        if raw.get(field) is not None and not isinstance(raw[field], kind):
            return f"field '{field}': expected {words}, got {json.dumps(raw[field])}"
    if not all(isinstance(config, str) for config in raw.get("configs") or []):
        return f"field 'configs': expected a list of paths, got {json.dumps(raw['configs'])}"
    for name, value in (raw.get("metrics") or {}).items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"field 'metrics': {name} should be a number, got {json.dumps(value)}"
    return ""


def _seed(raw: dict) -> Optional[int]:
    """The run's ``--seed_everything`` (``scripts/quality_run.sh`` passes the same options to fit, validate and test),
    else 0: what Lightning seeds when the option is absent (and ``PL_GLOBAL_SEED`` unset); None when it was not an
    integer (``true``: a random seed)."""
    argv = [str(a) for a in raw.get("argv") or []]
    values = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--seed_everything"]
    values += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--seed_everything=")]
    if not values:
        return 0
    try:
        return int(values[-1])
    except ValueError:
        return None


def _run_id(source: Path, raw: dict) -> str:
    digest = hashlib.sha1(json.dumps([str(source), raw.get("ckpt_path"), raw.get("metrics") or {}],
                                     sort_keys=True).encode())
    return "import-" + digest.hexdigest()[:12]


def _command(raw: Optional[dict]) -> Optional[str]:
    argv = (raw or {}).get("argv")
    return "seqlab " + shlex.join(map(str, argv)) if argv else None


def import_commands(source: str | Path) -> dict[str, dict[str, Optional[str]]]:
    """``run_id`` of each test row ``import_rows`` takes from ``source`` -> how it was made: ``fit`` (the command of
    the last fit row before it with the same configs, as ``scripts/quality_run.sh`` writes them), ``test`` (its own
    command), ``note`` (the row's ``note`` field) and ``checkpoint`` (the tested checkpoint's path)."""
    source = Path(source)
    last_fit: dict[str, dict] = {}
    commands = {}
    for raw in read_rows(source, quality_row_problem):
        configs = json.dumps(raw.get("configs") or [])
        if raw.get("subcommand") == "fit":
            last_fit[configs] = raw
        elif raw.get("subcommand") == "test" and raw.get("ckpt_path"):
            fit = last_fit.get(configs)
            commands[_run_id(source, raw)] = {"fit": _command(fit), "test": _command(raw),
                                              "note": raw.get("note") or (fit or {}).get("note"),
                                              "checkpoint": str(raw["ckpt_path"])}
    return commands


def import_rows(source: str | Path, existing: list[dict], datasets: Optional[dict[str, str]] = None) -> list[dict]:
    """Leaderboard rows for the ``test`` rows of ``source`` that name a checkpoint and are not imported yet.
    ``datasets``: config path -> dataset name (the spec's entries'); a row of another config gets its task's default
    dataset (e.g. SST-2 for sentiment)."""
    source = Path(source)
    known = {r.get("run_id") for r in existing}
    env = environment()
    env["git_commit"] = None  # the commit the quality run used is not recorded
    rows = []
    for raw in read_rows(source, quality_row_problem):
        if raw.get("subcommand") != "test" or not raw.get("ckpt_path"):
            continue
        task = task_of(raw)
        if task is None:
            continue
        metrics = raw.get("metrics") or {}
        run_id = _run_id(source, raw)
        if run_id in known:
            continue
        known.add(run_id)
        name = _run_name(raw)
        checkpoint = Path(str(raw["ckpt_path"]))
        info = {}
        if checkpoint.is_file():
            try:
                info = inspect_checkpoint(checkpoint)
            except Exception:  # unreadable: fall back to the config
                info = {}
        variant = info.get("variant") or _config_variant(raw, task, name)
        main_metric = TASKS[task][1]
        dataset = next((datasets[c] for c in map(_posix, raw.get("configs") or []) if c in (datasets or {})),
                       TASKS[task][0])
        rows.append({
            "schema": SCHEMA, "run_id": run_id, "status": "ok" if main_metric in metrics else "failed",
            "error": None if main_metric in metrics else f"no {main_metric} in the imported row",
            "failed_stage": None, "source": f"import:{source}", "spec": None,
            "entry": f"{name} (quality run)", "task": task, "dataset": dataset, "split": "test",
            "configs": raw.get("configs") or [], "data_path": info.get("data_path"), "seed": _seed(raw),
            "budget_s": None,
            "max_epochs": None, "main_metric": main_metric, "main_value": metrics.get(main_metric),
            "metrics": metrics, "variant": variant, "model_variant": describe_variant(variant) if variant else None,
            "params": info.get("params"), "checkpoint": str(checkpoint), "train_wall_s": None,
            "train_time_s": info.get("timer_train_s"), "train_tokens": None, "train_tokens_per_s": None,
            "test_wall_s": None, "test_tokens": None, "infer_tokens_per_s": None, "epochs": info.get("epoch"),
            "global_step": info.get("global_step"), "peak_rss_mb": None, "cuda_max_allocated_mb": None,
            "device": None, "device_name": None, "torch_threads": None, "world_size": raw.get("world_size"),
            **env, "started_at": None, "finished_at": None,
        })
    return rows
