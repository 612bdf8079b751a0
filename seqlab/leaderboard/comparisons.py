"""Side-by-side comparisons over seeds (multi-task vs single-task models at equal wall time): the test rows of a
comparisons JSONL (seqlab ``--results_path`` rows with ``comparison`` and ``seed`` fields added) -> one Markdown table
per comparison, each arm's headline metric per task as mean +- sample std over its seeds, with the seeds' values.

    python -m seqlab.leaderboard.comparisons results/multitask_comparisons.jsonl [--out results/multitask_comparisons.md]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Optional

from seqlab import SeqlabError
from seqlab.leaderboard.rows import fmt_mean_std, mean_std, read_rows

#: the task a single-task model's unprefixed metrics belong to
SINGLE_TASKS = {"TokenTagging": "ner", "SentenceClassification": "sentiment"}
#: each task's headline metric, by the metric's last part
HEADLINE = {"ner": "f1", "chunk": "f1", "pos": "accuracy", "sentiment": "accuracy"}
TASK_ORDER = ("ner", "pos", "chunk", "sentiment")


def headline_scores(row: dict) -> dict[str, float]:
    """task -> headline test metric of one test row: ``test/{task}/{metric}`` of a multi-task model,
    ``test/{metric}`` of a single-task one (its task from the model class)."""
    scores = {}
    single = SINGLE_TASKS.get(str(row.get("model")))
    for key, value in (row.get("metrics") or {}).items():
        multi = re.fullmatch(r"test/([^/]+)/([^/]+)", key)
        if multi and HEADLINE.get(multi.group(1)) == multi.group(2):
            scores[multi.group(1)] = value
        elif single and key == f"test/{HEADLINE[single]}":
            scores[single] = value
    return scores


def arm_name(row: dict) -> str:
    configs = row.get("configs") or ["?"]
    return Path(configs[0]).stem


PREAMBLE = ("test scores in percent, mean ± sample std over the seeds, each seed's value in brackets; under each "
            "table, how its runs were made (the rows' distinct `note` fields).")


def comparison_row_problem(row: dict) -> str:
    """What in a comparison test row keeps the tables from reading it ('' when nothing)."""
    if row.get("subcommand") != "test" or "comparison" not in row:
        return ""
    if not isinstance(row["comparison"], str):
        return f"field 'comparison': expected a name, got {json.dumps(row['comparison'])}"
    configs, metrics = row.get("configs"), row.get("metrics")
    if configs is not None and not (isinstance(configs, list) and all(isinstance(c, str) for c in configs)):
        return f"field 'configs': expected a list of paths, got {json.dumps(configs)}"
    if metrics is not None and not (isinstance(metrics, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values())):
        return f"field 'metrics': expected a mapping of metric names to numbers, got {json.dumps(metrics)}"
    return ""


def comparison_tables(rows: list[dict]) -> str:
    """The Markdown: one table per ``comparison``; rows = arms (configs), columns = tasks, in percent; then the
    comparison's distinct ``note`` fields as a list."""
    grouped: dict[str, dict[str, dict[int, dict[str, float]]]] = {}
    notes: dict[str, list[str]] = {}
    for row in rows:
        if row.get("subcommand") != "test" or "comparison" not in row:
            continue
        if not isinstance(row.get("seed"), int):
            raise SeqlabError(f"a comparison test row of {arm_name(row)} ({row['comparison']}) has no integer 'seed'")
        arms = grouped.setdefault(row["comparison"], {})
        arms.setdefault(arm_name(row), {})[row["seed"]] = headline_scores(row)  # the latest row per seed wins
        note = str(row.get("note") or "").strip()
        if note and note not in notes.setdefault(row["comparison"], []):
            notes[row["comparison"]].append(note)
    if not grouped:
        raise SeqlabError("no comparison test rows (test rows with 'comparison' and 'seed' fields)")
    out = []
    for comparison, arms in grouped.items():
        tasks = [t for t in TASK_ORDER if any(t in scores for seeds in arms.values() for scores in seeds.values())]
        titles = [f"{task} {HEADLINE[task]}" for task in tasks]
        out += [f"### {comparison}", "", "| model | seeds | " + " | ".join(titles) + " |",
                "| --- | --- | " + " | ".join("---" for _ in tasks) + " |"]
        for arm, seeds in arms.items():
            cells = []
            for task in tasks:
                values = [seeds[s][task] for s in sorted(seeds) if task in seeds[s]]
                if not values:
                    cells.append("")
                    continue
                mean, std, _ = mean_std(values)
                each = ", ".join(f"{100 * v:.2f}" for v in values)
                cells.append(f"{fmt_mean_std(mean, std, 100.0)} ({each})")
            out.append(f"| {arm} | {', '.join(map(str, sorted(seeds)))} | " + " | ".join(cells) + " |")
        out.append("")
        if notes.get(comparison):
            out += [*(f"- {note}" for note in notes[comparison]), ""]
    return "\n".join(out)


def comparison_section(path: Path) -> list[str]:
    """The leaderboard's section of the comparisons in the JSONL at ``path`` (its lines)."""
    if not path.is_file():
        raise SeqlabError(f"comparisons: {path}: no such file")
    return ["## Multi-task vs single-task models, side by side over seeds", "",
            f"From `{path.as_posix()}` (`python -m seqlab.leaderboard.comparisons {path.as_posix()}`): {PREAMBLE}", "",
            *comparison_tables(read_rows(path, comparison_row_problem)).splitlines(), ""]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqlab.leaderboard.comparisons", description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", help="the comparisons JSONL, e.g. results/multitask_comparisons.jsonl")
    parser.add_argument("--out", help="also write the Markdown here")
    args = parser.parse_args(argv)
    try:
        if not Path(args.rows).is_file():
            raise SeqlabError(f"{args.rows}: no such file")
        markdown = (f"Generated by `python -m seqlab.leaderboard.comparisons {args.rows}`: {PREAMBLE}\n\n"
                    + comparison_tables(read_rows(Path(args.rows), comparison_row_problem)))
    except SeqlabError as error:
        print(f"seqlab: {error}", file=sys.stderr)
        return 2
    print(markdown)
    if args.out:
        Path(args.out).write_text(markdown, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
