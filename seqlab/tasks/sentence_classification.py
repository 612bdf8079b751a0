"""Sentence classification (sentiment): embedder -> encoder -> pooling -> classifier, accuracy and macro F1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

import torch
import torch.nn.functional as F
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from seqlab.models.classifiers import MLPClassifier
from seqlab.models.embeddings import TokenEmbedder, WordEmbedder, WordEmbedding
from seqlab.models.transformer_embeddings import TransformerWordEmbedding
from seqlab.models.encoders import BiLSTMEncoder, SequenceEncoder
from seqlab.models.pooling import MaxPooling, PooledOutput, Pooling
from seqlab.tasks.base import SequenceTask

if TYPE_CHECKING:  # the Batch its data module's collator gives
    from seqlab.data_modules.text_classification import SentenceBatch


class SentenceClassification(SequenceTask):
    """One label per text. Logs ``{stage}/loss``, ``{stage}/accuracy`` and ``{stage}/f1`` (macro), and at test
    ``test/f1_<label>`` per class. A pooling with a regularizer (self-attentive pooling's ||AA^T - I||_F^2) adds
    its weighted penalty to the loss; it is logged as ``{stage}/penalty``.

    ``vocab_size``, ``padding_idx``, ``labels`` and ``word_vectors`` come from the data module (linked by the CLI);
    the parts are factories that receive the sizes they depend on: ``word_embedding(vocab_size, padding_idx)``,
    ``encoder(input_size)``, ``pooling(encoder.output_size)``, ``head(pooling.output_size, labels)``.
    ``word_vectors`` (V, D), the data module's pretrained vectors for its vocabulary, start the word embedding's
    rows (not saved in the hyperparameters: the checkpoint's weights hold them).
    ``class_weights`` (one per label, in label order) weight the cross-entropy. ``transformer_spec`` (linked from
    the data module's) adds a ``TransformerWordEmbedding`` beside the word embedding (or instead: ``word_embedding:
    null``); a fine-tuned one starts from ``transformer_weights`` (not saved in the hyperparameters) and learns at
    ``transformer_lr``.
    """

    monitor = "val/accuracy"
    monitor_mode = "max"

    def __init__(
        self,
        vocab_size: int,
        labels: list[str],
        padding_idx: int = 0,
        word_embedding: Optional[Callable[[int, int], WordEmbedder]] = WordEmbedding,
        embedding_dropout: float = 0.5,
        encoder: Callable[[int], SequenceEncoder] = BiLSTMEncoder,
        pooling: Callable[[int], Pooling] = MaxPooling,
        head: Callable[[int, list[str]], nn.Module] = MLPClassifier,
        class_weights: Optional[list[float]] = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
        checkpoint_every_n_steps: int = 500,
        word_vectors: Optional[torch.Tensor] = None,
        transformer_spec: Optional[dict] = None,
        transformer_weights: Optional[dict] = None,
        transformer_lr: float = 5e-5,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, checkpoint_every_n_steps)
        self.save_hyperparameters(ignore=["word_vectors", "transformer_weights"])
        self.labels = list(labels)
        if class_weights is not None and len(class_weights) != len(self.labels):
            raise ValueError(f"class_weights has {len(class_weights)} values for {len(self.labels)} labels "
                             f"({', '.join(self.labels)})")
        self.register_buffer("class_weights", None if class_weights is None else torch.tensor(class_weights,
                                                                                               dtype=torch.float))
        words = word_embedding(vocab_size, padding_idx) if word_embedding is not None else None
        contextual = TransformerWordEmbedding.build(transformer_spec, transformer_weights) if transformer_spec else None
        self.transformer_lr = transformer_lr
        self.embedder = TokenEmbedder(words, None, embedding_dropout, contextual)
        self.load_word_vectors(self.embedder.words, word_vectors)
        self.encoder = encoder(self.embedder.output_size)
        self.pooling = pooling(self.encoder.output_size)
        self.head = head(self.pooling.output_size, self.labels)
        classes = len(self.labels)
        self.metrics = nn.ModuleDict({  # keyed "train_metrics"...: a ModuleDict key may not be "train"
            f"{stage}_metrics": MetricCollection({
                "accuracy": MulticlassAccuracy(classes, average="micro"),
                "f1": MulticlassF1Score(classes, average="macro"),
            }, prefix=f"{stage}/")
            for stage in ("train", "val", "test")
        })
        self.test_class_f1 = MulticlassF1Score(classes, average="none")

    def forward(self, batch: SentenceBatch) -> tuple[torch.Tensor, PooledOutput]:
        """Logits (B, K) and the pooling's output (pooled (B, P), attention weights, penalty)."""
        embedded = self.embedder(batch["token_ids"], batch["mask"], transformer_inputs=batch)  # (B, T, E)
        pooled = self.pooling(self.encoder(embedded, batch["mask"]))
        return self.head(pooled.pooled), pooled

    def shared_step(self, batch: SentenceBatch, stage: str) -> torch.Tensor:
        logits, pooled = self(batch)
        targets = batch["label_ids"]
        if stage != "train" and bool((targets < 0).any()):  # training rows without a label fail when read
            raise ValueError(f"{stage} batch holds unlabelled examples (label -1)")
        loss = F.cross_entropy(logits, targets, weight=self.class_weights)
        batch_size = targets.shape[0]
        predicted = logits.detach().argmax(dim=-1)
        metrics = self.metrics[f"{stage}_metrics"]
        if stage == "train":
            self.update_train_metric(metrics, predicted, targets)
            values = {"train/loss": loss if pooled.penalty is None else loss + pooled.penalty}
            if pooled.penalty is not None:
                values["train/penalty"] = pooled.penalty
            self.log_train(values, batch_size)
            return values["train/loss"]
        metrics.update(predicted, targets)
        if pooled.penalty is not None:
            self.log(f"{stage}/penalty", pooled.penalty, batch_size=batch_size, sync_dist=True, on_step=False,
                     on_epoch=True)
            loss = loss + pooled.penalty
        self.log(f"{stage}/loss", loss, batch_size=batch_size, prog_bar=True, sync_dist=True, on_step=False,
                 on_epoch=True)
        self.log_dict(metrics, batch_size=batch_size, prog_bar=True, on_step=False, on_epoch=True)
        if stage == "test":
            self.test_class_f1.update(predicted, targets)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log_epoch_metrics(self.metrics["train_metrics"])

    def on_test_epoch_end(self) -> None:
        per_class = self.test_class_f1.compute()
        self.log_dict({f"test/f1_{label}": value for label, value in zip(self.labels, per_class)}, sync_dist=True)
        self.test_class_f1.reset()

    def predict_step(self, batch: SentenceBatch, batch_idx: int = 0) -> list[dict]:
        """One record per text: tokens, label, class probabilities and, for attention poolings, each token's
        attention weight (``attention``; the mean over hops, with ``attention_hops`` per hop when r > 1)."""
        logits, pooled = self(batch)
        probabilities = logits.softmax(dim=-1).tolist()
        weights = pooled.weights
        records = []
        for row, (index, tokens) in enumerate(zip(batch["index"].tolist(), batch["tokens"])):
            p = probabilities[row]
            best = max(range(len(p)), key=p.__getitem__)
            record = {"index": index, "tokens": tokens, "label": self.labels[best],
                      "probabilities": {label: round(v, 6) for label, v in zip(self.labels, p)}}
            if weights is not None:
                length = len(tokens)
                if weights.dim() == 3:  # (B, r, T)
                    hops = weights[row, :, :length]
                    record["attention"] = [round(v, 6) for v in hops.mean(dim=0).tolist()]
                    record["attention_hops"] = [[round(v, 6) for v in hop] for hop in hops.tolist()]
                else:  # (B, T)
                    record["attention"] = [round(v, 6) for v in weights[row, :length].tolist()]
            records.append(record)
        return records
