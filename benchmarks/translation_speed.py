"""Translation speed, measured in one run on Multi30k de->en: (a) seqlab's Seq2SeqTranslation trained by the Lightning
Trainer vs a raw PyTorch loop on the same model, (b) batched beam search vs the same beam search run one sentence at
a time, and vs batched greedy search, on the test set (test2016, 1,000 sentences).

Model: the sizes of configs/translation/multi30k_de_en_bahdanau.yaml (joint BPE 8k, source embedding 256, BiLSTM 2 x
256 per direction, linear bridge, 1-layer LSTM decoder 512 with additive attention 256 and input feeding, tied
target embedding, dropout 0.3, label smoothing 0.1, Adam 1e-3, batch 64), random weights, or a trained checkpoint
of any translation config (``--checkpoint``: its weights and its tokenizer). The configs' ReduceLROnPlateau steps
once per epoch on val/bleu: left out (no validation runs). An untrained decoder rarely emits EOS,
so every hypothesis runs to its maximum length (1.5 x source + 10): the search timings of a trained model are the
realistic ones.

(a) Steps interleaved on identical pre-collated batches (``paired.py``); the raw loop calls the task's plain-torch
network and its label-smoothed cross-entropy (``task.model(batch)``, ``task.model.loss``; checked equal to the
task's ``training_step`` before timing); ratio = geometric mean of the
medians of raw_s/seqlab_s over steps with the raw loop first and second; tokens/s counts real target tokens
(y_1 .. y_T and EOS).

(b) Over the test loader's batches (``eval_batch_size`` sentences each), in eval mode, without gradients: for each
batch, greedy search over the batch, beam search (beam 5, GNMT length penalty 0.6, as the configs) over the batch,
and the same beam search over each of its sentences alone (a batch of one, no padding), the order of the three
rotating from batch to batch. Ratios are total times over the whole test set; the batched and the per-sentence
beam must pick the same best hypothesis (the share that do is printed; float summation order may flip near-ties).

Prints ratios and appends one JSON row per comparison to results/bench/translation_speed.jsonl; never asserts on
timings. Example: ``python benchmarks/translation_speed.py --windows 3 --window-batches 20 --threads 2 --checkpoint
runs/quality/multi30k_de_en_bahdanau/version_0/checkpoints/best.ckpt``.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
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
    row,
    training_row,
)
from seqlab.data_modules import TranslationData  # noqa: E402
from seqlab.models import (  # noqa: E402
    AdditiveAttention,
    BeamSearch,
    BiLSTMEncoder,
    GNMTLengthPenalty,
    GreedySearch,
    LinearBridge,
    LSTMDecoder,
    SearchStrategy,
    WordEmbedding,
)
from seqlab.tasks import Seq2SeqTranslation  # noqa: E402

BATCH_SIZE = 64  # the configs' data.batch_size (evaluation batches: 2 x)
BEAM_SIZE = 5
SUBJECT = ("Multi30k de-en, joint BPE 8k, word 256 -> BiLSTM 2x256 -> LSTM decoder 512, additive attention, input "
           "feeding, tied embeddings, multi30k_de_en_bahdanau.yaml")


class BenchSeq2SeqTranslation(NoCheckpoints, Seq2SeqTranslation):
    """Seq2SeqTranslation without its ModelCheckpoint callbacks (the benchmark times training steps)."""


def build_data(data_root: Path, batch_size: int, state: Optional[dict] = None) -> TranslationData:
    """Multi30k from the local line-aligned files, as the configs read it (a checkpoint's tokenizer if ``state``)."""
    data = TranslationData(path=str(data_root / "translation" / "multi30k" / "raw"), source_lang="de",
                           target_lang="en", tokenizer="bpe", joint=True, max_vocab_size=8000, max_length=100,
                           batch_size=batch_size)
    if state:
        data.load_state_dict(state)
    data.setup("fit")
    data.setup("test")
    return data


def build_task(data: TranslationData, checkpoint: Optional[Path]) -> Seq2SeqTranslation:
    """The Bahdanau config's sizes, parts passed as factories like the CLI does; or the checkpoint's model (of the
    class it was saved as, without its ModelCheckpoint callbacks, like ``NoCheckpoints``)."""
    if checkpoint is not None:
        task = Seq2SeqTranslation.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=False,
                                                       target_encoder=data.target_encoder)
        task.configure_callbacks = NoCheckpoints.configure_callbacks.__get__(task)
        task.lr_scheduler_factory = None  # it steps once per epoch on val/bleu: no validation runs here
        return task
    return BenchSeq2SeqTranslation(
        source_vocab_size=data.source_vocab_size, target_vocab_size=data.target_vocab_size,
        source_padding_idx=data.source_padding_idx, target_padding_idx=data.target_padding_idx,
        bos_index=data.bos_index, eos_index=data.eos_index,
        source_embedding=functools.partial(WordEmbedding, embedding_dim=256),
        embedding_dropout=0.3,
        encoder=functools.partial(BiLSTMEncoder, hidden_size=256, num_layers=2, dropout=0.3),
        decoder=functools.partial(
            LSTMDecoder, embedding_dim=256, hidden_size=512, num_layers=1,
            attention=functools.partial(AdditiveAttention, attention_size=256), input_feeding=True,
            bridge=LinearBridge, dropout=0.3, tie_embeddings=True),
        label_smoothing=0.1,
        search=greedy_search(), beam_search=beam_search(),  # (the defaults are CLI lazy instances)
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        target_encoder=data.target_encoder,
    )


def greedy_search() -> SearchStrategy:
    return GreedySearch(max_length_ratio=1.5, max_length_offset=10)


def beam_search() -> SearchStrategy:
    """The configs' beam search: beam 5, GNMT length penalty 0.6."""
    return BeamSearch(beam_size=BEAM_SIZE, length_penalty=GNMTLengthPenalty(0.6), max_length_ratio=1.5,
                      max_length_offset=10)


def translation_loss(model: Seq2SeqTranslation, batch: dict) -> torch.Tensor:
    """Seq2SeqTranslation's training loss: its plain-torch network's (``seqlab.models.seq2seq.Seq2SeqNetwork``),
    which its ``shared_step`` calls too."""
    return model.model.loss(model.model(batch), batch)


def target_tokens(pad: int) -> Callable[[dict], int]:
    """Real target tokens of a batch (y_1 .. y_T and EOS): what the training rates count."""
    return lambda batch: int((batch["target_ids"][:, 1:] != pad).sum())


def compare_training(task: Seq2SeqTranslation, data: TranslationData, args: argparse.Namespace) -> Row:
    windows = collate_windows(data.train_dataloader(), args.windows + 1, args.window_batches)
    check_same_loss(task, translation_loss, windows[0][0], "translation")
    result = paired_training(task, translation_loss, windows, args.block, target_tokens(task.model.target_padding_idx))
    return training_row("train_step_multi30k_bahdanau" if args.checkpoint is None else "train_step_multi30k",
                        SUBJECT if args.checkpoint is None else f"Multi30k de-en, {args.checkpoint}", result, args,
                        batch_size=args.batch_size)


# ----------------------------------------------------------------------------- search
def one_sentence(batch: dict, row_index: int) -> dict:
    """Sentence ``row_index`` of a batch as a batch of one, without padding (what a per-sentence loop feeds)."""
    length = int(batch["source_lengths"][row_index])
    return {"source_ids": batch["source_ids"][row_index:row_index + 1, :length],
            "source_mask": batch["source_mask"][row_index:row_index + 1, :length]}


def timed(function: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = function()
    return time.perf_counter() - start, out


def best_tokens(hypotheses) -> list[list[int]]:
    """The best hypothesis of each sentence, as token id lists."""
    tokens, lengths = hypotheses.tokens[:, 0].tolist(), hypotheses.lengths[:, 0].tolist()
    return [row[:length] for row, length in zip(tokens, lengths)]


def compare_search(task: Seq2SeqTranslation, data: TranslationData, args: argparse.Namespace) -> list[Row]:
    """Batched beam vs per-sentence beam vs batched greedy over the test set (see the module docstring)."""
    network = task.model.eval()  # the plain-torch Seq2SeqNetwork
    greedy, beam = greedy_search(), beam_search()
    seconds = {"greedy": 0.0, "beam": 0.0, "beam_per_sentence": 0.0}
    sentences = same = output_tokens = 0
    batches = list(data.test_dataloader())
    with torch.no_grad():
        network.translate(batches[0], beam)  # warm-up, untimed
        for number, batch in enumerate(batches):
            if args.sentences and sentences >= args.sentences:
                break
            runs = {
                "greedy": lambda: network.translate(batch, greedy),
                "beam": lambda: network.translate(batch, beam),
                "beam_per_sentence": lambda: [best_tokens(network.translate(one_sentence(batch, i), beam))[0]
                                              for i in range(batch["source_ids"].shape[0])],
            }
            order = list(runs)[number % 3:] + list(runs)[:number % 3]
            outputs = {}
            for name in order:
                elapsed, outputs[name] = timed(runs[name])
                seconds[name] += elapsed
            batched_best = best_tokens(outputs["beam"])
            same += sum(a == b for a, b in zip(batched_best, outputs["beam_per_sentence"]))
            output_tokens += sum(len(t) for t in batched_best)
            sentences += len(batched_best)
    print(f"search: {sentences} test sentences in batches of {data.eval_batch_size}; greedy {seconds['greedy']:.2f} s, "
          f"batched beam {seconds['beam']:.2f} s, per-sentence beam {seconds['beam_per_sentence']:.2f} s; batched "
          f"and per-sentence beam pick the same best hypothesis for {same} of {sentences} sentences")
    rate = {name: sentences / s for name, s in seconds.items()}
    common = dict(sentences=sentences, eval_batch_size=data.eval_batch_size, beam_size=BEAM_SIZE,
                  same_best=same, output_tokens=output_tokens, seconds={k: round(v, 3) for k, v in seconds.items()},
                  model="random weights" if args.checkpoint is None else str(args.checkpoint))
    return [
        row("beam_batched_vs_per_sentence", f"beam search (beam {BEAM_SIZE}) over the Multi30k test set, batched "
            f"({data.eval_batch_size} sentences x {BEAM_SIZE} beams per decoder call) vs one sentence at a time; "
            "ratio = per-sentence time / batched time (target >= 5)", rate["beam"], rate["beam_per_sentence"],
            "sent/s", args, batches=len(batches), **common),
        row("beam_vs_greedy", f"beam search (beam {BEAM_SIZE}) vs greedy search, both batched, over the Multi30k "
            "test set; ratio = beam time / greedy time (target <= 3)", rate["beam"], rate["greedy"], "sent/s", args,
            batches=len(batches), ratio=seconds["beam"] / seconds["greedy"], **common),
    ]


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, "root holding translation/multi30k/raw", "translation_speed.jsonl")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help=f"training batch size (default {BATCH_SIZE}: the configs'; evaluation batches are 2x)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a trained translation checkpoint: its weights and tokenizer (default: random weights)")
    parser.add_argument("--sentences", type=int, default=0,
                        help="search comparison over at least this many test sentences, whole batches (0: all)")
    parser.add_argument("--skip-training", action="store_true", help="only the search comparison")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> list[Row]:
    args = parse_args(argv)
    quiet_setup(args)
    banner(args, args.batch_size)
    state = None
    if args.checkpoint is not None:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False).get("TranslationData")
        if not state:
            raise SystemExit(f"{args.checkpoint}: no TranslationData tokenizer in this checkpoint")
    data = build_data(args.data, args.batch_size, state)
    torch.manual_seed(0)
    task = build_task(data, args.checkpoint)
    rows = compare_search(task, data, args)  # first: the training comparison changes the weights
    task.train()
    if not args.skip_training:
        rows.insert(0, compare_training(task, data, args))
    print_table(rows)
    append_rows(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
