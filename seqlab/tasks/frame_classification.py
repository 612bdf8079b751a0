"""Frame classification (speech): features -> (SpecAugment) -> (frame stacking) -> encoder (-> self-attention) ->
per-frame classifier; frame accuracy and phone error rate on the scoring label set, confusion matrix at test."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from pytorch_lightning.utilities import rank_zero_info
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from seqlab.models.attention import MultiHeadSelfAttention
from seqlab.models.augment import SpecAugment
from seqlab.models.encoders import BiLSTMEncoder, SequenceEncoder
from seqlab.models.frame_network import build_frame_network
from seqlab.models.frames import IGNORE_INDEX, FrameClassifier, FrameStacking
from seqlab.tasks.base import STAGES, SequenceTask
from seqlab.tasks.speech_metrics import PhoneErrorRate, phone_sequence, write_confusion_matrix

if TYPE_CHECKING:  # the Batch its data module's collator gives
    from seqlab.data_modules.speech import FrameBatch


class FrameClassification(SequenceTask):
    """One phone label per feature frame: ``self.model``, a plain-torch ``FrameNetwork``, gives the logits and the
    loss; the task optimises it, scores and logs.

    Logs ``{stage}/loss`` and ``{stage}/frame_accuracy`` (on the scoring label set, e.g. 39 phones, frames without a
    label left out), and at val/test ``{stage}/per``: phone error rate, where each utterance's predicted frame labels
    are folded to the scoring set, runs of equal labels collapsed into phones and silence dropped, and compared by
    edit distance with the reference phones (its segments, folded, collapsed and without silence the same way).
    At test, the per-phone confusion matrix is written to ``confusion_test.csv`` and ``.png`` in the log directory.

    ``feature_size``, ``labels``, ``scoring_labels`` (the scoring label of each label), ``silence_labels``,
    ``frame_shift`` and ``frame_length`` (seconds) come from the data module (linked by the CLI). The parts are
    factories receiving the sizes they depend on: ``augment(feature_size)`` (SpecAugment, active only in training),
    ``stacking(feature_size)`` (frame stacking/subsampling; the states are repeated back to the frame rate),
    ``encoder(input_size)`` (BiLSTM, or the ContextWindowMLP baseline), ``attention(encoder.output_size)``,
    ``head(encoder.output_size, labels)``.
    """

    optional_outputs = {"posteriors": "predict_posteriors"}
    state_key_moves = {"encoder.": "model.encoder.", "attention.": "model.attention.", "head.": "model.head."}
    monitor = "val/frame_accuracy"
    monitor_mode = "max"

    def __init__(
        self,
        feature_size: int,
        labels: list[str],
        scoring_labels: Optional[list[str]] = None,
        silence_labels: Optional[list[str]] = None,
        frame_shift: float = 0.01,
        frame_length: float = 0.025,
        augment: Optional[Callable[[int], SpecAugment]] = None,
        stacking: Optional[Callable[[int], FrameStacking]] = None,
        input_dropout: float = 0.0,
        encoder: Callable[[int], SequenceEncoder] = BiLSTMEncoder,
        attention: Optional[Callable[[int], MultiHeadSelfAttention]] = None,
        head: Callable[[int, list[str]], FrameClassifier] = FrameClassifier,
        write_confusion: bool = True,
        predict_posteriors: bool = False,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
        checkpoint_every_n_steps: int = 200,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, checkpoint_every_n_steps)
        self.save_hyperparameters()
        self.labels = list(labels)
        scoring = list(scoring_labels) if scoring_labels else list(self.labels)
        if len(scoring) != len(self.labels):
            raise ValueError(f"scoring_labels has {len(scoring)} entries for {len(self.labels)} labels")
        self.score_names = sorted(set(scoring))
        self.register_buffer("fold", torch.tensor([self.score_names.index(s) for s in scoring]), persistent=False)
        self.silence = frozenset(self.score_names.index(s) for s in silence_labels or () if s in self.score_names)
        self.frame_shift = frame_shift
        self.frame_length = frame_length
        self.write_confusion = write_confusion
        self.predict_posteriors = predict_posteriors

        self.model = build_frame_network(feature_size, self.labels, encoder, head, augment, stacking, input_dropout,
                                         attention)

        classes = len(self.score_names)
        self.metrics = nn.ModuleDict({  # keyed "train_metrics"...: a ModuleDict key may not be "train"
            f"{stage}_metrics": MetricCollection({
                "frame_accuracy": MulticlassAccuracy(classes, average="micro", ignore_index=IGNORE_INDEX),
            }, prefix=f"{stage}/")
            for stage in STAGES
        })
        self.phone_error = nn.ModuleDict({f"{stage}_per": PhoneErrorRate() for stage in ("val", "test")})
        self.confusion = MulticlassConfusionMatrix(classes, ignore_index=IGNORE_INDEX)

    def forward(self, batch: FrameBatch) -> torch.Tensor:
        """Logits (B, T, K) for every input frame."""
        return self.model(batch)

    def to_scoring(self, label_ids: torch.Tensor) -> torch.Tensor:
        """Label ids (any shape) -> scoring ids, -100 kept."""
        return torch.where(label_ids >= 0, self.fold[label_ids.clamp_min(0)], label_ids)

    def shared_step(self, batch: FrameBatch, stage: str) -> torch.Tensor:
        logits = self(batch)
        mask, gold = batch["mask"], batch["label_ids"]
        loss = self.model.loss(logits, batch)
        batch_size = mask.shape[0]
        predicted = self.to_scoring(self.model.head.decode(logits.detach(), mask))  # (B, T)
        reference = self.to_scoring(gold)
        metrics = self.metrics[f"{stage}_metrics"]
        if stage == "train":
            self.update_train_metric(metrics, predicted[mask], reference[mask])
            self.log_train({"train/loss": loss}, batch_size)
            return loss
        metrics.update(predicted[mask], reference[mask])
        self.log(f"{stage}/loss", loss, batch_size=batch_size, prog_bar=True, sync_dist=True, on_step=False,
                 on_epoch=True)
        self.log_dict(metrics, batch_size=batch_size, prog_bar=True, on_step=False, on_epoch=True)
        per = self.phone_error[f"{stage}_per"]
        per.update(*self.phone_sequences(predicted, batch))
        self.log(f"{stage}/per", per, batch_size=batch_size, prog_bar=True, on_step=False, on_epoch=True)
        if stage == "test":
            self.confusion.update(predicted[mask], reference[mask])
        return loss

    def phone_sequences(self, predicted: torch.Tensor, batch: FrameBatch) -> tuple[list[list[int]], list[list[int]]]:
        """Hypothesis and reference phone sequences (scoring ids, collapsed, without silence) of each utterance."""
        fold = self.fold.tolist()
        hypotheses, references = [], []
        for row, length in enumerate(batch["lengths"].tolist()):
            hypotheses.append(phone_sequence(predicted[row, :length].tolist(), self.silence))
            references.append(phone_sequence((fold[i] for i in batch["phone_ids"][row]), self.silence))
        return hypotheses, references

    def on_train_epoch_end(self) -> None:
        self.log_epoch_metrics(self.metrics["train_metrics"])

    def on_test_epoch_end(self) -> None:
        matrix = self.confusion.compute()  # summed over ranks
        self.confusion.reset()
        if self.write_confusion and self.trainer.is_global_zero:
            directory = Path(self.trainer.log_dir or self.trainer.default_root_dir)
            csv_path, png_path = write_confusion_matrix(matrix, self.score_names, directory / "confusion_test")
            rank_zero_info(f"confusion matrix written to {csv_path} and {png_path}")

    def predict_step(self, batch: FrameBatch, batch_idx: int = 0) -> list[dict]:
        """One record per utterance: its id, the label of every frame, and the phone segments (runs of equal frame
        labels) with start and end in seconds (boundaries halfway between frame centres; the first segment starts
        at 0 and the last ends with the audio). With ``predict_posteriors``, ``posteriors``: per frame, each label's
        probability."""
        logits = self(batch)
        predicted = self.model.head.decode(logits, batch["mask"])
        posteriors = logits.float().softmax(dim=-1).tolist() if self.predict_posteriors else None
        offset = (self.frame_length - self.frame_shift) / 2  # frame i's span is centred on i * shift + length / 2
        records = []
        for row, (index, length) in enumerate(zip(batch["index"].tolist(), batch["lengths"].tolist())):
            ids = predicted[row, :length].tolist()
            duration = float(batch["durations"][row])
            segments, start = [], 0
            for position in range(1, length + 1):
                if position == length or ids[position] != ids[start]:
                    begin = 0.0 if start == 0 else start * self.frame_shift + offset
                    end = duration if position == length else position * self.frame_shift + offset
                    segments.append({"label": self.labels[ids[start]], "start": round(begin, 4),
                                     "end": round(min(end, duration), 4)})
                    start = position
            record = {"index": index, "id": batch["ids"][row], "frame_shift": self.frame_shift,
                      "frames": [self.labels[i] for i in ids], "segments": segments}
            if posteriors is not None:
                record["posteriors"] = [{label: round(p, 6) for label, p in zip(self.labels, frame)}
                                        for frame in posteriors[row][:length]]
            records.append(record)
        return records
