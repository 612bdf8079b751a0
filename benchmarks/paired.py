"""Task-independent machinery of the speed benchmarks: seqlab's Lightning Trainer and a raw PyTorch loop take their
training steps interleaved on the very same pre-collated batches, from the same weights, and the ratio of their
step times is combined so that neither side's position in the pairing biases it.

Used by ``ner_speed.py``, ``sentiment_speed.py``, ``speech_speed.py`` and ``translation_speed.py``. A task plugs
in with a *loss function* ``loss(task, batch) -> scalar`` that calls the task's plain-torch network as its
``shared_step`` does (``task.model.loss(task.model(batch), batch)``: no loss is written again here;
``check_same_loss`` proves the two agree, on one batch, before anything is timed). Never asserts on timings: the
scripts print ratios measured in one run.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import pytorch_lightning as pl
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
Row = dict[str, Any]
LossFn = Callable[[pl.LightningModule, dict], torch.Tensor]  # (model, batch) -> scalar loss, as the task's step
Block = tuple[float, float, int, bool]  # (raw seconds, seqlab seconds, real tokens/frames, raw ran first)
RATIO_RULE = ("ratio = geometric mean of the medians of raw_s/seqlab_s over blocks with raw first and with raw "
              "second")


# ----------------------------------------------------------------------------- tasks and data
class NoCheckpoints:
    """Mixin for a task class: no ModelCheckpoint callbacks (``SequenceTask.configure_callbacks`` would add two to
    every Trainer); the benchmarks time training steps, not checkpoint writing. ``class B(NoCheckpoints, Task)``."""

    def configure_callbacks(self) -> list[pl.Callback]:
        return []


def collate_windows(loader: Iterable[dict], windows: int, batches: int) -> list[list[dict]]:
    """``windows`` lists of ``batches`` batches read from ``loader`` beforehand (so neither side pays data loading);
    the loader is read again from its start (a new epoch) when a small training set runs out."""
    collated: list[dict] = []
    while len(collated) < windows * batches:
        before = len(collated)
        for batch in loader:
            collated.append(batch)
            if len(collated) == windows * batches:
                break
        if len(collated) == before:
            raise ValueError("the training DataLoader yields no batches")
    return [collated[w * batches:(w + 1) * batches] for w in range(windows)]


def real_units(batch: dict) -> int:
    """Real tokens (text) or frames (speech) of a batch: ``mask.sum()``."""
    return int(batch["mask"].sum())


# ----------------------------------------------------------------------------- the raw loop
def first_optimizer(configured: Any) -> torch.optim.Optimizer:
    """The optimizer out of whatever ``configure_optimizers`` returned (an optimizer or Lightning's dict)."""
    return configured["optimizer"] if isinstance(configured, dict) else configured


def raw_stepper(model: pl.LightningModule, loss: LossFn, clip: float = 5.0) -> Callable[[dict], None]:
    """The training step in plain PyTorch: ``loss(model, batch)`` -> zero_grad -> backward -> clip -> step, with a
    fresh optimizer (like each Trainer.fit) from the task's own factory (``configure_optimizers``)."""
    optimizer = first_optimizer(model.configure_optimizers())
    model.train()

    def step(batch: dict) -> None:
        value = loss(model, batch)
        optimizer.zero_grad()
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()

    return step


class LossCheck(pl.Callback):
    """Computes ``loss(model, batch)`` at the start of the Trainer's step, from the RNG state its training_step then
    starts from (forked), and keeps the loss the Trainer's training_step returned."""

    def __init__(self, loss: LossFn) -> None:
        self.loss = loss
        self.raw: Optional[float] = None
        self.trainer: Optional[float] = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            self.raw = float(self.loss(pl_module, batch))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.trainer = float(outputs["loss"] if isinstance(outputs, dict) else outputs)


def check_same_loss(task: pl.LightningModule, loss: LossFn, batch: dict, label: str) -> float:
    """The raw loop's ``loss`` equals the loss of the task's training step on ``batch``, in training mode (dropout,
    SpecAugment... active, the same random masks: both start from the same RNG state), on a copy of the task fitted
    for that one step by a Trainer. Raises SystemExit when they differ (timing two different computations would be
    meaningless). Returns |difference|."""
    check = LossCheck(loss)
    trainer(1, [check]).fit(copy.deepcopy(task), train_dataloaders=Batches([batch]))
    if check.raw is None or check.trainer is None:
        raise SystemExit(f"loss check ({label}): the Trainer took no training step")
    difference = abs(check.raw - check.trainer)
    same = difference <= 1e-6 * max(1.0, abs(check.trainer))
    print(f"loss check ({label}): Trainer training step {check.trainer:.6f}, raw loop {check.raw:.6f} "
          f"({'same' if same else 'DIFFER'}, |diff| = {difference:.1e})")
    if not same:
        raise SystemExit(f"loss check failed ({label}): the raw loop does not compute the task's training loss")
    return difference


# ----------------------------------------------------------------------------- training steps, paired
class PairedSteps(pl.Callback):
    """Interleaves the raw PyTorch loop with the Trainer on the very same (pre-collated) batches, in blocks of
    ``block`` steps: the raw loop takes a block's steps either just before the Trainer's first step of the block
    (at its ``on_train_batch_start``) or just after its last one (at its ``on_train_batch_end``), alternating from
    block to block, so that neither side always runs right after the other on the same batches.

    Trainer step ``i`` = the time from its ``on_train_batch_start`` for batch ``i`` to the one for batch ``i + 1``
    less the raw steps run in between: training step, backward, clipping, optimizer step, hooks, logging, fetching
    and transferring the next batch. Blocks adjacent in time see the same machine load."""

    def __init__(self, raw_step: Callable[[dict], None], batches: list[dict], block: int,
                 units: Callable[[dict], int] = real_units) -> None:
        self.raw_step, self.batches, self.block, self.units = raw_step, batches, block, units
        self.raw = [0.0] * len(batches)
        self.seqlab: list[float] = []
        self.start: Optional[float] = None  # the current Trainer step's start
        self.excluded = 0.0  # raw seconds inside the current Trainer step

    def raw_first(self, index: int) -> bool:
        return (index // self.block) % 2 == 0

    def _raw_block(self, first: int) -> None:
        began = time.perf_counter()
        for index in range(first, min(first + self.block, len(self.batches))):
            start = time.perf_counter()
            self.raw_step(self.batches[index])
            self.raw[index] = time.perf_counter() - start
        self.excluded += time.perf_counter() - began

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        now = time.perf_counter()
        if self.start is not None:
            self.seqlab.append(now - self.start - self.excluded)
        self.excluded = 0.0
        if batch_idx % self.block == 0 and self.raw_first(batch_idx):
            self._raw_block(batch_idx)
        self.start = time.perf_counter()
        self.excluded = 0.0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        first = batch_idx - batch_idx % self.block
        last = min(first + self.block, len(self.batches)) - 1
        if batch_idx == last and not self.raw_first(batch_idx):
            self._raw_block(first)

    def blocks(self) -> list[Block]:
        """Per block: (raw seconds, seqlab seconds, real tokens, raw ran first). The Trainer's last step has no
        end mark, so the block holding it is left out."""
        out = []
        for first in range(0, len(self.seqlab) - self.block + 1, self.block):
            steps = range(first, first + self.block)
            out.append((sum(self.raw[i] for i in steps), sum(self.seqlab[i] for i in steps),
                        sum(self.units(self.batches[i]) for i in steps), self.raw_first(first)))
        return out


def trainer(batches: int, callbacks: list[pl.Callback], gradient_clip_val: float = 5.0) -> pl.Trainer:
    """A CPU Trainer for ``batches`` training steps: no validation, logger, checkpoints, progress bar or summary."""
    return pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=1, max_steps=batches, limit_train_batches=batches,
        limit_val_batches=0, gradient_clip_val=gradient_clip_val, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False, callbacks=callbacks,
    )


class Batches:
    """Batches collated beforehand, as an iterable the Trainer reads like a DataLoader (a plain list would be taken
    for a list of dataloaders)."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def paired_window(task: pl.LightningModule, raw: pl.LightningModule, batches: list[dict], block: int,
                  loss: LossFn, units: Callable[[dict], int] = real_units) -> list[Block]:
    """One window: a fresh Trainer fits ``task`` on ``batches`` (collated beforehand, so neither side pays data
    loading) while ``raw`` (a copy with the same weights, a fresh optimizer too) takes the same steps in plain
    PyTorch (``raw_stepper(raw, loss)``), interleaved block by block (``PairedSteps``)."""
    paired = PairedSteps(raw_stepper(raw, loss), batches, block, units)
    trainer(len(batches), [paired]).fit(task, train_dataloaders=Batches(batches))
    return paired.blocks()


@dataclass
class PairedResult:
    """Blocks of all timed windows and what they combine to (see ``combine``)."""

    blocks: list[Block]
    window_ratios: list[float]
    ratio_first: float
    ratio_second: float
    ratio: float
    units: int
    seqlab_rate: float  # units/s over the summed Trainer step times
    raw_rate: float


def combine(windows: list[list[Block]]) -> PairedResult:
    """ratio: for each block, raw seconds / seqlab seconds on the same batches; the median over blocks where the raw
    loop went first and the median over blocks where it went second, combined by their geometric mean. (Whichever
    side runs second on the same batches is measurably faster, allocator and cache reuse: alternating the order
    and combining cancels that bias.) Rates = units / summed step times of each side."""
    blocks = [b for window in windows for b in window]
    first = [r / s for r, s, _, raw_first in blocks if raw_first]
    second = [r / s for r, s, _, raw_first in blocks if not raw_first]
    if not first or not second:
        raise ValueError("need blocks with the raw loop first and second: more --window-batches (>= 2 * --block + 1)")
    ratio_first, ratio_second = statistics.median(first), statistics.median(second)
    units = sum(n for _, _, n, _ in blocks)
    return PairedResult(
        blocks=blocks, window_ratios=[statistics.median(r / s for r, s, _, _ in w) for w in windows if w],
        ratio_first=ratio_first, ratio_second=ratio_second, ratio=(ratio_first * ratio_second) ** 0.5, units=units,
        seqlab_rate=units / sum(s for _, s, _, _ in blocks), raw_rate=units / sum(r for r, _, _, _ in blocks),
    )


def paired_training(task: pl.LightningModule, loss: LossFn, windows: list[list[dict]], block: int,
                    units: Callable[[dict], int] = real_units) -> PairedResult:
    """seqlab's Trainer vs the raw loop (a deep copy of ``task``: same weights, same optimizer factory) on the
    pre-collated ``windows``: the first window's first ``2 * block + 1`` batches are an untimed warm-up, each further
    window is a fresh Trainer (``paired_window``). ``units(batch)``: what the rates count (real tokens by default)."""
    raw = copy.deepcopy(task)
    paired_window(task, raw, windows[0][: 2 * block + 1], block, loss, units)  # warm-up
    return combine([paired_window(task, raw, batches, block, loss, units) for batches in windows[1:]])


def training_row(name: str, subject: str, result: PairedResult, args: argparse.Namespace, unit: str = "tokens",
                 **extra: Any) -> Row:
    """The results row of a paired comparison: seqlab and reference in ``unit``/s, the combined ratio."""
    return row(name, f"training {unit}/s, seqlab Trainer vs raw PyTorch loop ({subject}) on identical pre-collated "
               f"batches, interleaved in blocks of {args.block} steps; {RATIO_RULE}", result.seqlab_rate,
               result.raw_rate, f"{unit}/s", args, batches=args.window_batches, ratio=result.ratio,
               blocks=len(result.blocks), block=args.block, ratio_raw_first=round(result.ratio_first, 4),
               ratio_raw_second=round(result.ratio_second, 4),
               window_ratios=[round(r, 4) for r in result.window_ratios], **extra)


# ----------------------------------------------------------------------------- output
def row(name: str, what: str, seqlab: float, reference: float, unit: str, args: argparse.Namespace, batches: int,
        ratio: Optional[float] = None, reference_kind: str = "measured", **extra: Any) -> Row:
    return {
        "name": name, "what": what, "seqlab": seqlab, "reference": reference,
        "ratio": seqlab / reference if ratio is None else ratio, "unit": unit, "reference_kind": reference_kind,
        "windows": args.windows, "batches_per_window": batches, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "load_1m": round(os.getloadavg()[0], 2),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra,
    }


def print_table(rows: list[Row]) -> None:
    print(f"\n{'comparison':<32} {'seqlab':>10} {'reference':>10} {'ratio':>7}  unit       what")
    for r in rows:
        print(f"{r['name']:<32} {r['seqlab']:>10.1f} {r['reference']:>10.1f} {r['ratio']:>7.3f}  {r['unit']:<10} "
              f"{r['what']}")
    for r in rows:
        if "window_ratios" in r:
            print(f"{r['name']}: {r['blocks']} block pairs of {r['block']} steps; median ratio with raw first "
                  f"{r['ratio_raw_first']:.3f}, raw second {r['ratio_raw_second']:.3f}; per-window medians "
                  f"{r['window_ratios']}" + (f"; Trainer on the real DataLoader: {r['loader_window_tps']} tokens/s "
                                             "per window" if "loader_window_tps" in r else ""))


def append_rows(rows: list[Row], path: Path) -> None:
    bad = [r["name"] for r in rows if not all(math.isfinite(r[k]) and r[k] > 0 for k in ("seqlab", "reference",
                                                                                        "ratio"))]
    if bad:
        print(f"warning: rows with a non-positive or non-finite figure: {', '.join(bad)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        for r in rows:
            handle.write(json.dumps(r) + "\n")
    print(f"\n{len(rows)} rows appended to {path}")


# ----------------------------------------------------------------------------- command line
def default_data_root() -> Path:
    """``$SEQLAB_DATA``, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("SEQLAB_DATA") or str(REPO_ROOT.parent / "shared" / "data"))


def add_common_arguments(parser: argparse.ArgumentParser, data_help: str, json_name: str) -> None:
    """The options every benchmark script accepts, so that one ``make bench BENCH_ARGS=...`` serves all three
    (an option only one script uses says so, and the others ignore it)."""
    parser.add_argument("--data", type=Path, default=default_data_root(), help=data_help)
    parser.add_argument("--windows", type=int, default=5,
                        help="timed windows: fresh Trainers, each with its raw-loop steps interleaved")
    parser.add_argument("--window-batches", type=int, default=30, help="training steps per window (per side)")
    parser.add_argument("--block", type=int, default=1, help="steps per interleaved block (Trainer vs raw loop)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--crf-ops", type=int, default=50,
                        help="ner_speed.py only: CRF ops per window and side (ops interleaved)")
    parser.add_argument("--feature-passes", type=int, default=5,
                        help="speech_speed.py only: timed passes of feature extraction over all waveforms")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "results" / "bench" / json_name)


def quiet_setup(args: argparse.Namespace) -> None:
    """Threads from ``--threads``; no Lightning banners or known-harmless warnings per window; no progress bars."""
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)  # no "GPU available" banner per window
    for message in (".*does not have many workers.*", ".*no `val_dataloader`.*", ".*LeafSpec.*"):
        warnings.filterwarnings("ignore", message)
    import datasets

    datasets.disable_progress_bars()


def banner(args: argparse.Namespace, batch_size: Any) -> None:
    print(f"torch {torch.__version__}, pytorch_lightning {pl.__version__}, threads {torch.get_num_threads()}, "
          f"{args.windows} windows x {args.window_batches} batches of {batch_size}, load average "
          f"{os.getloadavg()[0]:.2f} (other processes on these cores make timings noisy; --threads 1 is steadier on "
          "a shared machine)")
