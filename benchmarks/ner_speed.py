"""NER training speed, measured in one run: seqlab (Lightning) vs a raw PyTorch loop, seqlab's CRF vs pytorch-crf,
and seqlab against a quoted Flair figure.

Prints ratios and appends one JSON row per comparison; never asserts on timings (they depend on the machine and
its load). Example: ``python benchmarks/ner_speed.py --windows 5 --window-batches 30 --threads 2``.
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


# ----------------------------------------------------------------------------- training windows
class WindowTimer(pl.Callback):
    """Times a fit from the start of batch 0 to the end of the last batch (Trainer setup excluded) and counts
    real tokens (mask.sum()) of the batches it saw."""

    def __init__(self) -> None:
        self.start = self.end = 0.0
        self.tokens = 0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if batch_idx == 0:
            self.start = time.perf_counter()
        self.tokens += int(batch["mask"].sum())

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.end = time.perf_counter()


def seqlab_window(task: TokenTagging, loader: torch.utils.data.DataLoader, batches: int) -> tuple[float, int]:
    """One window through the real Trainer: (seconds, real tokens). A fresh Trainer per window, so (like the raw
    loop) each window starts a fresh optimizer and reads the loader's first ``batches`` batches."""
    timer = WindowTimer()
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=1, max_steps=batches, limit_train_batches=batches,
        limit_val_batches=0, gradient_clip_val=5.0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False, callbacks=[timer],
    )
    trainer.fit(task, train_dataloaders=loader)
    return timer.end - timer.start, timer.tokens


def raw_window(model: TokenTagging, loader: torch.utils.data.DataLoader, batches: int) -> tuple[float, int]:
    """The same steps in plain PyTorch: forward -> head.loss -> zero_grad -> backward -> clip -> step.
    Like the Trainer (which knows the loader's length and does not prefetch), the clock starts after batch 0 is
    collated, so both sides time the collation of batches 1..n-1."""
    optimizer = model.configure_optimizers()  # Adam(lr=1e-3, fused=True), fresh per window like each Trainer.fit
    model.train()
    iterator = iter(loader)
    batch = next(iterator)
    tokens = 0
    start = time.perf_counter()
    for step in range(batches):
        if step:
            batch = next(iterator)
        tokens += int(batch["mask"].sum())
        emissions = model(batch)  # (B, T, K)
        loss = model.head.loss(emissions, batch["tag_ids"], batch["mask"])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    return time.perf_counter() - start, tokens


def compare_training(data: TokenClassificationData, head: Callable, args: argparse.Namespace,
                     char_hidden: int = 50, label: str = "") -> Row:
    """Median tokens/s over alternating windows (seqlab, raw, seqlab, raw, ...) after one untimed warm-up each."""
    torch.manual_seed(0)
    task = build_task(data, head, char_hidden)
    raw = copy.deepcopy(task)  # same weights, same optimizer factory
    loader = data.train_dataloader()  # one DataLoader for both sides: identical batches and collate cost
    seqlab_window(task, loader, min(args.window_batches, 3))
    raw_window(raw, loader, min(args.window_batches, 3))
    ours, theirs = [], []
    for _ in range(args.windows):
        seconds, tokens = seqlab_window(task, loader, args.window_batches)
        ours.append(tokens / seconds)
        seconds, tokens = raw_window(raw, loader, args.window_batches)
        theirs.append(tokens / seconds)
    seqlab_tps, raw_tps = statistics.median(ours), statistics.median(theirs)
    name = head.__name__ + label
    return row(f"train_step_{name}", f"training tokens/s, seqlab Trainer vs raw PyTorch loop ({name}); ratio = "
               "seqlab/raw", seqlab_tps, raw_tps, "tokens/s", args, batches=args.window_batches)


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

    def window(op: Callable[[], None]) -> float:
        start = time.perf_counter()
        for _ in range(args.crf_ops):
            op()
        return (time.perf_counter() - start) / args.crf_ops * 1e3  # ms per op

    op_ours(), op_theirs()  # warm-up
    times_ours, times_theirs = [], []
    for _ in range(args.windows):
        times_ours.append(window(op_ours))
        times_theirs.append(window(op_theirs))
    ms_ours, ms_theirs = statistics.median(times_ours), statistics.median(times_theirs)
    return row("crf_op", f"CRF NLL fwd+bwd+Viterbi (B={batch}, T={length}, K={num_tags}), seqlab LinearChainCRF vs "
               "torchcrf.CRF; ratio = seqlab speedup = torchcrf_ms/seqlab_ms", ms_ours, ms_theirs, "ms/op", args,
               batches=args.crf_ops, ratio=ms_theirs / ms_ours)


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
        ratio: Optional[float] = None, reference_kind: str = "measured") -> Row:
    return {
        "name": name, "what": what, "seqlab": seqlab, "reference": reference,
        "ratio": seqlab / reference if ratio is None else ratio, "unit": unit, "reference_kind": reference_kind,
        "windows": args.windows, "batches_per_window": batches, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "load_1m": round(os.getloadavg()[0], 2),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def print_table(rows: list[Row]) -> None:
    print(f"\n{'comparison':<25} {'seqlab':>10} {'reference':>10} {'ratio':>7}  unit      what")
    for r in rows:
        print(f"{r['name']:<25} {r['seqlab']:>10.1f} {r['reference']:>10.1f} {r['ratio']:>7.3f}  {r['unit']:<9} "
              f"{r['what']}")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get("SEQLAB_DATA") or str(REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--data", type=Path, default=Path(default_data), help="root holding ner/conll2003/iob2")
    parser.add_argument("--windows", type=int, default=5, help="timed windows per side (median taken)")
    parser.add_argument("--window-batches", type=int, default=30, help="training batches per window")
    parser.add_argument("--crf-ops", type=int, default=50, help="CRF ops per window")
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
    flair_sized = compare_training(data, CRFTagger, args, char_hidden=25, label="_flair_sizes")
    rows += [flair_sized, compare_crf(args)]
    seqlab_crf_tps = flair_sized["seqlab"]
    rows.append(row("vs_flair_quoted", "seqlab BiLSTM-CRF (Flair's sizes: word 100, char LSTM 25+25, BiLSTM 256, "
                    "BIOES) training tokens/s vs Flair 0.15 quoted reference "
                    f"({FLAIR_QUOTED_TOKENS_PER_S:.0f} tokens/s, quoted reference, not measured in this run); "
                    "ratio = seqlab/Flair", seqlab_crf_tps, FLAIR_QUOTED_TOKENS_PER_S, "tokens/s", args,
                    batches=args.window_batches, reference_kind="quoted"))
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
            rows.append(row("vs_flair_measured", "seqlab BiLSTM-CRF vs Flair SequenceTagger training tokens/s, "
                            "both measured in this run; ratio = seqlab/Flair", seqlab_crf_tps, flair_tps,
                            "tokens/s", args, batches=args.window_batches))

    print_table(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    with args.json.open("a", encoding="utf-8") as handle:
        for r in rows:
            handle.write(json.dumps(r) + "\n")
    print(f"\n{len(rows)} rows appended to {args.json}")


if __name__ == "__main__":
    main()
