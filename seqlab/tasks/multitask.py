"""Multi-task learning: one shared embedder and encoder under one head per task (Collobert et al. 2011; Søgaard &
Goldberg 2016), each task with its own objective (head, loss weight, metrics) and data (``MultiTaskData``)."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from seqlab.models import BiLSTMEncoder, CharEncoder, DropoutSpec, SequenceEncoder, WordEmbedder, WordEmbedding
from seqlab.models.networks import MultiTaskNetwork, build_body
from seqlab.tasks.base import SequenceTask
from seqlab.tasks.objectives import Objective


class TaskLossMeans:
    """Running batch-size-weighted sums of each task's loss, kept as tensors (no host sync per step)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.sizes: dict[str, int] = {}

    def add(self, task: str, loss: torch.Tensor, batch_size: int) -> None:
        self.sums[task] = self.sums.get(task, 0) + loss * batch_size
        self.sizes[task] = self.sizes.get(task, 0) + batch_size

    def means(self) -> dict[str, torch.Tensor]:
        return {task: total / self.sizes[task] for task, total in self.sums.items()}


class MultiTask(SequenceTask):
    """Several tasks over one body: ``objectives`` maps a task name to its ``Objective`` (``SpanTagging``, ``WordTagging``,
    ``Classification``); the data module (``MultiTaskData``, with children of the same names) serves batches that
    carry their task's name under ``"task"``.

    A training step trains the body and that task's head on ``loss_weight`` x the task's loss (which task comes
    next is the data module's sampling scheme). Logged: ``train/loss`` (the weighted loss of the steps),
    ``{stage}/{task}/loss`` and ``{stage}/{task}/{metric}`` (``f1``, ``accuracy``...). Checkpoints follow
    ``val/{monitor_task}/{monitor}`` (default: the first task's own metric). ``predict`` gives each record with its
    ``task``.

    Linked from the data module: ``vocab_size``, ``char_vocab_size``, ``padding_idx``, ``word_vectors`` (the one
    shared vocabulary's) and ``task_labels`` (task name -> labels). Under DDP a step leaves the other tasks' heads
    without gradients: use ``--trainer.strategy ddp_find_unused_parameters_true``.
    """

    def __init__(
        self,
        objectives: dict[str, Objective],
        vocab_size: int,
        task_labels: dict[str, list[str]],
        char_vocab_size: int = 0,
        padding_idx: int = 0,
        word_embedding: Optional[Callable[[int, int], WordEmbedder]] = WordEmbedding,
        char_encoder: Optional[Callable[[int, int], CharEncoder]] = None,
        embedding_dropout: DropoutSpec = 0.5,
        encoder: Callable[[int], SequenceEncoder] = BiLSTMEncoder,
        monitor_task: Optional[str] = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
        checkpoint_every_n_steps: int = 500,
        word_vectors: Optional[torch.Tensor] = None,
    ) -> None:
        super().__init__(optimizer, lr_scheduler, checkpoint_every_n_steps)
        self.save_hyperparameters(ignore=["word_vectors"])
        tasks = objectives
        if not tasks:
            raise ValueError("objectives: a multi-task model needs at least one task")
        missing = [name for name in tasks if name not in task_labels]
        if missing or set(task_labels) != set(tasks):
            raise ValueError(f"the model's tasks ({', '.join(tasks)}) and the data's ({', '.join(task_labels)}) "
                             "differ: name them alike in --model.init_args.objectives and --data.init_args.tasks")
        self.objectives = dict(tasks)
        self.task_labels = {name: list(task_labels[name]) for name in tasks}
        monitor_task = monitor_task or next(iter(tasks))
        if monitor_task not in tasks:
            raise ValueError(f"monitor_task '{monitor_task}' is not a task ({', '.join(tasks)})")
        self.monitor = f"val/{monitor_task}/{tasks[monitor_task].monitor}"
        self.monitor_mode = tasks[monitor_task].monitor_mode
        body = build_body(vocab_size, padding_idx, word_embedding, encoder, embedding_dropout, char_vocab_size,
                          char_encoder)
        self.model = MultiTaskNetwork(body, {name: objective.head(body.output_size, self.task_labels[name])
                                             for name, objective in tasks.items()})
        self.load_word_vectors(body.embedder.words, word_vectors)
        self._task_train_losses = TaskLossMeans()
        self.metrics = nn.ModuleDict({  # "val_ner": a ModuleDict key may hold no dot
            f"{stage}_{name}": objective.metric(self.task_labels[name])
            for stage in ("val", "test") for name, objective in tasks.items()
        })

    @property
    def word_embedder(self) -> Optional[WordEmbedder]:
        return self.model.body.embedder.words

    def forward(self, batch: dict):
        """The outputs of the head of ``batch["task"]``: emissions (B, T, K) or a ``ClassifierOutput``."""
        return self.model(batch, batch["task"])

    def shared_step(self, batch: dict, stage: str) -> torch.Tensor:
        name = batch["task"]
        outputs = self(batch)
        loss = self.model.loss(outputs, batch, name)
        batch_size = batch["mask"].shape[0]
        if stage == "train":
            weighted = self.objectives[name].loss_weight * loss
            self.log_train({"train/loss": weighted}, batch_size)
            self._task_train_losses.add(name, loss.detach(), batch_size)
            return weighted
        if self._trainer is not None:
            self.log(f"{stage}/{name}/loss", loss, batch_size=batch_size, sync_dist=True, on_step=False,
                     on_epoch=True, add_dataloader_idx=False)
        self.objectives[name].update(self.metrics[f"{stage}_{name}"], self.model.heads[name], outputs, batch)
        return loss

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._task_train_losses = TaskLossMeans()

    def on_train_epoch_end(self) -> None:
        """``train/{task}/loss``: each task's batch-size-weighted mean training loss over the epoch (kept here and
        logged once: the tasks take turns, so ``log_train``'s fixed set of names per step does not fit them)."""
        for name, mean in self._task_train_losses.means().items():
            self.log(f"train/{name}/loss", mean, on_step=False, on_epoch=True)

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self.shared_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self.shared_step(batch, "test")

    def _log_metrics(self, stage: str) -> None:
        for name, objective in self.objectives.items():
            metric = self.metrics[f"{stage}_{name}"]
            values = objective.compute(metric)
            self.log_dict({f"{stage}/{name}/{key}": value for key, value in values.items()}, sync_dist=True,
                          add_dataloader_idx=False)
            metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def predict_step(self, batch: dict, batch_idx: int = 0, dataloader_idx: int = 0) -> list[dict]:
        """The records of the batch's task (``TokenTagging``'s or ``SentenceClassification``'s), each with
        ``task``."""
        name = batch["task"]
        records = self.objectives[name].predict(self.model.heads[name], self(batch), batch, self.task_labels[name])
        return [{"task": name, **record} for record in records]
