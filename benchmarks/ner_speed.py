"""NER training speed, measured in one run: seqlab (Lightning) vs a raw PyTorch loop, seqlab's CRF vs pytorch-crf,
and seqlab against a quoted Flair figure.

Trainer vs raw loop: the two take their steps interleaved (raw step i, Trainer step i, raw step i + 1, ...) on the
same pre-collated batches, from the same weights; the ratio is the median over steps of the paired step times, so
load that changes during the run hits both sides alike. The Flair comparison uses the Trainer reading the real
DataLoader (fetch and collate counted against seqlab).

Prints ratios and appends one JSON row per comparison; never asserts on timings (they depend on the machine and
its load). Example: ``python benchmarks/ner_speed.py --windows 3 --window-batches 15 --crf-ops 20 --threads 2``.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import pytorch_lightning as pl
import torch

from seqlab.data_modules import TokenClassificationData
from seqlab.models import BiLSTMEncoder, CharBiLSTM, CRFTagger, LinearChainCRF, SoftmaxTagger, WordEmbedding
from seqlab.tasks import TokenTagging

REPO_ROOT = Path(__file__).resolve().parents[1]
FLAIR_QUOTED_TOKENS_PER_S = 2300.0  # Flair 0.15 BiLSTM-CRF (hidden 256, one-hot 100 + char LSTM), quoted in the issue
Row = dict[str, Any]


# ----------------------------------------------------------------------------- model and data
class BenchTokenTagging(TokenTagging):
    """TokenTagging without its ModelCheckpoint callbacks: the benchmark times training steps, not checkpoint
    writing (``configure_callbacks`` would otherwise add two ModelCheckpoints to every Trainer)."""

    def configure_callbacks(self) -> list[pl.Callback]:
        return []


def build_data(data_root: Path, batch_size: int = 32) -> TokenClassificationData:
    """CoNLL-2003 (IOB2 files) as trained by configs/ner/conll2003_bilstm_crf.yaml: BIOES, digits normalised."""
    data = TokenClassificationData(
        path=str(data_root / "ner" / "conll2003" / "iob2"), batch_size=batch_size, tag_scheme="BIOES",
        normalize_digits=True,
    )
    data.setup("fit")
    return data


def build_task(data: TokenClassificationData, head: Callable, char_hidden: int = 50) -> BenchTokenTagging:
    """The sizes of configs/ner/conll2003_bilstm_crf.yaml (``char_hidden=25``: Flair's CharacterEmbeddings size),
    parts passed as factories like the CLI does."""
    return BenchTokenTagging(
        vocab_size=data.vocab_size,
        labels=data.labels,
        char_vocab_size=data.char_vocab_size,
        padding_idx=data.padding_idx,
        word_embedding=functools.partial(WordEmbedding, embedding_dim=100, word_dropout=0.1),
        char_encoder=functools.partial(CharBiLSTM, embedding_dim=25, hidden_size=char_hidden),
        embedding_dropout=0.5,
        encoder=functools.partial(BiLSTMEncoder, hidden_size=256, dropout=0.5),
        head=head,
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3, fused=True),
    )


# ----------------------------------------------------------------------------- training steps, paired
def raw_stepper(model: TokenTagging) -> Callable[[dict], None]:
    """The training step in plain PyTorch: forward -> head.loss -> zero_grad -> backward -> clip -> step, with a
    fresh optimizer (like each Trainer.fit): Adam(lr=1e-3, fused=True) from the task's own factory."""
    optimizer = model.configure_optimizers()
    model.train()

    def step(batch: dict) -> None:
        emissions = model(batch)  # (B, T, K)
        loss = model.head.loss(emissions, batch["tag_ids"], batch["mask"])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()

    return step


class PairedSteps(pl.Callback):
    """Interleaves the raw PyTorch loop with the Trainer on the very same (pre-collated) batches, in blocks of
    ``block`` steps: the raw loop takes a block's steps either just before the Trainer's first step of the block
    (at its ``on_train_batch_start``) or just after its last one (at its ``on_train_batch_end``), alternating from
    block to block, so that neither side always runs right after the other on the same batches.

    Trainer step ``i`` = the time from its ``on_train_batch_start`` for batch ``i`` to the one for batch ``i + 1``
    less the raw steps run in between: training step, backward, clipping, optimizer step, hooks, logging, fetching
    and transferring the next batch. Blocks adjacent in time see the same machine load."""

    def __init__(self, raw_step: Callable[[dict], None], batches: list[dict], block: int) -> None:
        self.raw_step, self.batches, self.block = raw_step, batches, block
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

    def blocks(self) -> list[tuple[float, float, int, bool]]:
        """Per block: (raw seconds, seqlab seconds, real tokens, raw ran first). The Trainer's last step has no
        end mark, so the block holding it is left out."""
        out = []
        for first in range(0, len(self.seqlab) - self.block + 1, self.block):
            steps = range(first, first + self.block)
            out.append((sum(self.raw[i] for i in steps), sum(self.seqlab[i] for i in steps),
                        sum(int(self.batches[i]["mask"].sum()) for i in steps), self.raw_first(first)))
        return out


def trainer(batches: int, callbacks: list[pl.Callback]) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=1, max_steps=batches, limit_train_batches=batches,
        limit_val_batches=0, gradient_clip_val=5.0, logger=False, enable_checkpointing=False,
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


def paired_window(task: TokenTagging, raw: TokenTagging, batches: list[dict], block: int
                  ) -> list[tuple[float, float, int, bool]]:
    """One window: a fresh Trainer fits ``task`` on ``batches`` (collated beforehand, so neither side pays data
    loading) while ``raw`` (a copy with the same weights, a fresh optimizer too) takes the same steps in plain
    PyTorch, interleaved block by block (``PairedSteps``)."""
    paired = PairedSteps(raw_stepper(raw), batches, block)
    trainer(len(batches), [paired]).fit(task, train_dataloaders=Batches(batches))
    return paired.blocks()


class StepStarts(pl.Callback):
    """Clock at the start of every training batch, and the real tokens (mask.sum()) of each batch."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.tokens: list[int] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self.starts.append(time.perf_counter())
        self.tokens.append(int(batch["mask"].sum()))


def loader_window(task: TokenTagging, loader: torch.utils.data.DataLoader, batches: int) -> float:
    """Trainer tokens/s reading the real DataLoader (fetch + collate included, as a user's fit): steps 1..n-2,
    each from its batch start to the next one's."""
    clock = StepStarts()
    trainer(batches, [clock]).fit(task, train_dataloaders=loader)
    spans = [b - a for a, b in zip(clock.starts, clock.starts[1:])][1:]
    return sum(clock.tokens[1:len(spans) + 1]) / sum(spans)


def compare_training(data: TokenClassificationData, head: Callable, args: argparse.Namespace,
                     char_hidden: int = 50, label: str = "", with_loader: bool = False) -> Row:
    """seqlab's Trainer vs the raw loop on identical pre-collated batches, interleaved in blocks of ``--block``
    steps (``PairedSteps``), over ``windows`` fresh Trainers of ``window_batches`` steps after an untimed warm-up.

    ratio: for each block, raw seconds / seqlab seconds on the same batches; the median over blocks where the raw
    loop went first and the median over blocks where it went second, combined by their geometric mean. (Whichever
    side runs second on the same batches is measurably faster, allocator and cache reuse: alternating the order
    and combining cancels that bias.) tokens/s = tokens / summed step times of each side. ``with_loader`` adds
    ``loader_tokens_per_s``: the Trainer reading the real DataLoader (median over windows)."""
    torch.manual_seed(0)
    task = build_task(data, head, char_hidden)
    raw = copy.deepcopy(task)  # same weights, same optimizer factory
    iterator = iter(data.train_dataloader())
    collated = [next(iterator) for _ in range((args.windows + 1) * args.window_batches)]
    windows = [collated[w * args.window_batches:(w + 1) * args.window_batches] for w in range(args.windows + 1)]
    paired_window(task, raw, windows[0][: 2 * args.block + 1], args.block)  # warm-up
    blocks, window_ratios = [], []
    for batches in windows[1:]:
        window = paired_window(task, raw, batches, args.block)
        window_ratios.append(statistics.median(r / s for r, s, _, _ in window))
        blocks += window
    ratio_first = statistics.median(r / s for r, s, _, first in blocks if first)
    ratio_second = statistics.median(r / s for r, s, _, first in blocks if not first)
    ratio = (ratio_first * ratio_second) ** 0.5
    tokens = sum(n for _, _, n, _ in blocks)
    seqlab_tps, raw_tps = tokens / sum(s for _, s, _, _ in blocks), tokens / sum(r for r, _, _, _ in blocks)
    name = head.__name__ + label
    result = row(f"train_step_{name}", f"training tokens/s, seqlab Trainer vs raw PyTorch loop ({name}) on identical "
                 f"pre-collated batches, interleaved in blocks of {args.block} steps; ratio = geometric mean of the "
                 "medians of raw_s/seqlab_s over blocks with raw first and with raw second", seqlab_tps, raw_tps,
                 "tokens/s", args, batches=args.window_batches, ratio=ratio, blocks=len(blocks), block=args.block,
                 ratio_raw_first=round(ratio_first, 4), ratio_raw_second=round(ratio_second, 4),
                 window_ratios=[round(r, 4) for r in window_ratios])
    if with_loader:
        loader = data.train_dataloader()
        loader_window(task, loader, 4)  # warm-up
        speeds = [loader_window(task, loader, args.window_batches) for _ in range(args.windows)]
        result["loader_tokens_per_s"] = statistics.median(speeds)
        result["loader_window_tps"] = [round(v) for v in speeds]
    return result


# ----------------------------------------------------------------------------- CRF
def compare_crf(args: argparse.Namespace, batch: int = 32, length: int = 40, num_tags: int = 9) -> Row:
    """seqlab LinearChainCRF vs torchcrf.CRF with copied parameters; one op = NLL forward + backward + Viterbi."""
    import torchcrf

    torch.manual_seed(0)
    ours = LinearChainCRF(num_tags)
    theirs = torchcrf.CRF(num_tags, batch_first=True)
    with torch.no_grad():
        theirs.transitions.copy_(ours.transitions)  # both (from, to)
        theirs.start_transitions.copy_(ours.start_transitions)
        theirs.end_transitions.copy_(ours.end_transitions)
    emissions = torch.randn(batch, length, num_tags, requires_grad=True)  # (B, T, K)
    tags = torch.randint(num_tags, (batch, length))  # (B, T)
    lengths = torch.randint(1, length + 1, (batch,))
    lengths[0] = length  # first row full length, so the padded width is exactly `length`
    mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T) prefix masks

    nll_ours = ours.nll(emissions, tags, mask)  # (B,)
    nll_theirs = -theirs(emissions, tags, mask, reduction="none")  # (B,)
    paths_ours = ours.viterbi(emissions, mask)[0]  # (B, T), 0 on padding
    paths_theirs = theirs.decode(emissions, mask)  # list of B lists, each of its own length
    nll_ok = torch.allclose(nll_ours, nll_theirs, rtol=1e-4, atol=1e-4)
    paths_ok = all(paths_ours[i, : lengths[i]].tolist() == paths_theirs[i] for i in range(batch))
    print(f"CRF check: NLL max |seqlab - torchcrf| = {(nll_ours - nll_theirs).abs().max():.2e} "
          f"({'agree' if nll_ok else 'DIFFER'} to 1e-4); Viterbi paths {'identical' if paths_ok else 'DIFFER'}")
    if not (nll_ok and paths_ok):
        raise SystemExit("CRF check failed: the two CRFs do not compute the same thing, timing them is meaningless")

    def op_ours() -> None:
        emissions.grad = None
        ours.zero_grad(set_to_none=True)
        ours.nll(emissions, tags, mask).sum().backward()
        with torch.no_grad():
            ours.viterbi(emissions, mask)

    def op_theirs() -> None:
        emissions.grad = None
        theirs.zero_grad(set_to_none=True)
        (-theirs(emissions, tags, mask, reduction="sum")).backward()
        with torch.no_grad():
            theirs.decode(emissions, mask)

    op_ours(), op_theirs()  # warm-up
    times_ours, times_theirs = [], []
    for i in range(args.windows * args.crf_ops):  # ops interleaved one by one, the order swapped every other op
        for op, times in ((op_ours, times_ours), (op_theirs, times_theirs))[:: 1 if i % 2 else -1]:
            start = time.perf_counter()
            op()
            times.append((time.perf_counter() - start) * 1e3)
    ms_ours, ms_theirs = statistics.median(times_ours), statistics.median(times_theirs)
    speedup = statistics.median(t / o for o, t in zip(times_ours, times_theirs))
    return row("crf_op", f"CRF NLL fwd+bwd+Viterbi (B={batch}, T={length}, K={num_tags}), seqlab LinearChainCRF vs "
               "torchcrf.CRF, median ms/op, ops interleaved; ratio = seqlab speedup = median over op pairs of "
               "torchcrf_ms/seqlab_ms", ms_ours, ms_theirs, "ms/op", args, batches=args.crf_ops, ratio=speedup)


# ----------------------------------------------------------------------------- Flair (optional)
def flair_tokens_per_second(data: TokenClassificationData, args: argparse.Namespace) -> float:
    """Flair SequenceTagger (BiLSTM-CRF, hidden 256, one-hot 100 + CharacterEmbeddings) on the same sentences as
    the loader's first batches, Adam lr 1e-3, clip 5.0. Only runs where flair is installed."""
    import flair
    from flair.data import Corpus, Sentence
    from flair.datasets import FlairDatapointDataset
    from flair.embeddings import CharacterEmbeddings, OneHotEmbeddings, StackedEmbeddings
    from flair.models import SequenceTagger
    from flair.training_utils import store_embeddings

    from seqlab.tagging import strict_spans

    flair.device = torch.device("cpu")
    raw = data.raw_split("train")

    def sentence(tokens: list[str], tags: list[str]) -> Sentence:
        s = Sentence(tokens)
        for span in strict_spans(tags, "BIOES"):
            s[span.start:span.end].add_label("ner", span.label)
        return s

    sentences = [sentence(t, g) for t, g in zip(raw["tokens"], raw["tags"])]
    corpus = Corpus(train=FlairDatapointDataset(sentences), dev=None, test=None, sample_missing_splits=False)
    embeddings = StackedEmbeddings([
        OneHotEmbeddings.from_corpus(corpus, embedding_length=100, min_freq=1), CharacterEmbeddings(),
    ])
    torch.manual_seed(0)
    tagger = SequenceTagger(hidden_size=256, embeddings=embeddings, tag_dictionary=corpus.make_label_dictionary(
        "ner", add_unk=False), tag_type="ner", use_crf=True, tag_format="BIOES")
    tagger.train()
    loader = iter(data.train_dataloader())
    batches = [[sentences[i] for i in next(loader)["index"].tolist()] for _ in range(args.window_batches)]
    tokens = sum(len(s) for batch in batches for s in batch)
    speeds = []
    for _ in range(args.windows + 1):  # the first window is a warm-up
        optimizer = torch.optim.Adam(tagger.parameters(), lr=1e-3)
        start = time.perf_counter()
        for batch in batches:
            loss, _ = tagger.forward_loss(batch)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tagger.parameters(), 5.0)
            optimizer.step()
            store_embeddings(batch, "none")
        speeds.append(tokens / (time.perf_counter() - start))
    return statistics.median(speeds[1:])


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
    print(f"\n{'comparison':<32} {'seqlab':>10} {'reference':>10} {'ratio':>7}  unit      what")
    for r in rows:
        print(f"{r['name']:<32} {r['seqlab']:>10.1f} {r['reference']:>10.1f} {r['ratio']:>7.3f}  {r['unit']:<9} "
              f"{r['what']}")
    for r in rows:
        if "window_ratios" in r:
            print(f"{r['name']}: {r['blocks']} block pairs of {r['block']} steps; median ratio with raw first "
                  f"{r['ratio_raw_first']:.3f}, raw second {r['ratio_raw_second']:.3f}; per-window medians "
                  f"{r['window_ratios']}" + (f"; Trainer on the real DataLoader: {r['loader_window_tps']} tokens/s "
                                             "per window" if "loader_window_tps" in r else ""))


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get("SEQLAB_DATA") or str(REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--data", type=Path, default=Path(default_data), help="root holding ner/conll2003/iob2")
    parser.add_argument("--windows", type=int, default=5, help="timed windows: fresh Trainers, each with its raw-loop steps interleaved")
    parser.add_argument("--window-batches", type=int, default=30, help="training steps per window (per side)")
    parser.add_argument("--block", type=int, default=1, help="steps per interleaved block (Trainer vs raw loop)")
    parser.add_argument("--crf-ops", type=int, default=50, help="CRF ops per window and side (ops interleaved)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "results" / "bench" / "ner_speed.jsonl")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)  # no "GPU available" banner per window
    for message in (".*does not have many workers.*", ".*no `val_dataloader`.*", ".*LeafSpec.*"):
        warnings.filterwarnings("ignore", message)
    import datasets

    datasets.disable_progress_bars()
    print(f"torch {torch.__version__}, pytorch_lightning {pl.__version__}, threads {torch.get_num_threads()}, "
          f"{args.windows} windows x {args.window_batches} batches of 32, load average {os.getloadavg()[0]:.2f} "
          "(other processes on these cores make timings noisy; --threads 1 is steadier on a shared machine)")

    data = build_data(args.data)
    rows = [compare_training(data, CRFTagger, args), compare_training(data, SoftmaxTagger, args)]
    flair_sized = compare_training(data, CRFTagger, args, char_hidden=25, label="_flair_sizes", with_loader=True)
    rows += [flair_sized, compare_crf(args)]
    seqlab_crf_tps = flair_sized["loader_tokens_per_s"]  # the real DataLoader: data loading counted against seqlab
    rows.append(row("vs_flair_quoted", "seqlab BiLSTM-CRF (Flair's sizes: word 100, char LSTM 25+25, BiLSTM 256, "
                    "BIOES, batch 32, Adam 1e-3, clip 5) Trainer tokens/s reading the real DataLoader vs Flair 0.15 "
                    f"quoted reference ({FLAIR_QUOTED_TOKENS_PER_S:.0f} tokens/s, quoted reference, not measured in "
                    "this run); ratio = seqlab/Flair", seqlab_crf_tps, FLAIR_QUOTED_TOKENS_PER_S, "tokens/s", args,
                    batches=args.window_batches, reference_kind="quoted",
                    seqlab_precollated_tokens_per_s=flair_sized["seqlab"]))
    try:
        import flair  # noqa: F401
    except ImportError:
        print("flair is not installed: Flair not measured in this run (only the quoted figure is compared)")
    else:
        try:
            flair_tps = flair_tokens_per_second(data, args)
        except Exception as error:  # optional peer measurement: report, keep the other rows
            print(f"Flair measurement failed: {type(error).__name__}: {error}", file=sys.stderr)
        else:
            rows.append(row("vs_flair_measured", "seqlab BiLSTM-CRF (Trainer, real DataLoader) vs Flair "
                            "SequenceTagger (pre-built sentence batches) training tokens/s, both measured in this run; "
                            "ratio = seqlab/Flair", seqlab_crf_tps, flair_tps,
                            "tokens/s", args, batches=args.window_batches))

    print_table(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    with args.json.open("a", encoding="utf-8") as handle:
        for r in rows:
            handle.write(json.dumps(r) + "\n")
    print(f"\n{len(rows)} rows appended to {args.json}")


if __name__ == "__main__":
    main()
