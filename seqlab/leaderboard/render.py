"""Rows -> ``LEADERBOARD.md`` (one table per task and dataset, sorted by the main metric, published numbers marked)
and a CSV of the same lines."""

from __future__ import annotations

import csv
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from seqlab.leaderboard.bench import bench_lines, latest_bench_rows
from seqlab.leaderboard.references import Reference, references_for
from seqlab.leaderboard.comparisons import comparison_section
from seqlab.leaderboard.rows import Aggregate, aggregate, fmt_mean_std, lower_is_better, sort_key
from seqlab.leaderboard.spec import TASKS

TASK_TITLES = {"ner": "NER", "sentiment": "Sentiment", "speech": "Speech (frame phone recognition)",
               "translation": "Translation"}
METRIC_TITLES = {"f1": "F1", "precision": "P", "recall": "R", "accuracy": "accuracy", "frame_accuracy": "frame acc.",
                 "per": "PER", "bleu": "BLEU", "chrf": "chrF",
                 "bleu_greedy": "BLEU greedy", "chrf_greedy": "chrF greedy", "bleu_lc": "BLEU lower-cased"}
UNITS = {"speech": "frames/s"}


def scale(metric: str, values: list[Optional[float]]) -> float:
    """Fractions are shown in percent; losses and BLEU/chrF (sacrebleu, already 0-100) as logged."""
    name = metric.rsplit("/", 1)[-1]
    if name in ("loss", "penalty", "nll") or name.split("_")[0] in ("bleu", "chrf", "ter"):  # sacrebleu: 0-100
        return 1.0
    return 100.0


def metric_title(metric: str) -> str:
    name = metric.rsplit("/", 1)[-1]
    title = METRIC_TITLES.get(name, name)
    return f"{title} (%)" if scale(metric, []) == 100.0 else title


def fmt_count(value: Optional[float]) -> str:
    if value is None:
        return "–"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.2f}{unit}"
    return f"{value:.0f}"


def fmt_minutes(seconds: Optional[float]) -> str:
    return "–" if seconds is None else (f"{seconds / 60:.1f}" if seconds >= 60 else f"{seconds / 60:.2f}")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def tables(rows: list[dict]) -> dict[tuple[str, str, str], list[Aggregate]]:
    """(task, dataset, split) -> its entries, sorted (best first, failed last)."""
    grouped: dict[tuple[str, str, str], list[Aggregate]] = {}
    for agg in aggregate(rows):
        grouped.setdefault((agg.task, agg.dataset, agg.split), []).append(agg)
    order = list(TASKS)
    return {key: sorted(grouped[key], key=sort_key)
            for key in sorted(grouped, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1], k[2]))}


def _secondary(task: str, main_metric: str) -> list[str]:
    return [m for m in TASKS.get(task, ("", "", ()))[2] if m != main_metric]


def table_lines(task: str, dataset: str, split: str, aggs: list[Aggregate]) -> list[dict]:
    """The lines of one table, ours and the published references merged in metric order, as display strings plus
    the raw sort value: each a dict with ``kind`` ``ours``/``reference``."""
    main_metric = aggs[0].main_metric if aggs else TASKS[task][1]
    factor = scale(main_metric, [a.main[0] for a in aggs])
    secondary = _secondary(task, main_metric)
    lines = []
    for agg in aggs:
        mean, std, n = agg.main
        notes = []
        if agg.failed_seeds and agg.ok:
            notes.append(f"{len(agg.failed_seeds)} of {len(agg.failed_seeds) + n} seeds failed: {agg.errors[-1]}")
        elif not agg.ok:
            notes.append(f"failed: {agg.errors[-1] if agg.errors else 'no result'}")
        if agg.source.startswith("import:"):
            notes.append(f"imported from {agg.source[len('import:'):]}; train min = training time up to the best checkpoint")
        if agg.budget_s:
            notes.append(f"budget {agg.budget_s / 60:.0f} min")
        lines.append({
            "kind": "ours", "entry": agg.entry, "task": task, "dataset": dataset, "split": split,
            "variant": _variant_text(agg.variant), "main_metric": main_metric,
            "main": fmt_mean_std(mean, std, factor) if agg.ok else "**failed**",
            "main_mean": mean * factor if mean is not None else None,
            "main_std": std * factor if std is not None else None,
            "secondary": {m: fmt_mean_std(*agg.stats.get(m, (None, None, 0))[:2],
                                          scale(m, [agg.stats.get(m, (None,))[0]])) for m in secondary},
            "secondary_mean": {m: (agg.stats.get(m, (None,))[0] * scale(m, [agg.stats.get(m, (None,))[0]])
                                   if agg.stats.get(m, (None,))[0] is not None else None) for m in secondary},
            "params": agg.stats.get("params", (None,))[0],
            "train_time_s": agg.stats.get("train_time_s", (None,))[0],
            "train_wall_s": agg.stats.get("train_wall_s", (None,))[0],
            "train_tokens_per_s": agg.stats.get("train_tokens_per_s", (None,))[0],
            "infer_tokens_per_s": agg.stats.get("infer_tokens_per_s", (None,))[0],
            "peak_rss_mb": agg.stats.get("peak_rss_mb", (None,))[0],
            "cuda_max_allocated_mb": agg.stats.get("cuda_max_allocated_mb", (None,))[0],
            "seeds": n, "failed": len(agg.failed_seeds), "status": "ok" if agg.ok else "failed",
            "error": agg.errors[-1] if agg.errors else "", "notes": "; ".join(notes), "source": agg.source,
        })
    for ref in references_for(task, dataset, main_metric):
        lines.append(_reference_line(ref, split))
    ours_ok = [line for line in lines if line["main_mean"] is not None]
    failed = [line for line in lines if line["main_mean"] is None]
    descending = not lower_is_better(main_metric)
    ours_ok.sort(key=lambda line: -line["main_mean"] if descending else line["main_mean"])
    return ours_ok + failed


def _reference_line(ref: Reference, split: str) -> dict:
    return {"kind": "reference", "entry": f"*published:* {ref.model}", "task": ref.task, "dataset": ref.dataset,
            "split": split, "variant": "", "main_metric": ref.metric, "main": f"*{ref.value:.2f}*",
            "main_mean": ref.value, "main_std": None, "secondary": {}, "secondary_mean": {}, "params": None,
            "train_time_s": None, "train_wall_s": None, "train_tokens_per_s": None, "infer_tokens_per_s": None,
            "peak_rss_mb": None, "cuda_max_allocated_mb": None, "seeds": None, "failed": 0, "status": "published",
            "error": "", "notes": f"{ref.source}" + (f" ({ref.note})" if ref.note else ""), "source": ref.source}


def _variant_text(variant: dict) -> str:
    if not variant:
        return "–"
    parts = [variant.get("encoder") or "?"]
    if variant.get("attention") and variant["attention"] != "none":
        parts.append(variant["attention"])
    if variant.get("pooling"):
        parts.append(variant["pooling"])
    parts.append(variant.get("head") or "?")
    text = " → ".join(parts)
    if variant.get("embedding") and variant["embedding"] not in ("WordEmbedding",):
        text = f"{variant['embedding']} → {text}"
    return text


def _tested_as(fit: str) -> str:
    """The test command ``scripts/quality_run.sh`` runs after the fit command ``fit``."""
    test = fit.replace("seqlab fit ", "seqlab test ", 1)
    return test.replace(" --results_path ", " --ckpt_path best --results_path ", 1)


def _made(how: dict[str, Optional[str]]) -> str:
    """How one imported run was made: its fit and test commands (the test as "the same options" when it is), then
    its note."""
    fit, test = how.get("fit"), how.get("test")
    if fit and test == _tested_as(fit):
        made = f"`{fit}`, then `seqlab test` with the same options and `--ckpt_path best`"
    elif fit or test:
        made = " then ".join(f"`{c}`" for c in (fit, test) if c)
    else:
        made = "the command was not recorded" + (f" (tested checkpoint `{how['checkpoint']}`)"
                                                  if how.get("checkpoint") else "")
    return made + (f". {how['note']}" if how.get("note") else "")


def command_lines(grouped: dict[tuple[str, str, str], list[Aggregate]],
                  commands: dict[str, dict[str, Optional[str]]]) -> list[str]:
    """Markdown: how each of our lines was made, table by table: ``seqlab leaderboard SPEC --only ENTRY`` for the
    spec's own runs; the fit and test commands and the note of an imported quality run (``commands``: run_id ->
    ``importer.import_commands``' record)."""
    out = ["## How each line was made", "",
           "The commands as they were run, from the repository root (data paths as the run saw them: `../shared/data` "
           "or where `$DATA` pointed); a quality run's own `note` follows its commands.", ""]
    for (task, dataset, split), aggs in grouped.items():
        items = []
        for agg in aggs:
            if agg.spec:
                seeds = ", ".join(map(str, agg.seeds + agg.failed_seeds))
                items.append(f"- {agg.entry}: `seqlab leaderboard {agg.spec} --only {agg.entry}` (seeds {seeds})")
                continue
            runs = [commands.get(r, {}) for r in agg.run_ids]
            if len(runs) <= 1:
                items.append(f"- {agg.entry}: {_made(runs[0] if runs else {})}")
                continue
            seeds = agg.seeds or agg.failed_seeds  # run_ids are the succeeded runs', or all when none did
            seeds = seeds if len(seeds) == len(runs) else [None] * len(runs)
            items.append(f"- {agg.entry}, {len(runs)} runs:")
            items += [f"  - seed {seed}: {_made(how)}" if seed is not None else f"  - {_made(how)}"
                      for seed, how in zip(seeds, runs)]
        out += [f"### {TASK_TITLES.get(task, task)}: {dataset} ({split})", "", *items, ""]
    return out


def render_markdown(rows: list[dict], path: Path, title: str = "seqlab leaderboard", budget: str = "",
                    plots: Optional[dict[tuple[str, str, str], list[Path]]] = None, results_path: str = "",
                    bench: Optional[Path] = None, comparisons: Optional[Path] = None,
                    commands: Optional[dict[str, dict[str, Optional[str]]]] = None) -> str:
    """Write the leaderboard Markdown to ``path`` and return it; ``comparisons``: a JSONL of side-by-side runs over
    seeds (``seqlab.leaderboard.comparisons``), shown as a section after the tables; ``commands``: how the imported
    runs were made (``importer.import_commands``), given to list every line's command; ``bench``: the benchmarks'
    JSONL folder, whose newest rows become a last section."""
    grouped = tables(rows)
    commits = sorted({str(r.get("git_commit")) for r in rows if r.get("git_commit")})
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"# {title}", "",
           f"Generated by `python -m seqlab.leaderboard` on {now} from {len(rows)} rows"
           + (f" in `{results_path}`" if results_path else "") + ".",
           "Each line is one model over its seeds: **mean ± sample std** (n − 1) of the test metric; a single seed "
           "shows no std. Lines are sorted by the main metric (best first; PER-like metrics ascending). "
           "*published* lines are the papers' own test numbers (their setup, their data split), for orientation, "
           "not produced here. Train time is the time in training epochs (validation excluded); throughput counts "
           "real (unpadded) tokens or frames; peak memory is the maximum RSS of the run's processes.", ""]
    if budget:
        out += [f"Budget: {budget}", ""]
    if commits:
        out += ["Commits: " + ", ".join(f"`{c[:12]}`" for c in commits), ""]
    if not grouped:
        out += ["No rows yet.", ""]
    for (task, dataset, split), aggs in grouped.items():
        lines = table_lines(task, dataset, split, aggs)
        main_metric = lines[0]["main_metric"] if lines else TASKS[task][1]
        secondary = _secondary(task, main_metric)
        unit = UNITS.get(task, "tok/s")
        out += [f"## {TASK_TITLES.get(task, task)}: {dataset} ({split})", ""]
        header = ["#", "model", "variant", f"{metric_title(main_metric)}", *[metric_title(m) for m in secondary],
                  "params", "train min", f"train {unit}", f"infer {unit}", "peak MB", "seeds", "notes"]
        out += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
        rank = 0
        for line in lines:
            if line["kind"] == "ours" and line["status"] == "ok":
                rank += 1
                number = str(rank)
            else:
                number = ""
            cells = [number, line["entry"], line["variant"] or "", line["main"],
                     *[line["secondary"].get(m, "") for m in secondary],
                     fmt_count(line["params"]), fmt_minutes(line["train_time_s"] or line["train_wall_s"])
                     if line["kind"] == "ours" else "",
                     fmt_count(line["train_tokens_per_s"]) if line["kind"] == "ours" else "",
                     fmt_count(line["infer_tokens_per_s"]) if line["kind"] == "ours" else "",
                     (f"{line['peak_rss_mb']:.0f}" if line["peak_rss_mb"] else "–") if line["kind"] == "ours" else "",
                     str(line["seeds"]) if line["seeds"] is not None else "", line["notes"]]
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        out.append("")
        for plot in (plots or {}).get((task, dataset, split), []):
            relative = os.path.relpath(plot, path.parent)
            out += [f"![{plot.stem}]({Path(relative).as_posix()})", ""]
    if commands is not None and grouped:
        out += command_lines(grouped, commands)
    if comparisons is not None:
        out += comparison_section(comparisons)
    if bench is not None:
        out += bench_lines(latest_bench_rows(bench), bench)
    out += ["Reference numbers not listed: TIMIT (the `timit_sample` here is 160 utterances, not comparable with "
            "full-TIMIT results) and Multi30k (published BLEU depends on test year, tokenisation and casing).", ""]
    text = "\n".join(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return text


CSV_COLUMNS = ["kind", "task", "dataset", "split", "rank", "entry", "variant", "main_metric", "main_mean", "main_std",
               "seeds", "failed", "params", "train_time_s", "train_wall_s", "train_tokens_per_s",
               "infer_tokens_per_s", "peak_rss_mb", "cuda_max_allocated_mb", "status", "error", "source", "notes"]


def render_csv(rows: list[dict], path: Path) -> list[dict]:
    """The Markdown's lines as CSV (metrics in the tables' units, e.g. percent); secondary metrics as
    ``<metric>_mean`` columns."""
    records = []
    secondary_columns: list[str] = []
    for (task, dataset, split), aggs in tables(rows).items():
        rank = 0
        for line in table_lines(task, dataset, split, aggs):
            record = {k: line.get(k) for k in CSV_COLUMNS if k in line}
            if line["kind"] == "ours" and line["status"] == "ok":
                rank += 1
                record["rank"] = rank
            for metric, value in line["secondary_mean"].items():
                column = f"{metric}_mean"
                record[column] = value
                if column not in secondary_columns:
                    secondary_columns.append(column)
            record["entry"] = line["entry"].replace("*published:* ", "") if line["kind"] == "reference" \
                else line["entry"]
            records.append(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS + secondary_columns, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({k: ("" if v is None else v) for k, v in record.items()})
    return records
