"""Metrics as torchmetrics states, so they sum correctly over batches and DDP ranks."""

from __future__ import annotations

from typing import Sequence

import torch
from torchmetrics import Metric

from seqlab.tagging import detect_scheme, split_tag, strict_spans


class EntityF1(Metric):
    """Entity-level precision/recall/F1 with strict span matching (seqeval ``mode="strict"``, IOB2 or IOBES).

    ``update(predicted (B, T), gold (B, T), mask (B, T))`` with tag ids; ``compute()`` returns micro
    ``precision``, ``recall``, ``f1`` and ``f1_<TYPE>`` per entity type, all in [0, 1].
    """

    full_state_update = False

    def __init__(self, labels: Sequence[str]) -> None:
        super().__init__()
        self.labels = list(labels)
        self.scheme = detect_scheme(self.labels)
        self.types = sorted({split_tag(t)[1] for t in self.labels if t != "O"})
        self.type_index = {t: i for i, t in enumerate(self.types)}
        for name in ("correct", "predicted", "gold"):
            self.add_state(name, default=torch.zeros(len(self.types), dtype=torch.long), dist_reduce_fx="sum")

    def _count(self, tags: list[str], into: list[int]) -> set:
        spans = set(strict_spans(tags, self.scheme))
        for span in spans:
            into[self.type_index[span.label]] += 1
        return spans

    def update(self, predicted: torch.Tensor, gold: torch.Tensor, mask: torch.Tensor) -> None:
        """Spans are found in Python (one read of the tag ids from the device); the counts are added to the states
        where they live, whatever the device."""
        lengths = mask.sum(1).tolist()
        predicted_rows, gold_rows = predicted.tolist(), gold.tolist()
        correct, n_pred, n_gold = ([0] * len(self.types) for _ in range(3))
        for length, pred_ids, gold_ids in zip(lengths, predicted_rows, gold_rows):
            pred_spans = self._count([self.labels[i] for i in pred_ids[:length]], n_pred)
            gold_spans = self._count([self.labels[i] for i in gold_ids[:length]], n_gold)
            for span in pred_spans & gold_spans:
                correct[self.type_index[span.label]] += 1
        for state, counts in ((self.correct, correct), (self.predicted, n_pred), (self.gold, n_gold)):
            state += torch.tensor(counts, dtype=state.dtype, device=state.device)

    @staticmethod
    def _prf(correct, predicted, gold) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        correct, predicted, gold = (x.double() for x in (correct, predicted, gold))
        precision = torch.where(predicted > 0, correct / predicted.clamp_min(1), torch.zeros_like(correct))
        recall = torch.where(gold > 0, correct / gold.clamp_min(1), torch.zeros_like(correct))
        denominator = precision + recall
        f1 = torch.where(denominator > 0, 2 * precision * recall / denominator.clamp_min(1e-12),
                         torch.zeros_like(correct))
        return precision, recall, f1

    def compute(self) -> dict[str, torch.Tensor]:
        precision, recall, f1 = self._prf(self.correct.sum(), self.predicted.sum(), self.gold.sum())
        result = {"precision": precision.float(), "recall": recall.float(), "f1": f1.float()}
        _, _, type_f1 = self._prf(self.correct, self.predicted, self.gold)
        for name, value in zip(self.types, type_f1):
            result[f"f1_{name}"] = value.float()
        return result
