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

    def _count(self, tags: list[str], into: torch.Tensor) -> set:
        spans = set(strict_spans(tags, self.scheme))
        for span in spans:
            into[self.type_index[span.label]] += 1
        return spans

    def update(self, predicted: torch.Tensor, gold: torch.Tensor, mask: torch.Tensor) -> None:
        lengths = mask.sum(1).tolist()
        predicted_rows, gold_rows = predicted.tolist(), gold.tolist()
        correct = torch.zeros_like(self.correct, device="cpu")
        n_pred, n_gold = torch.zeros_like(correct), torch.zeros_like(correct)
        for length, pred_ids, gold_ids in zip(lengths, predicted_rows, gold_rows):
            pred_spans = self._count([self.labels[i] for i in pred_ids[:length]], n_pred)
            gold_spans = self._count([self.labels[i] for i in gold_ids[:length]], n_gold)
            for span in pred_spans & gold_spans:
                correct[self.type_index[span.label]] += 1
        self.correct += correct.to(self.correct.device)
        self.predicted += n_pred.to(self.predicted.device)
        self.gold += n_gold.to(self.gold.device)

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


class ClassCounts(torch.nn.Module):
    """(gold, predicted) counts of K classes in a (K, K) buffer: the cheapest running state for per-step training
    metrics (one ``bincount`` per update, no torchmetrics bookkeeping). ``update(predicted (N,), gold (N,))``;
    ``scores(counts)`` -> micro ``accuracy`` and macro ``f1`` like torchmetrics' MulticlassAccuracy(average="micro")
    and MulticlassF1Score(average="macro") (a class neither present nor predicted is left out of the mean). Summing
    the counts over DDP ranks is the caller's (``strategy.reduce(counts, "sum")``)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.register_buffer("counts", torch.zeros(num_classes, num_classes, dtype=torch.long), persistent=False)

    def update(self, predicted: torch.Tensor, gold: torch.Tensor) -> None:
        k = self.num_classes
        self.counts += torch.bincount(gold * k + predicted, minlength=k * k).view(k, k)

    def reset(self) -> None:
        self.counts.zero_()

    @staticmethod
    def scores(counts: torch.Tensor) -> dict[str, torch.Tensor]:
        counts = counts.double()
        true_positives = counts.diagonal()
        predicted, gold = counts.sum(dim=0), counts.sum(dim=1)  # per class
        errors = predicted + gold - 2 * true_positives  # false positives + false negatives
        f1 = 2 * true_positives / (2 * true_positives + errors).clamp(min=1)  # 0 where a class has no counts
        seen = (true_positives + errors) > 0
        macro = f1[seen].mean() if bool(seen.any()) else f1.new_zeros(())
        accuracy = true_positives.sum() / counts.sum().clamp(min=1)
        return {"accuracy": accuracy.float(), "f1": macro.float()}
