"""NER training speed, measured in one run: seqlab (Lightning) vs a raw PyTorch loop, seqlab's CRF vs pytorch-crf,
and seqlab against a quoted Flair figure.

Trainer vs raw loop (``paired.py``, shared with sentiment_speed.py and speech_speed.py): the two take their steps
interleaved (raw step i, Trainer step i, raw step i + 1, ...) on the same pre-collated batches, from the same
weights; the ratio is the geometric mean of the medians of raw_s/seqlab_s over steps with the raw loop first and
second, so load that changes during the run hits both sides alike. The Flair comparison uses the Trainer reading
the real DataLoader (fetch and collate counted against seqlab).

Prints ratios and appends one JSON row per comparison to results/bench/ner_speed.jsonl; never asserts on timings
(they depend on the machine and its load).
Example: ``python benchmarks/ner_speed.py --windows 3 --window-batches 15 --crf-ops 20 --threads 2``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytorch_lightning as pl
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
    row,
    trainer,
    training_row,
)
from seqlab.data_modules import TokenClassificationData  # noqa: E402
from seqlab.models import (  # noqa: E402
    BiLSTMEncoder,
    CharBiLSTM,
    CRFTagger,
    LinearChainCRF,
    SoftmaxTagger,
    WordEmbedding,
)
from seqlab.tasks import TokenTagging  # noqa: E402

FLAIR_QUOTED_TOKENS_PER_S = 2300.0  # Flair 0.15 BiLSTM-CRF (hidden 256, one-hot 100 + char LSTM), quoted in the issue


# ----------------------------------------------------------------------------- model and data
class BenchTokenTagging(NoCheckpoints, TokenTagging):
    """TokenTagging without its ModelCheckpoint callbacks: the benchmark times training steps, not checkpoint
    writing (``configure_callbacks`` would otherwise add two ModelCheckpoints to every Trainer)."""


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
def tagging_loss(model: TokenTagging, batch: dict) -> torch.Tensor:
    """TokenTagging's training loss: its plain-torch network's (``seqlab.models.networks.Network``), which its
    ``shared_step`` calls too."""
    return model.model.loss(model.model(batch), batch)


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
    steps (``paired.PairedSteps``), over ``windows`` fresh Trainers of ``window_batches`` steps after an untimed
    warm-up; ratio and tokens/s as ``paired.combine``. ``with_loader`` adds ``loader_tokens_per_s``: the Trainer
    reading the real DataLoader (median over windows)."""
    torch.manual_seed(0)
    task = build_task(data, head, char_hidden)
    windows = collate_windows(data.train_dataloader(), args.windows + 1, args.window_batches)
    name = head.__name__ + label
    check_same_loss(task, tagging_loss, windows[0][0], name)
    result = training_row(f"train_step_{name}", name, paired_training(task, tagging_loss, windows, args.block), args)
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


# ----------------------------------------------------------------------------- command line
def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, "root holding ner/conll2003/iob2", "ner_speed.jsonl")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> list[Row]:
    args = parse_args(argv)
    quiet_setup(args)
    banner(args, 32)

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
    append_rows(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
