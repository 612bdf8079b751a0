"""What one task of a ``MultiTask`` adds over the shared body: its head, loss weight, metrics and predictions.

An objective is configuration and behaviour, not weights: ``head(input_size, labels)`` builds the head module that
``MultiTaskNetwork`` holds, ``metric(labels)`` a fresh torchmetrics metric per stage. The variants are classes:
``SpanTagging`` (entity or chunk spans, strict span F1), ``WordTagging`` (one label per word, token accuracy: POS),
``Classification`` (one label per sequence, accuracy and macro F1).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from seqlab import SeqlabError
from seqlab.models import CRFTagger, MLPClassifier, MaxPooling, MultiHeadSelfAttention, SoftmaxTagger, TaggerHead
from seqlab.models.networks import (
    ClassificationHead,
    ClassifierOutput,
    TaggingHead,
    build_classification_head,
    build_tagging_head,
)
from seqlab.models.pooling import Pooling
from seqlab.tagging import detect_scheme
from seqlab.tasks.metrics import EntityF1
from seqlab.tasks.sentence_classification import label_records
from seqlab.tasks.token_tagging import tag_records


class Objective:
    """One task's part of a multi-task model. ``loss_weight`` scales its loss; ``monitor`` names the metric that
    checkpoints follow when this task is the monitored one (``monitor_mode``: ``max``)."""

    monitor: str = "loss"
    monitor_mode: str = "max"

    def __init__(self, loss_weight: float = 1.0) -> None:
        if loss_weight <= 0:
            raise SeqlabError(f"--model.objectives ({type(self).__name__}): loss_weight must be positive, got "
                              f"{loss_weight}")
        self.loss_weight = loss_weight

    def head(self, input_size: int, labels: list[str]) -> nn.Module:
        raise NotImplementedError

    def metric(self, labels: list[str]) -> Metric | MetricCollection:
        raise NotImplementedError

    def update(self, metric: Metric | MetricCollection, head: nn.Module, outputs, batch: dict) -> None:
        raise NotImplementedError

    def compute(self, metric: Metric | MetricCollection) -> dict[str, torch.Tensor]:
        """The stage's values by name (``f1``, ``accuracy``...)."""
        return dict(metric.compute())

    def predict(self, head: nn.Module, outputs, batch: dict, labels: list[str]) -> list[dict]:
        raise NotImplementedError


class SpanTagging(Objective):
    """Tags whose spans are the unit (NER entities, chunks; BIO or BIOES): a softmax or CRF ``tagger`` over the
    states (optionally self-attention first); metrics: strict span ``precision``, ``recall``, ``f1``; predictions
    as ``TokenTagging``'s (entities with character offsets and confidences)."""

    monitor = "f1"

    def __init__(self, tagger: Callable[[int, list[str]], TaggerHead] = CRFTagger,
                 attention: Optional[Callable[[int], MultiHeadSelfAttention]] = None, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        self.tagger, self.attention = tagger, attention

    def head(self, input_size: int, labels: list[str]) -> TaggingHead:
        return build_tagging_head(input_size, labels, self.tagger, self.attention)

    def metric(self, labels: list[str]) -> Metric:
        return EntityF1(labels)

    def update(self, metric: Metric, head: TaggingHead, emissions: torch.Tensor, batch: dict) -> None:
        metric.update(head.tagger.decode(emissions, batch["mask"]), batch["tag_ids"], batch["mask"])

    def compute(self, metric: Metric) -> dict[str, torch.Tensor]:
        return {k: v for k, v in metric.compute().items() if k in ("precision", "recall", "f1")}

    def predict(self, head: TaggingHead, emissions: torch.Tensor, batch: dict, labels: list[str]) -> list[dict]:
        return tag_records(head.tagger, emissions, batch, labels, detect_scheme(labels))


class WordTagging(SpanTagging):
    """One label per word, each scored alone (POS tags): metric ``accuracy`` over the real tokens; predictions
    with ``tags`` and no entities. A softmax tagger by default."""

    monitor = "accuracy"

    def __init__(self, tagger: Callable[[int, list[str]], TaggerHead] = SoftmaxTagger,
                 attention: Optional[Callable[[int], MultiHeadSelfAttention]] = None, loss_weight: float = 1.0) -> None:
        super().__init__(tagger, attention, loss_weight)

    def metric(self, labels: list[str]) -> Metric:
        return MulticlassAccuracy(len(labels), average="micro")

    def update(self, metric: Metric, head: TaggingHead, emissions: torch.Tensor, batch: dict) -> None:
        mask = batch["mask"]
        metric.update(head.tagger.decode(emissions, mask)[mask], batch["tag_ids"][mask])

    def compute(self, metric: Metric) -> dict[str, torch.Tensor]:
        return {"accuracy": metric.compute()}

    def predict(self, head: TaggingHead, emissions: torch.Tensor, batch: dict, labels: list[str]) -> list[dict]:
        return tag_records(head.tagger, emissions, batch, labels, scheme=None)


class Classification(Objective):
    """One label per sequence (sentiment): ``pooling`` over the states, then ``classifier``; cross-entropy weighted
    by ``class_weights`` plus the pooling's penalty; metrics ``accuracy`` and macro ``f1``."""

    monitor = "accuracy"

    def __init__(self, pooling: Callable[[int], Pooling] = MaxPooling,
                 classifier: Callable[[int, list[str]], nn.Module] = MLPClassifier,
                 class_weights: Optional[list[float]] = None, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        self.pooling, self.classifier, self.class_weights = pooling, classifier, class_weights

    def head(self, input_size: int, labels: list[str]) -> ClassificationHead:
        return build_classification_head(input_size, labels, self.pooling, self.classifier, self.class_weights)

    def metric(self, labels: list[str]) -> MetricCollection:
        return MetricCollection({"accuracy": MulticlassAccuracy(len(labels), average="micro"),
                                 "f1": MulticlassF1Score(len(labels), average="macro")})

    def update(self, metric: MetricCollection, head: ClassificationHead, output: ClassifierOutput,
               batch: dict) -> None:
        metric.update(output.logits.argmax(dim=-1), batch["label_ids"])

    def predict(self, head: ClassificationHead, output: ClassifierOutput, batch: dict, labels: list[str]) -> list[dict]:
        return label_records(output, batch, labels)
