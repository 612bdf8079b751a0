"""Speech scoring: phone sequences from frame labels, edit distance, phone error rate (a torchmetrics state that sums
over batches and DDP ranks), and the per-phone confusion matrix as CSV and a PNG heat map."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torchmetrics import Metric


def edit_distance(hypothesis: Sequence, reference: Sequence) -> int:
    """Levenshtein distance: the fewest substitutions, insertions and deletions turning one sequence into the other."""
    previous = list(range(len(reference) + 1))
    for i, h in enumerate(hypothesis, 1):
        current = [i] + [0] * len(reference)
        for j, r in enumerate(reference, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (h != r))
        previous = current
    return previous[-1]


def phone_sequence(labels: Iterable[int], silence: frozenset | set = frozenset()) -> list[int]:
    """Frame (or segment) labels -> phones: runs of equal labels collapsed to one, then silence labels dropped."""
    phones: list[int] = []
    last = None
    for label in labels:
        if label != last:
            phones.append(label)
            last = label
    return [p for p in phones if p not in silence]


class PhoneErrorRate(Metric):
    """Phone error rate: the summed edit distances over the summed reference lengths, over every utterance seen.

    ``update(hypotheses, references)`` with phone sequences (lists of ids, already collapsed and without silence);
    ``compute()`` -> the rate (0 for no reference phones at all)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("errors", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("reference_length", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, hypotheses: Sequence[Sequence[int]], references: Sequence[Sequence[int]]) -> None:
        self.errors += sum(edit_distance(h, r) for h, r in zip(hypotheses, references))
        self.reference_length += sum(len(r) for r in references)

    def compute(self) -> torch.Tensor:
        return self.errors.double().div(self.reference_length.clamp_min(1)).float()


def write_confusion_matrix(matrix: torch.Tensor, labels: Sequence[str], stem: Path) -> tuple[Path, Path]:
    """(K, K) counts, rows = reference, columns = predicted -> ``<stem>.csv`` (counts with a header row and column)
    and ``<stem>.png`` (a heat map of each row normalised to 1, so rare phones are as visible as frequent ones)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stem.parent.mkdir(parents=True, exist_ok=True)
    counts = torch.tensor(matrix.detach().long().tolist())  # (K, K) read from whatever device the metric is on
    csv_path, png_path = stem.with_suffix(".csv"), stem.with_suffix(".png")
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["reference\\predicted", *labels])
        for label, row in zip(labels, counts.tolist()):
            writer.writerow([label, *row])
    rates = counts.double() / counts.sum(dim=1, keepdim=True).clamp_min(1)
    size = max(6.0, 0.22 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(rates.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    axes.set_yticks(range(len(labels)), labels, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("reference")
    accuracy = counts.diag().sum().item() / max(counts.sum().item(), 1)
    axes.set_title(f"frame confusion (rows normalised), accuracy {accuracy:.1%}")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    figure.savefig(png_path, dpi=120)
    plt.close(figure)
    return csv_path, png_path
