"""One policy for bad input rows in every task: ``error`` (stop at the first, naming its file and line), ``skip``
(drop them, log how many) or ``warn`` (drop them with a warning naming the first few)."""

from __future__ import annotations

from typing import Literal, Sequence

import datasets
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from seqlab import SeqlabError

OnBadRow = Literal["error", "skip", "warn"]
ON_BAD_ROW = ("error", "skip", "warn")


def check_policy(on_bad_row: str) -> str:
    if on_bad_row not in ON_BAD_ROW:
        raise SeqlabError(f"--data.on_bad_row must be one of {', '.join(ON_BAD_ROW)}, got {on_bad_row!r}")
    return on_bad_row


def bad_row_error(first: str, others: int = 0) -> SeqlabError:
    """What ``error`` stops with: the first bad row's message (``file:line: what``) and how many others were seen."""
    more = f" (and {others} more bad rows)" if others else ""
    return SeqlabError(f"{first}{more}; --data.on_bad_row skip drops bad rows")


def report_dropped(on_bad_row: str, split: str, first: Sequence[str], dropped: int, total: int) -> None:
    """``skip``/``warn``: ``dropped`` of ``total`` rows were bad (``first``: the first few messages); a split of bad
    rows only is an error."""
    if dropped == total:
        raise SeqlabError(f"every row of the '{split}' split is bad (first: {first[0]})")
    summary = f"{split}: dropped {dropped} bad rows of {total}"
    if on_bad_row == "warn":
        rank_zero_warn(f"{summary}: " + "; ".join(first[:3]))
    else:
        rank_zero_info(f"{summary} (first: {first[0]})")


def apply_policy(dataset: datasets.Dataset, on_bad_row: str, split: str, column: str = "error") -> datasets.Dataset:
    """Rows whose ``column`` holds a message (``file:line: what``) are bad: the first stops reading (``error``), or all
    are dropped and counted (``skip``: logged; ``warn``: a warning with the first three messages)."""
    bad = [i for i, message in enumerate(dataset[column]) if message]
    if not bad:
        return dataset
    if on_bad_row == "error":
        raise bad_row_error(dataset[bad[0]][column], len(bad) - 1)
    report_dropped(on_bad_row, split, [dataset[i][column] for i in bad[:3]], len(bad), len(dataset))
    return dataset.select(sorted(set(range(len(dataset))) - set(bad)))
