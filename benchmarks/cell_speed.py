"""Recurrent cell speed, measured in one run: training tokens/s of each custom cell of seqlab.models.cells (run by
RecurrentEncoder's step loop: eager, and with the cell's step compiled by ``torch.compile``) and of the weight-dropped
BiLSTM (fused kernel) vs BiLSTMEncoder on nn.LSTM, at NER sizes.

Sizes: inputs 150 (a 100-d word + 50-d character embedding), hidden 256 per direction, bidirectional, one layer,
batches of 32 CoNLL-2003 training sentences cut by the length-bucketing sampler the NER data module trains with
(``--data``: the shared data folder). A training step: encoder -> linear tagger (9 tags) -> cross-entropy on fixed
random tags of the real tokens -> backward -> Adam step. Every side steps through the same batches, interleaved (the
side order rotates from batch to batch); each side's first steps (and its compilation) are left out as warm-up.
tokens/s counts real tokens; ratio = the side's tokens/s / nn.LSTM's, the median over windows of the per-window
ratio. Targets (issue 17): custom cells >= 1/3 (within 3x of nn.LSTM), the weight-dropped LSTM >= 1/1.1.

Prints the table and appends one JSON row per side to results/bench/cell_speed.jsonl; never asserts on timings.
Example: ``python benchmarks/cell_speed.py --windows 3 --window-batches 10 --threads 1``.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

if str(Path(__file__).resolve().parent) not in sys.path:  # benchmarks/ is not a package: find paired.py beside us
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from paired import Row, add_common_arguments, append_rows, banner, print_table, quiet_setup, row  # noqa: E402
from seqlab.data.sampler import BucketBatchSampler  # noqa: E402
from seqlab.models import (  # noqa: E402
    BiLSTMEncoder,
    CIFGLSTMCell,
    GRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    PeepholeLSTMCell,
    RecurrentEncoder,
    SequenceEncoder,
    VariationalLSTMCell,
    WeightDropBiLSTMEncoder,
)

INPUT_SIZE, HIDDEN_SIZE, BATCH_SIZE, NUM_TAGS = 150, 256, 32, 9
REFERENCE = "nn_lstm"
#: side -> (encoder factory (input_size, hidden_size), what it is, target ratio vs nn.LSTM)
CELLS: dict[str, tuple[Callable[[int, int], SequenceEncoder], str, float]] = {
    "weight_drop_lstm": (functools.partial(WeightDropBiLSTMEncoder, weight_dropout=0.5),
                         "WeightDropBiLSTMEncoder (DropConnect 0.5 on W_hh, fused nn.LSTM kernel)", 1 / 1.1),
    "lstm": (functools.partial(RecurrentEncoder, cell=LSTMCell), "RecurrentEncoder(LSTMCell)", 1 / 3),
    "peephole_lstm": (functools.partial(RecurrentEncoder, cell=PeepholeLSTMCell),
                      "RecurrentEncoder(PeepholeLSTMCell)", 1 / 3),
    "cifg_lstm": (functools.partial(RecurrentEncoder, cell=CIFGLSTMCell), "RecurrentEncoder(CIFGLSTMCell)", 1 / 3),
    "layernorm_lstm": (functools.partial(RecurrentEncoder, cell=LayerNormLSTMCell),
                       "RecurrentEncoder(LayerNormLSTMCell)", 1 / 3),
    "variational_lstm": (
        functools.partial(RecurrentEncoder,
                          cell=functools.partial(VariationalLSTMCell, recurrent_dropout=0.25, input_dropout=0.25)),
        "RecurrentEncoder(VariationalLSTMCell, dropout 0.25 on x and h)", 1 / 3),
    "gru": (functools.partial(RecurrentEncoder, cell=GRUCell), "RecurrentEncoder(GRUCell)", 1 / 3),
}


def conll_lengths(path: Path) -> list[int]:
    """Sentence lengths of a CoNLL file (gzip or plain), document-start lines left out."""
    opener = gzip.open if path.suffix == ".gz" else open
    lengths, current = [], 0
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip() and not line.startswith("-DOCSTART-"):
                current += 1
            elif current:
                lengths.append(current)
                current = 0
    return lengths + ([current] if current else [])


def make_batches(lengths: list[int], count: int, batch_size: int, input_size: int, seed: int = 0
                 ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``count`` training batches (inputs (B, T, D), mask (B, T), tags (B, T)) shaped as the bucketing sampler cuts
    the sentences, with random contents."""
    sampler = BucketBatchSampler(lengths, batch_size=batch_size, shuffle=True, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for indices in sampler:
        sizes = torch.tensor([lengths[i] for i in indices])
        time_steps = int(sizes.max())
        mask = torch.arange(time_steps).unsqueeze(0) < sizes.unsqueeze(1)  # (B, T)
        inputs = torch.randn(len(indices), time_steps, input_size, generator=generator)  # (B, T, D)
        tags = torch.randint(NUM_TAGS, (len(indices), time_steps), generator=generator).masked_fill(~mask, -100)
        batches.append((inputs, mask, tags))
        if len(batches) == count:
            return batches
    raise SystemExit(f"the training set gives only {len(batches)} batches, fewer than the {count} asked")


@dataclass
class Side:
    """An encoder with its tagger head and optimizer, and the time it spent in timed steps."""

    name: str
    encoder: SequenceEncoder
    what: str
    target: Optional[float]
    seconds: float = 0.0
    tokens: int = 0
    window_seconds: list[float] = field(default_factory=list)
    warmup_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.head = nn.Linear(self.encoder.output_size, NUM_TAGS)
        self.optimizer = torch.optim.Adam([*self.encoder.parameters(), *self.head.parameters()], lr=1e-3)
        self.encoder.train()

    def step(self, inputs: torch.Tensor, mask: torch.Tensor, tags: torch.Tensor) -> None:
        inputs = inputs.detach().requires_grad_(True)  # the embedder below is trained too
        logits = self.head(self.encoder(inputs, mask).states)  # (B, T, K)
        loss = F.cross_entropy(logits.reshape(-1, NUM_TAGS), tags.reshape(-1), ignore_index=-100)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


def compile_steps(encoder: RecurrentEncoder) -> RecurrentEncoder:
    """The encoder with each cell's ``step`` replaced by its ``torch.compile``d version (the loop stays Python).
    The LSTM cells share ``LSTMCell.step``'s code, and a step's input is specialised on whether its storage offset
    is 0 (the first step): more graphs per code object than dynamo's default limit of 8, past which it would run the
    step eagerly and time that as compiled."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    for directions in encoder.layers:
        for layer in directions:
            layer.cell.step = torch.compile(layer.cell.step, dynamic=True)
    return encoder


def build_sides(args: argparse.Namespace) -> list[Side]:
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        raise SystemExit(f"unknown cell(s) {', '.join(unknown)}; choose from {', '.join(CELLS)}")
    torch.manual_seed(0)
    sides = [Side(REFERENCE, BiLSTMEncoder(args.input_size, args.hidden_size), "BiLSTMEncoder (nn.LSTM)", None)]
    for name in cells:
        factory, what, target = CELLS[name]
        modes = ("eager",) if name.startswith("weight_drop") else args.modes
        for mode in modes:
            encoder = factory(args.input_size, args.hidden_size)
            if mode == "compiled":
                sides.append(Side(f"{name}_compiled", compile_steps(encoder), f"{what}, step torch.compile'd",
                                  target))
            else:
                sides.append(Side(name, encoder, what, target))
    return sides


def run(sides: list[Side], windows: list[list[tuple]], warmup: list[tuple]) -> None:
    for side in sides:
        start = time.perf_counter()
        for batch in warmup:
            side.step(*batch)
        side.warmup_seconds = time.perf_counter() - start
        print(f"warm-up {side.name}: {side.warmup_seconds:.1f} s", flush=True)
    for window in windows:
        spent = {side.name: 0.0 for side in sides}
        for index, batch in enumerate(window):
            shift = index % len(sides)
            for side in sides[shift:] + sides[:shift]:
                start = time.perf_counter()
                side.step(*batch)
                spent[side.name] += time.perf_counter() - start
                side.tokens += int(batch[1].sum())
        for side in sides:
            side.window_seconds.append(spent[side.name])
            side.seconds += spent[side.name]


def rows_for(sides: list[Side], args: argparse.Namespace) -> list[Row]:
    reference = sides[0]
    reference_rate = reference.tokens / reference.seconds
    rows = []
    for side in sides[1:]:
        ratio = statistics.median(r / s for r, s in zip(reference.window_seconds, side.window_seconds))
        what = (f"training tokens/s (forward, tagger cross-entropy, backward, Adam) of {side.what} vs BiLSTMEncoder on "
                f"nn.LSTM, input {args.input_size}, hidden {args.hidden_size} per direction, bidirectional, batches of "
                f"{args.batch_size} CoNLL-2003 train sentences (bucketed), interleaved; ratio = median over windows "
                f"of nn.LSTM time / side time; target >= {side.target:.3f}")
        rows.append(row(f"{side.name} vs nn.LSTM", what, side.tokens / side.seconds, reference_rate, "tokens/s",
                        args, batches=args.window_batches, ratio=ratio, target=round(side.target, 4),
                        meets_target=ratio >= side.target, warmup_seconds=round(side.warmup_seconds, 2),
                        per_window_ratios=[round(r / s, 4) for r, s in zip(reference.window_seconds,
                                                                        side.window_seconds)]))
    return rows


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, "shared data folder (reads ner/conll2003/iob2/train.txt[.gz])", "cell_speed.jsonl")
    parser.add_argument("--cells", default=",".join(CELLS), help=f"comma-separated, from {', '.join(CELLS)}")
    parser.add_argument("--modes", default="eager,compiled",
                        help="custom cells' loop: eager, compiled (each cell's step torch.compile'd), or both")
    parser.add_argument("--input-size", type=int, default=INPUT_SIZE)
    parser.add_argument("--hidden-size", type=int, default=HIDDEN_SIZE)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--warmup-batches", type=int, default=3)
    args = parser.parse_args(argv)
    args.modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if not args.modes or set(args.modes) - {"eager", "compiled"}:
        raise SystemExit(f"--modes: eager, compiled or both, got {','.join(args.modes)}")
    return args


def main(argv: Optional[list[str]] = None) -> list[Row]:
    args = parse_args(argv)
    quiet_setup(args)
    banner(args, args.batch_size)
    folder = args.data / "ner" / "conll2003" / "iob2"
    lengths = conll_lengths(next((p for p in (folder / "train.txt.gz", folder / "train.txt") if p.exists()),
                                 folder / "train.txt.gz"))
    batches = make_batches(lengths, args.warmup_batches + args.windows * args.window_batches, args.batch_size,
                           args.input_size)
    warmup, timed = batches[:args.warmup_batches], batches[args.warmup_batches:]
    windows = [timed[w * args.window_batches:(w + 1) * args.window_batches] for w in range(args.windows)]
    sides = build_sides(args)
    run(sides, windows, warmup)
    rows = rows_for(sides, args)
    print_table(rows)
    for r in rows:
        print(f"{r['name']}: ratio {r['ratio']:.3f} (target {r['target']:.3f}: "
              f"{'met' if r['meets_target'] else 'missed'}), per window {r['per_window_ratios']}, "
              f"warm-up {r['warmup_seconds']} s")
    append_rows(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
