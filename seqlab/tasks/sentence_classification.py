"""Sentence classification (sentiment): embedder -> encoder -> pooling -> classifier, accuracy and macro F1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from seqlab.models.adversarial import EmbeddingAdversary
from seqlab.models.classifiers import MLPClassifier
from seqlab.models.dropout import DropoutSpec
from seqlab.models.embeddings import WordEmbedder, WordEmbedding
from seqlab.models.encoders import BiLSTMEncoder, SequenceEncoder
from seqlab.models.networks import ClassifierOutput, Network, build_body, build_classification_head
from seqlab.models.pooling import MaxPooling, Pooling
from seqlab.models.transformer_embeddings import TransformerWordEmbedding
from seqlab.tasks.adversarial import AdversarialTraining
from seqlab.tasks.base import SequenceTask

if TYPE_CHECKING:  # the Batch its data module's collator gives
    from seqlab.data_modules.text_classification import SentenceBatch


class SentenceClassification(AdversarialTraining, SequenceTask):
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
    ``transformer_lr``. ``adversary`` (an ``EmbeddingAdversary``) adds adversarial training on the word features
    (Miyato et al. 2017): the training loss becomes ``adversary.mix(clean, perturbed)``, the perturbed reading's loss
    logged as ``train/adversarial_loss``; evaluation and predictions are unchanged.
    """

    state_key_moves = {"embedder.": "model.body.embedder.", "encoder.": "model.body.encoder.",
                       "pooling.": "model.head.pooling.", "head.": "model.head.classifier.",
                       "class_weights": "model.head.class_weights"}
    monitor = "val/accuracy"
    monitor_mode = "max"

    def __init__(
        self,
        vocab_size: int,
        labels: list[str],
        padding_idx: int = 0,
        word_embedding: Optional[Callable[[int, int], WordEmbedder]] = WordEmbedding,
        embedding_dropout: DropoutSpec = 0.5,
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
        adversary: Optional[EmbeddingAdversary] = None,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, checkpoint_every_n_steps)
        self.save_hyperparameters(ignore=["word_vectors", "transformer_weights"])
        self.labels = list(labels)
        contextual = TransformerWordEmbedding.build(transformer_spec, transformer_weights) if transformer_spec else None
        self.transformer_lr = transformer_lr
        body = build_body(vocab_size, padding_idx, word_embedding, encoder, embedding_dropout, transformer=contextual)
        self.model = Network(body, build_classification_head(body.output_size, self.labels, pooling, head,
                                                             class_weights))
        self.load_word_vectors(body.embedder.words, word_vectors)
        classes = len(self.labels)
        self.metrics = nn.ModuleDict({  # keyed "train_metrics"...: a ModuleDict key may not be "train"
            f"{stage}_metrics": MetricCollection({
                "accuracy": MulticlassAccuracy(classes, average="micro"),
                "f1": MulticlassF1Score(classes, average="macro"),
            }, prefix=f"{stage}/")
            for stage in ("train", "val", "test")
        })
        self.test_class_f1 = MulticlassF1Score(classes, average="none")
        self.adversary = adversary

    @property
    def word_embedder(self) -> Optional[WordEmbedder]:
        return self.model.body.embedder.words

    def forward(self, batch: SentenceBatch) -> ClassifierOutput:
        """Logits (B, K) and the pooling's output (pooled (B, P), attention weights, penalty)."""
        return self.model(batch)

    def shared_step(self, batch: SentenceBatch, stage: str) -> torch.Tensor:
        embedded, _ = self.embed(batch, stage)
        output = self.model.head(self.model.body.encode(embedded, batch["mask"]))
        targets, penalty = batch["label_ids"], output.pooled.penalty
        if stage != "train" and bool((targets < 0).any()):  # training rows without a label fail when read
            raise ValueError(f"{stage} batch holds unlabelled examples (label -1)")
        loss = self.model.loss(output, batch)  # cross-entropy + the pooling's penalty
        batch_size = targets.shape[0]
        predicted = output.logits.detach().argmax(dim=-1)
        metrics = self.metrics[f"{stage}_metrics"]
        if stage == "train":
            self.update_train_metric(metrics, predicted, targets)
            values = {}
            if self.adversary is not None:
                loss, values["train/adversarial_loss"] = self.adversarial_mix(embedded, loss, batch)
            values["train/loss"] = loss
            if penalty is not None:
                values["train/penalty"] = penalty
            self.log_train(values, batch_size)
            return loss
        metrics.update(predicted, targets)
        if penalty is not None:
            self.log(f"{stage}/penalty", penalty, batch_size=batch_size, sync_dist=True, on_step=False,
                     on_epoch=True)
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
        return label_records(self(batch), batch, self.labels)


def label_records(output: ClassifierOutput, batch: SentenceBatch, labels: list[str]) -> list[dict]:
    """The records of ``SentenceClassification.predict_step`` from a classification head's output over ``batch``."""
    probabilities = output.logits.softmax(dim=-1).tolist()
    weights = output.pooled.weights
    records = []
    for row, (index, tokens) in enumerate(zip(batch["index"].tolist(), batch["tokens"])):
        p = probabilities[row]
        best = max(range(len(p)), key=p.__getitem__)
        record = {"index": index, "tokens": tokens, "label": labels[best],
                  "probabilities": {label: round(v, 6) for label, v in zip(labels, p)}}
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
