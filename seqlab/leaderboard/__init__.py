"""The leaderboard (``seqlab leaderboard SPEC.yaml``): run configs on real data, record one row per run, render
Markdown/CSV tables and plots. Modules: spec (the YAML), runner (fit/test subprocesses), meter (throughput callback),
rows (row files, aggregation), importer (rows from ``seqlab test --results_path`` files), references (published
numbers), render (Markdown, CSV), plots (PNG)."""

from __future__ import annotations

from typing import Optional


def main(argv: Optional[list[str]] = None) -> None:
    from seqlab.leaderboard.__main__ import main as run

    run(argv)
