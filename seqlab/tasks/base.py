"""What every seqlab task shares: optimizer and scheduler from config, checkpoints keyed on the task's metric."""

from __future__ import annotations

from typing import Any, Optional, Union

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from pytorch_lightning.plugins.precision import MixedPrecision
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torchmetrics import Metric, MetricCollection

from seqlab import SeqlabError
from seqlab.models.embeddings import WordEmbedder
from seqlab.models.transformer_embeddings import TransformerWordEmbedding
from seqlab.models.precision import cast_lstm_inputs_under_cpu_autocast
from seqlab.random_state import RandomStateCheckpoint

STAGES = ("train", "val", "test")
TrainMetric = Union[Metric, MetricCollection]


class SequenceTask(pl.LightningModule):
    """Base LightningModule. Subclasses implement ``shared_step(batch, stage) -> loss`` and ``predict_step``, and
    set ``monitor`` (a logged key, e.g. ``val/f1``) and ``monitor_mode``. Metrics are logged as ``{stage}/{name}``.

    Checkpoints: ``best-epochNN.ckpt`` by ``monitor``, ``last.ckpt`` at every validation (best or not), and
    ``last-step.ckpt`` every ``checkpoint_every_n_steps`` training steps, so a run killed mid-epoch resumes with
    ``--ckpt_path last`` (the newest of them) exactly where it stopped: the training loader's position is in the
    checkpoint (see ``ResumableDataLoader``) and so are the random generators' states (``RandomStateCheckpoint``).
    A ``ModelCheckpoint`` of the user's (``--trainer.callbacks+=ModelCheckpoint``, say every epoch) works beside them.
    """

    monitor: str = "val/loss"
    monitor_mode: str = "min"
    #: extra outputs a prediction can ask for: ``Predictor.predict(inputs, <name>=True)`` -> the task's attribute
    optional_outputs: dict[str, str] = {}
    #: weight-name prefixes of checkpoints written before the network moved into ``self.model`` -> today's
    state_key_moves: dict[str, str] = {}
    train_log_every: int = 10  # training steps per self.log of each training value (see log_train)

    def __init__(
        self,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: Optional[LRSchedulerCallable] = None,
        checkpoint_every_n_steps: int = 200,
    ) -> None:
        super().__init__()
        if checkpoint_every_n_steps < 0:
            raise SeqlabError("--model.checkpoint_every_n_steps must be at least 0 (0: last-step.ckpt at epoch ends "
                              f"only), got {checkpoint_every_n_steps}")
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.checkpoint_every_n_steps = checkpoint_every_n_steps
        self._own_checkpoints: list[ModelCheckpoint] = []  # those configure_callbacks made, told from the user's
        self._reset_train_log()
        self._pending_metric_updates: list[tuple[TrainMetric, tuple[torch.Tensor, ...]]] = []  # see update_train_metric

    def setup(self, stage: str) -> None:
        """Under a Trainer, whose precision may be bf16-mixed on CPU: see ``cast_lstm_inputs_under_cpu_autocast``."""
        cast_lstm_inputs_under_cpu_autocast(self)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Move the batch's tensors and leave its Python lists (tokens, utterance ids, reference strings and phone
        sequences, kept for predict and scoring) as they are: Lightning's generic transfer walks every element of
        them, thousands per batch, at every training step."""
        if not isinstance(batch, dict):
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        non_blocking = torch.device(device).type == "cuda"  # from page-locked batches (the data module pins on CUDA)
        moved = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                moved[key] = value.to(device, non_blocking=non_blocking)
            elif isinstance(value, list) and not any(isinstance(v, torch.Tensor) for v in value):
                moved[key] = value
            else:
                moved[key] = super().transfer_batch_to_device(value, device, dataloader_idx)
        return moved

    @property
    def word_embedder(self) -> Optional[WordEmbedder]:
        """The network's word embedding (for a vocabulary opened at predict time), or None."""
        return None

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A one-time migration of older checkpoints' weight names (``state_key_moves``), before the weights load."""
        state = checkpoint.get("state_dict") or {}
        if self.state_key_moves and not any(key.startswith("model.") for key in state):
            checkpoint["state_dict"] = {moved_key(key, self.state_key_moves): value for key, value in state.items()}
        self.check_weights_fit(checkpoint)

    def check_weights_fit(self, checkpoint: dict) -> None:
        """A checkpoint whose weights this model cannot hold (another task's, or options that change a size given
        beside ``--ckpt_path``) is one SeqlabError naming the first weight that differs, not torch's list of them."""
        saved, own = checkpoint.get("state_dict") or {}, self.state_dict()
        resized = [key for key in saved if key in own and saved[key].shape != own[key].shape]
        missing = [key for key in own if key not in saved]
        unexpected = [key for key in saved if key not in own]
        if not (resized or missing or unexpected):
            return
        trainer = self._trainer
        where = f"--ckpt_path {trainer.ckpt_path}" if trainer is not None and trainer.ckpt_path else "the checkpoint"
        saved_class = str((checkpoint.get("hyper_parameters") or {}).get("_class_path", "")).rsplit(".", 1)[-1]
        if saved_class and saved_class != type(self).__name__:
            raise SeqlabError(f"{where} holds a {saved_class} model; the options build a {type(self).__name__}")
        if resized:
            key = resized[0]
            detail = (f"{key} is {tuple(saved[key].shape)} there and {tuple(own[key].shape)} here"
                      f"{f', and {len(resized) - 1} more differ' if len(resized) > 1 else ''}")
        else:
            key = (missing or unexpected)[0]
            detail = f"{key} is {'missing there' if missing else 'not in this model'}"
        raise SeqlabError(f"{where}: its weights do not fit the model these options build ({detail}); leave out "
                          "the options that change the model's parts or sizes")

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "test")

    def shared_step(self, batch: dict, stage: str) -> torch.Tensor:
        raise NotImplementedError

    def _reset_train_log(self) -> None:
        self._train_values: dict[str, list[torch.Tensor]] = {}  # name -> the values of the steps not yet logged
        self._train_sizes: list[int] = []  # their batch sizes

    def on_train_epoch_start(self) -> None:
        self._reset_train_log()
        self._pending_metric_updates = []

    def update_train_metric(self, metric: TrainMetric, *tensors: torch.Tensor) -> None:
        """``metric.update(*tensors)`` for a training step, applied ``train_log_every`` steps at a time to those
        steps' tensors concatenated along dim 0 (predictions (N,) and targets (N,) for the classification counts):
        a torchmetrics update with its argument checks costs about 0.3 ms on CPU, much the same for ten batches as
        for one. The counts, and so the epoch's values, are the same; ``log_epoch_metrics`` applies what is pending
        before computing them. Without a Trainer the update is applied at once."""
        self._pending_metric_updates.append((metric, tuple(t.detach() for t in tensors)))
        if self._trainer is None or len(self._pending_metric_updates) >= self.train_log_every:
            self.apply_pending_metric_updates()

    def apply_pending_metric_updates(self) -> None:
        pending: dict[int, tuple[TrainMetric, list[tuple[torch.Tensor, ...]]]] = {}
        for metric, tensors in self._pending_metric_updates:
            pending.setdefault(id(metric), (metric, []))[1].append(tensors)
        for metric, steps in pending.values():
            metric.update(*(torch.cat(column) for column in zip(*steps)))
        self._pending_metric_updates = []

    def log_train(self, values: dict[str, torch.Tensor], batch_size: int, prog_bar: tuple[str, ...] = ("train/loss",)
                  ) -> None:
        """``self.log(name, on_step=True, on_epoch=True)`` for each training value, every ``train_log_every`` steps
        with the batch-size-weighted mean of those steps (and their total batch size), instead of at every step:
        Lightning's ``self.log`` costs about half a millisecond on CPU per call (argument checks, moving its stored
        metric). The logged keys and the epoch values (``{name}_epoch``, weighted means over all steps) are
        unchanged; ``{name}_step`` is the mean of the last few steps. Values are always logged on the steps where
        the Trainer writes to its logger (``log_every_n_steps``), on the epoch's last batch and at ``max_steps``,
        so nothing is lost or stale. Call it with the same names at every step. Without a Trainer (a step called
        by hand) there is nowhere to log to, and nothing is kept."""
        if self._trainer is None:
            return
        for name, value in values.items():
            self._train_values.setdefault(name, []).append(value.detach())
        self._train_sizes.append(batch_size)
        trainer = self.trainer
        step = trainer.global_step + 1
        every = trainer.log_every_n_steps
        if (len(self._train_sizes) >= self.train_log_every or (every and step % every == 0)
                or trainer.is_last_batch or trainer.should_stop or 0 < trainer.max_steps <= step):
            count = sum(self._train_sizes)
            sizes = torch.tensor(self._train_sizes, dtype=torch.float, device=self.device)  # (S,)
            for name, steps in self._train_values.items():
                stacked = torch.stack(steps)  # (S,), one value per step
                self.log(name, (stacked * sizes.to(stacked.dtype)).sum() / count, batch_size=count,
                         prog_bar=name in prog_bar, on_step=True, on_epoch=True)
            self._reset_train_log()

    def log_epoch_metrics(self, metrics: Any) -> None:
        """Log a metric collection's values over the epoch (its keys carry the stage prefix) and reset it: training
        metrics are updated during the epoch (``update_train_metric``) but logged once, at its end."""
        self.apply_pending_metric_updates()
        self.log_dict(metrics.compute(), sync_dist=True)
        metrics.reset()

    @staticmethod
    def load_word_vectors(embedding: Optional[WordEmbedder], word_vectors: Optional[torch.Tensor]) -> None:
        """Copy pretrained rows (V, D), linked from the data module's ``word_vectors``, into a word embedding."""
        if word_vectors is None:
            return
        if embedding is not None and embedding.load_vectors(word_vectors):
            rank_zero_info(f"word embedding initialised from pretrained vectors ({word_vectors.shape[0]} words, "
                           f"{word_vectors.shape[1]} dimensions)")
        else:
            rank_zero_warn(f"pretrained word vectors are unused: {type(embedding).__name__} takes none "
                           "(use seqlab.models.PretrainedWordEmbedding, alone or in a StackedWordEmbedding)")

    def parameter_groups(self) -> list[dict]:
        """The optimiser's parameter groups: the trainable parameters, and apart from them, at ``transformer_lr``,
        those of each fine-tuned transformer (a ``TransformerWordEmbedding``'s)."""
        tuned = [p for module in self.modules() if isinstance(module, TransformerWordEmbedding)
                 and module.transformer is not None for p in module.transformer.parameters() if p.requires_grad]
        ids = {id(p) for p in tuned}
        groups = [{"params": [p for p in self.parameters() if p.requires_grad and id(p) not in ids]}]
        return groups + ([{"params": tuned, "lr": self.transformer_lr}] if tuned else [])

    def configure_optimizers(self) -> Any:
        try:
            optimizer = self.optimizer_factory(self.parameter_groups())
        except (ValueError, TypeError) as error:  # torch's own checks: "Invalid learning rate: -1.0", ...
            raise SeqlabError(f"--model.optimizer: {error}") from None
        if optimizer.defaults.get("fused") and self._clips_under_mixed_precision():
            # Lightning refuses to clip the gradients of a fused optimizer under mixed precision (it would unscale
            # them inside its step, after the clipping); the unfused one computes the same update
            optimizer = type(optimizer)([{**group, "fused": False} for group in optimizer.param_groups],
                                        **{**optimizer.defaults, "fused": False})
            rank_zero_info(f"{type(optimizer).__name__}: fused=False, to clip gradients under mixed precision")
        if self.lr_scheduler_factory is None:
            return optimizer
        try:
            scheduler = self.lr_scheduler_factory(optimizer)
        except (ValueError, TypeError) as error:
            raise SeqlabError(f"--model.lr_scheduler: {error}") from None
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor, "interval": "epoch"},
        }

    def _clips_under_mixed_precision(self) -> bool:
        trainer = self._trainer
        return (trainer is not None and isinstance(trainer.precision_plugin, MixedPrecision)
                and bool(trainer.gradient_clip_val))

    def configure_callbacks(self) -> list[pl.Callback]:
        best = ModelCheckpoint(monitor=self.monitor, mode=self.monitor_mode, save_top_k=1,
                               filename="best-epoch{epoch:02d}", auto_insert_metric_name=False)
        # last.ckpt after every validation, best or not (Lightning's save_last rewrites it only when best saves)
        latest = ModelCheckpoint(monitor="step", mode="max", save_top_k=1, filename="last",
                                 enable_version_counter=False)
        # keeps one file, last-step.ckpt, rewritten every N steps: what a run killed mid-epoch resumes from
        periodic = ModelCheckpoint(every_n_train_steps=self.checkpoint_every_n_steps, save_top_k=1,
                                   filename="last-step", enable_version_counter=False)
        # Lightning drops the trainer's callbacks of a type returned here: the user's own checkpoints (every epoch,
        # top k by another metric) are returned with seqlab's so they stay, after them (``best`` keeps naming ours)
        users = [c for c in (self._trainer.callbacks if self._trainer else []) if isinstance(c, ModelCheckpoint)
                 and not any(c is mine for mine in self._own_checkpoints) and not _lightnings_default(c)]
        self._own_checkpoints = [best, latest, periodic]
        return [best, latest, periodic, *users, RandomStateCheckpoint()]


def _lightnings_default(checkpoint: ModelCheckpoint) -> bool:
    """Whether this is the plain ``ModelCheckpoint()`` a trainer adds when given none (seqlab's replace it)."""
    default = ModelCheckpoint()
    return (checkpoint.state_key == default.state_key and checkpoint.dirpath is None and checkpoint.filename is None
            and checkpoint.save_top_k == default.save_top_k and checkpoint.save_last == default.save_last)


def moved_key(key: str, moves: dict[str, str]) -> str:
    """``key`` with its first matching old prefix replaced by the new one."""
    for old, new in moves.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key
