"""PNG plots per task and dataset (matplotlib, Agg backend): the main metric against training time, and models with
vs without attention."""

from __future__ import annotations

import math
import re
from pathlib import Path

from seqlab.leaderboard.references import references_for
from seqlab.leaderboard.render import metric_title, scale, tables, table_lines


def _slug(*parts: str) -> str:
    return "_".join(re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-") for p in parts if p)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _legend():
    from matplotlib.patches import Patch

    return [Patch(color="tab:orange", label="with attention"), Patch(color="tab:blue", label="without attention")]


def render_plots(rows: list[dict], folder: Path) -> dict[tuple[str, str, str], list[Path]]:
    """(task, dataset, split) -> the PNGs written: ``<task>_<dataset>_time.png`` (metric vs training minutes, with
    std error bars and the published numbers as dashed lines) and ``<task>_<dataset>_attention.png`` (each model's
    metric, coloured by with/without attention)."""
    plt = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[tuple[str, str, str], list[Path]] = {}
    for (task, dataset, split), aggs in tables(rows).items():
        ok = [a for a in aggs if a.ok]
        if not ok:
            continue
        metric = ok[0].main_metric
        factor = scale(metric, [a.main[0] for a in ok])
        # a value too large for a float once scaled (1e308 x 100) has no place on an axis; the tables still show it
        ok = [a for a in ok if math.isfinite(a.main[0] * factor) and math.isfinite((a.main[1] or 0) * factor)]
        if not ok:
            continue
        label = f"{split} {metric_title(metric)}"
        references = references_for(task, dataset, metric)
        paths = []

        # metric vs training time (entries with a known training time)
        timed = [(agg, agg.stats.get("train_time_s", (None,))[0] or agg.stats.get("train_wall_s", (None,))[0])
                 for agg in ok]
        timed = [(agg, seconds) for agg, seconds in timed if seconds is not None]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for agg, seconds in timed:
            mean, std, _ = agg.main
            attends = bool(agg.variant.get("attends"))
            ax.errorbar(seconds / 60, mean * factor, yerr=(std or 0) * factor, fmt="o" if attends else "s",
                        color="tab:orange" if attends else "tab:blue", capsize=3)
            ax.annotate(agg.entry, (seconds / 60, mean * factor), textcoords="offset points", xytext=(5, 4),
                        fontsize=7)
        for number, ref in enumerate(sorted(references, key=lambda r: r.value)):
            ax.axhline(ref.value, linestyle="--", linewidth=0.8, color="gray")
            ax.annotate(f"{ref.source.split(',')[0]}: {ref.value:.2f}", (0.02 + 0.35 * number, ref.value),
                        xycoords=("axes fraction", "data"), xytext=(0, 2), textcoords="offset points", fontsize=7,
                        color="gray")
        ax.legend(handles=_legend(), fontsize=8, loc="best")
        ax.set_xlabel("training time (min)")
        ax.set_ylabel(label)
        ax.set_title(f"{dataset}: {label} vs training time")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = folder / f"{_slug(task, dataset, split)}_time.png"
        if timed:
            fig.savefig(path, dpi=110)
            paths.append(path)
        plt.close(fig)

        # with vs without attention
        lines = [line for line in table_lines(task, dataset, split, ok) if line["kind"] == "ours"]
        attends = {a.entry: bool(a.variant.get("attends")) for a in ok}
        fig, ax = plt.subplots(figsize=(7, 0.5 * len(lines) + 1.6))
        names = [line["entry"] for line in lines][::-1]
        means = [line["main_mean"] for line in lines][::-1]
        stds = [line["main_std"] or 0 for line in lines][::-1]
        colors = ["tab:orange" if attends.get(n) else "tab:blue" for n in names]
        ax.barh(range(len(names)), means, xerr=stds if any(stds) else None, color=colors, capsize=3)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        for number, ref in enumerate(sorted(references, key=lambda r: r.value)):
            ax.axvline(ref.value, linestyle="--", linewidth=0.8, color="gray")
            ax.annotate(f"{ref.source.split(',')[0]} {ref.value:.2f}", (ref.value, 1.0),
                        xycoords=("data", "axes fraction"), xytext=(-2, -9 - 9 * number), textcoords="offset points",
                        fontsize=6, color="gray", ha="right")
        low = min(means + [r.value for r in references])
        high = max(m + s for m, s in zip(means, stds))
        high = max([high] + [r.value for r in references])
        margin = max((high - low) * 0.15, 0.5)
        ax.set_xlim(max(low - margin, 0), high + margin)
        ax.legend(handles=_legend(), fontsize=8, loc="lower right")
        ax.set_xlabel(label)
        ax.set_title(f"{dataset}: with vs without attention")
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        path = folder / f"{_slug(task, dataset, split)}_attention.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
        written[(task, dataset, split)] = paths
    return written
