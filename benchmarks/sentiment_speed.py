"""Sentiment training speed, measured in one run: seqlab's SentenceClassification trained by the Lightning Trainer
vs a raw PyTorch loop on the same model, on SST-2.

Models: the sizes of configs/sentiment/sst2_bilstm.yaml (random word embeddings 300, word dropout 0.1, BiLSTM 150
per direction, max pooling, MLP head 128, Adam 1e-3 fused, clip 5, batch 64) and sst2_bilstm_attention.yaml (the
same with structured self-attentive pooling: 128 attention units, 4 hops, penalty ||AA^T - I||_F^2 weighted 0.1,
added to the loss). The configs' ReduceLROnPlateau steps once per epoch on val/accuracy: left out here (no
validation runs, and it costs nothing per step).

Trainer vs raw loop (``paired.py``): steps interleaved on identical pre-collated batches, from the same weights;
the raw loop computes the task's training loss (cross-entropy + the pooling's penalty, checked equal to the
task's ``training_step`` before timing); ratio = geometric mean of the medians of raw_s/seqlab_s over steps with
the raw loop first and second. tokens/s counts real tokens (``mask.sum()``).

For ``bilstm`` a third side is timed on the same windows: ``LightningFloor``, the same model whose training_step is
only that loss (no metrics, no logging), against the raw loop: what Lightning's own loop costs per step, the floor
under the task's ratio.

Prints ratios and appends one JSON row per comparison to results/bench/sentiment_speed.jsonl; never asserts on
timings. Example: ``python benchmarks/sentiment_speed.py --windows 3 --window-batches 20 --threads 1``.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Callable, Optional

import torch

if str(Path(__file__).resolve().parent) not in sys.path:  # benchmarks/ is not a package: find paired.py beside us
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from paired import (  # noqa: E402
    NoCheckpoints,
    Row,
    add_common_arguments,
    append_rows,
    banner,
    check_same_loss,
    collate_windows,
    paired_training,
    print_table,
    quiet_setup,
    training_row,
)
from seqlab.data_modules import TextClassificationData  # noqa: E402
from seqlab.models import BiLSTMEncoder, MaxPooling, MLPClassifier, SelfAttentivePooling, WordEmbedding  # noqa: E402
from seqlab.tasks import SentenceClassification  # noqa: E402

BATCH_SIZE = 64  # the configs' data.batch_size
#: variant -> (pooling factory, description); sizes of configs/sentiment/sst2_<variant>.yaml
VARIANTS: dict[str, tuple[Callable, str]] = {
    "bilstm": (MaxPooling, "SST-2, word 300 -> BiLSTM 150 -> max pooling -> MLP 128, sst2_bilstm.yaml"),
    "bilstm_attention": (
        functools.partial(SelfAttentivePooling, attention_size=128, hops=4, penalty_weight=0.1),
        "SST-2, word 300 -> BiLSTM 150 -> self-attentive pooling r=4 (+0.1 penalty in the loss) -> MLP 128, "
        "sst2_bilstm_attention.yaml",
    ),
}


class BenchSentenceClassification(NoCheckpoints, SentenceClassification):
    """SentenceClassification without its ModelCheckpoint callbacks (the benchmark times training steps)."""


class LightningFloor(BenchSentenceClassification):
    """The same model whose training_step is nothing but the raw loop's loss (no metrics, no logging): Trainer vs raw
    loop for it is what Lightning's loop itself costs per step, the floor under the task's own ratio."""

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return sentence_loss(self, batch)


def build_data(data_root: Path, batch_size: int = BATCH_SIZE) -> TextClassificationData:
    """SST-2 from the local GLUE files (train.tsv.gz: 67k phrases), as the configs read it."""
    data = TextClassificationData(
        path=str(data_root / "sentiment" / "sst2"), name=None, text_field="sentence", label_field="label",
        label_names=["negative", "positive"], batch_size=batch_size,
    )
    data.setup("fit")
    return data


def build_task(data: TextClassificationData, pooling: Callable,
               task_class: type[BenchSentenceClassification] = BenchSentenceClassification
               ) -> BenchSentenceClassification:
    """The configs' sizes, parts passed as factories like the CLI does."""
    return task_class(
        vocab_size=data.vocab_size,
        labels=data.labels,
        padding_idx=data.padding_idx,
        word_embedding=functools.partial(WordEmbedding, embedding_dim=300, word_dropout=0.1),
        embedding_dropout=0.5,
        encoder=functools.partial(BiLSTMEncoder, hidden_size=150, num_layers=1, dropout=0.5),
        pooling=pooling,
        head=functools.partial(MLPClassifier, hidden_size=128, dropout=0.5),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3, fused=True),
    )


def sentence_loss(model: SentenceClassification, batch: dict) -> torch.Tensor:
    """SentenceClassification's training loss: its plain-torch network's (cross-entropy with the class weights plus
    the pooling's penalty), which its ``shared_step`` calls too."""
    return model.model.loss(model.model(batch), batch)


def compare_training(data: TextClassificationData, variant: str, args: argparse.Namespace) -> list[Row]:
    """The task vs the raw loop; for ``bilstm`` also ``LightningFloor`` vs the raw loop on the same windows."""
    pooling, subject = VARIANTS[variant]
    windows = collate_windows(data.train_dataloader(), args.windows + 1, args.window_batches)
    rows = []
    for task_class, suffix, what in ((BenchSentenceClassification, "", subject),
                                     (LightningFloor, "_lightning_floor", f"{subject}; Lightning floor: a "
                                      "training_step that only computes the raw loop's loss")):
        if suffix and variant != "bilstm":
            continue
        torch.manual_seed(0)
        task = build_task(data, pooling, task_class)
        check_same_loss(task, sentence_loss, windows[0][0], variant + suffix)
        result = paired_training(task, sentence_loss, windows, args.block)
        rows.append(training_row(f"train_step_sst2_{variant}{suffix}", what, result, args,
                                 batch_size=args.batch_size))
    return rows


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, "root holding sentiment/sst2", "sentiment_speed.jsonl")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help=f"training batch size (default {BATCH_SIZE}: the configs'; smaller only for smoke tests)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, of: {', '.join(VARIANTS)}")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> list[Row]:
    args = parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    quiet_setup(args)
    banner(args, args.batch_size)
    data = build_data(args.data, args.batch_size)
    rows = [row for variant in variants for row in compare_training(data, variant, args)]
    print_table(rows)
    append_rows(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
