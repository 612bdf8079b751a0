"""``python -m seqlab.leaderboard SPEC.yaml`` (or ``seqlab leaderboard SPEC.yaml``): run the spec's entries, append
rows to its results file, then write the Markdown, the CSV and the plots.

    seqlab leaderboard leaderboards/default.yaml                      # train + test every entry, then render
    seqlab leaderboard leaderboards/default.yaml --only ner/bilstm_crf # some entries
    seqlab leaderboard leaderboards/default.yaml --render-only        # tables and plots from the rows so far
    seqlab leaderboard leaderboards/default.yaml --import results/quality.jsonl --render-only
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

from seqlab import SeqlabError


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="seqlab leaderboard", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", help="the leaderboard spec (YAML), e.g. leaderboards/default.yaml")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these entries (names or prefixes)")
    parser.add_argument("--render-only", action="store_true", help="no runs: render the rows already recorded")
    parser.add_argument("--import", dest="imports", nargs="+", default=[], metavar="JSONL",
                        help="import seqlab test rows (e.g. results/quality.jsonl) as leaderboard rows first")
    parser.add_argument("--data_root", help="where relative data paths resolve (default: the spec's data_root, "
                                            "$SEQLAB_DATA, ../shared/data)")
    parser.add_argument("--results", help="override the spec's results JSONL")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and the budget, run nothing")
    return parser.parse_args(argv)


def _fmt_time(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """One line per run as it starts and ends, then a summary table (rich)."""

    def __init__(self, console) -> None:
        self.console = console
        self.started = time.perf_counter()
        self.run_started = 0.0

    def __call__(self, kind: str, index: int, total: int, entry, seed: int, row: Optional[dict] = None) -> None:
        elapsed = _fmt_time(time.perf_counter() - self.started)
        if kind == "start":
            self.run_started = time.perf_counter()
            what = (f"train ≤ {_fmt_time(entry.budget_seconds())}" if entry.budget_seconds() else
                    ("train" if entry.train else "test checkpoint"))
            self.console.print(f"[bold][{index}/{total}][/bold] {entry.name} seed {seed}: {what} + test "
                               f"[dim](elapsed {elapsed})[/dim]", highlight=False)
        elif row is not None:
            took = _fmt_time(time.perf_counter() - self.run_started)
            if row["status"] == "ok":
                from seqlab.leaderboard.render import metric_title, scale

                value = row["main_value"] * scale(row["main_metric"], [row["main_value"]])
                self.console.print(f"  [green]ok[/green] {row['main_metric']} {value:.2f} "
                                   f"({metric_title(row['main_metric'])}) in {took}", highlight=False)
            else:
                from rich.text import Text

                line = Text("  ")
                line.append("failed", style="red")
                line.append(f" at {row['failed_stage']} in {took}: {row['error']}")
                self.console.print(line, highlight=False)


def summary(console, rows: list[dict]) -> None:
    from rich.table import Table

    from seqlab.leaderboard.render import scale

    table = Table(title="leaderboard runs")
    for column in ("entry", "seed", "status", "metric", "train", "test", "note"):
        table.add_column(column)
    for row in rows:
        value = (f"{row['main_value'] * scale(row['main_metric'], [row['main_value']]):.2f}"
                 if row.get("main_value") is not None else "–")
        table.add_row(row["entry"], str(row["seed"]), row["status"], f"{row['main_metric']} {value}",
                      _fmt_time(row["train_wall_s"]) if row.get("train_wall_s") else "–",
                      _fmt_time(row["test_wall_s"]) if row.get("test_wall_s") else "–",
                      (row.get("error") or "")[:80])
    console.print(table)
    failed = sum(r["status"] != "ok" for r in rows)
    console.print(f"{len(rows) - failed} ok, {failed} failed", highlight=False)


def select(entries, only: Optional[list[str]]):
    if not only:
        return entries
    chosen = [e for e in entries if any(e.name == o or e.name.startswith(o.rstrip("/") + "/") for o in only)]
    if not chosen:
        raise SeqlabError(f"--only {' '.join(only)}: no such entry (entries: {', '.join(e.name for e in entries)})")
    return chosen


def check_outputs(spec) -> None:
    """Before any run: each file the leaderboard writes is not a folder, each folder not a file."""
    from seqlab.config_checks import check_output_path

    for name in ("results", "markdown", "csv"):
        check_output_path(getattr(spec, name), name, "file")
    for name in ("plots", "runs"):
        check_output_path(getattr(spec, name), name, "folder")


def render_all(spec, console, imports: list[Path]) -> None:
    """The Markdown, the CSV and the plots; ``imports``: the files quality rows were imported from (their commands
    are listed)."""
    from seqlab.leaderboard.importer import import_commands
    from seqlab.leaderboard.plots import render_plots
    from seqlab.leaderboard.render import render_csv, render_markdown
    from seqlab.leaderboard.rows import read_results

    rows = read_results(spec.results)
    plots = render_plots(rows, spec.plots)
    commands = {run_id: how for source in imports if source.is_file()
                for run_id, how in import_commands(source).items()}
    render_markdown(rows, spec.markdown, title=spec.title, budget=spec.budget, plots=plots,
                    results_path=str(spec.results), bench=spec.bench, comparisons=spec.comparisons, commands=commands)
    render_csv(rows, spec.csv)
    count = sum(len(p) for p in plots.values())
    console.print(f"wrote {spec.markdown}, {spec.csv} and {count} plots in {spec.plots} "
                  f"({len(rows)} rows in {spec.results})", highlight=False)


def main(argv: Optional[list[str]] = None) -> None:
    from rich.console import Console

    from seqlab.leaderboard.importer import import_rows
    from seqlab.leaderboard.rows import append_row, read_results
    from seqlab.leaderboard.runner import Runner
    from seqlab.leaderboard.spec import load_spec

    args = parse_args(sys.argv[1:] if argv is None else argv)
    console = Console(stderr=False, soft_wrap=True)
    try:
        spec = load_spec(args.spec, data_root=args.data_root)
        if args.results:
            spec.results = Path(args.results)
        check_outputs(spec)
        imports = [*spec.imports, *map(Path, args.imports)]
        for source in [] if args.dry_run else imports:
            if not source.is_file():
                raise SeqlabError(f"--import: file not found: {source}")
            imported = import_rows(source, read_results(spec.results), datasets=spec.datasets_by_config())
            for row in imported:
                append_row(spec.results, row)
            console.print(f"imported {len(imported)} rows from {source}", highlight=False)
        entries = select(spec.entries, args.only)
        if args.dry_run:
            for entry in entries:
                console.print(f"{entry.name}: {entry.task}, seeds {entry.seeds}, "
                              f"{'budget ' + _fmt_time(entry.budget_seconds()) if entry.train else 'checkpoint'}",
                              highlight=False)
            total = sum(e.budget_seconds() * len(e.seeds) for e in entries)
            console.print(f"training budget: {_fmt_time(total)} over {sum(len(e.seeds) for e in entries)} runs",
                          highlight=False)
            return
        rows = []
        if not args.render_only and entries:
            runner = Runner(spec, on_event=Progress(console))
            rows = runner.run(entries)
            summary(console, rows)
        render_all(spec, console, imports)
    except SeqlabError as error:
        print(f"seqlab leaderboard: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as error:  # an output path that cannot be written
        print(f"seqlab leaderboard: error: {error.filename}: {error.strerror or error}", file=sys.stderr)
        raise SystemExit(2) from None
    if rows and all(r["status"] != "ok" for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
