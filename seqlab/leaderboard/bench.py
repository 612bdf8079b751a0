"""The speed benchmarks' rows (``benchmarks/*.py`` append them to ``results/bench/<script>.jsonl``) as a section of
``LEADERBOARD.md``: the newest row of each comparison, with what was compared, how many threads and the machine's
load when it ran."""

from __future__ import annotations

import json
from pathlib import Path


def latest_bench_rows(folder: Path) -> list[dict]:
    """The newest row (by its ``time``) of each (script, comparison name) in ``folder/*.jsonl``, in script then
    name order; each gains ``script`` (the file's stem). A line that is not JSON is skipped."""
    latest: dict[tuple[str, str], dict] = {}
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(row, dict) or "name" not in row or "ratio" not in row:
                continue
            key = (path.stem, str(row["name"]))
            if key not in latest or str(row.get("time", "")) >= str(latest[key].get("time", "")):
                latest[key] = {**row, "script": path.stem}
    return [latest[key] for key in sorted(latest)]


def _number(value) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def bench_lines(rows: list[dict], folder: Path) -> list[str]:
    """Markdown: one table of the benchmark rows (nothing when there are none)."""
    if not rows:
        return []
    out = ["## Speed benchmarks", "",
           f"The newest row of each comparison in `{folder.as_posix()}/*.jsonl` (written by `make bench`; ratios "
           "measured in one run, never asserted). *reference* is the raw PyTorch loop, the peer package or the "
           "per-sentence search named in *what was compared*; a *quoted* reference or a *target* was not measured in "
           "that run.", "",
           "| script | comparison | seqlab | reference | unit | ratio | threads | load | when | what was compared |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        kind = row.get("reference_kind", "measured")
        reference = _number(row.get("reference")) + ("" if kind == "measured" else f" ({kind})")
        cells = [row["script"], str(row["name"]), _number(row.get("seqlab")), reference, str(row.get("unit", "")),
                 f"{row['ratio']:.3f}" if isinstance(row.get("ratio"), (int, float)) else "–",
                 str(row.get("threads", "–")), str(row.get("load_1m", "–")), str(row.get("time", "–")),
                 str(row.get("what", ""))]
        out.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    out.append("")
    return out
