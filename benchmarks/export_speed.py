"""Exported NER model under onnxruntime vs the PyTorch predictor, measured in one run on the CoNLL-2003 test sentences,
same threads (``--threads``, default 1, for torch and for onnxruntime's intra-op pool).

The model: a BiLSTM-CRF of Flair's sizes with random weights (as benchmarks/ner_inference_vs_flair.py: word 100, char
BiLSTM 25 + 25, BiLSTM 256, CRF over BIOES; speed does not depend on the weights), or ``--checkpoint``'s. It is
exported by ``seqlab.export.export`` (the CRF's Viterbi inside the graph) to a temporary folder. Two levels:

- model only (tensors in, tags out): the eager graph (the task's forward + Viterbi, what ``predict`` runs) vs the
  ONNX session (``OnnxSession.run``), on the batches ``Predictor.predict`` forms, collated beforehand. Batch 1: every
  one of the first ``--batch1-sentences`` sentences timed alone, the two sides interleaved sentence by sentence (the
  order swapped every sentence), ``--windows`` rounds: latency p50 and p99 over all timings, tokens/s over the median
  round. Batch 32: whole passes over the test set, alternated (``alternate``), tokens/s of the median pass.
- end to end (text in, records out): ``Predictor.predict(texts)`` vs ``OnnxPredictor.predict(texts)`` (encoding,
  batching and the records with entity confidences are the same Python on both sides), batch 1 and batch 32.

Before timing, the two sides' tags are checked equal on every batch. Ratios: ONNX over PyTorch for tokens/s,
PyTorch over ONNX for latency (above 1: ONNX is faster). Prints the table and appends the rows to
results/bench/export_speed.jsonl; never asserts on timings.
Example: ``python benchmarks/export_speed.py --windows 5 --threads 1``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import torch

if str(Path(__file__).resolve().parent) not in sys.path:  # benchmarks/ is not a package: find paired.py beside us
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from ner_inference_vs_flair import SIZES, alternate, build_predictor, collated, timed  # noqa: E402
from paired import Row, add_common_arguments, append_rows, print_table, quiet_setup, row  # noqa: E402

import seqlab  # noqa: E402
from seqlab.data_modules import TokenClassificationData  # noqa: E402
from seqlab.export import OnnxPredictor, OnnxSession, export, graph_of  # noqa: E402
from seqlab.inference import Predictor  # noqa: E402

Feeds = tuple[torch.Tensor, ...]


def check_same_tags(graph: torch.nn.Module, session: OnnxSession, feeds: list[Feeds]) -> None:
    with torch.inference_mode():
        for inputs in feeds:
            if not torch.equal(graph(*inputs)[0], session.run(inputs)["tags"]):
                raise SystemExit("the ONNX model's tags differ from PyTorch's: not timing a wrong model")


def interleaved_latencies(sides: dict[str, Callable[[Feeds], object]], feeds: list[Feeds], rounds: int
                          ) -> dict[str, list[list[float]]]:
    """Seconds of each side's call per input, per round: one untimed round first; within a round the sides take
    turns input by input, the first side swapped every input."""
    names = list(sides)
    seconds: dict[str, list[list[float]]] = {name: [] for name in names}
    for round_index in range(rounds + 1):
        times: dict[str, list[float]] = {name: [] for name in names}
        for index, inputs in enumerate(feeds):
            for name in (names if index % 2 == 0 else names[::-1]):
                start = time.perf_counter()
                sides[name](inputs)
                times[name].append(time.perf_counter() - start)
        if round_index:
            for name in names:
                seconds[name].append(times[name])
    return seconds


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def model_rows(predictor: Predictor, session: OnnxSession, texts: list[str], args: argparse.Namespace) -> list[Row]:
    graph = graph_of(predictor.task)
    torch_side = torch.inference_mode()(lambda inputs: graph(*inputs))
    sides = {"onnx": session.run, "pytorch": torch_side}
    rows = []

    singles = [graph.feeds(b) for b in collated(predictor, texts[:args.batch1_sentences], 1)]
    check_same_tags(graph, session, singles)
    tokens = sum(int(inputs[-1].sum()) for inputs in singles)
    latencies = interleaved_latencies(sides, singles, args.windows)
    flat = {name: [s for per_round in rounds for s in per_round] for name, rounds in latencies.items()}
    what = f"NER {SIZES}: model only, one sentence per call, {len(singles)} CoNLL test sentences"
    for q in (50, 99):
        onnx_ms, torch_ms = percentile(flat["onnx"], q) * 1e3, percentile(flat["pytorch"], q) * 1e3
        rows.append(row(f"model_latency_p{q}_batch1", f"{what}: latency p{q} (ratio: PyTorch / ONNX)", onnx_ms,
                        torch_ms, "ms", args, len(singles), ratio=torch_ms / onnx_ms))
    per_round = {name: statistics.median(sum(r) for r in rounds) for name, rounds in latencies.items()}
    rows.append(row("model_tokens_per_s_batch1", f"{what}: tokens/s of the median round", tokens / per_round["onnx"],
                    tokens / per_round["pytorch"], "tokens/s", args, len(singles)))

    batches = [graph.feeds(b) for b in collated(predictor, texts, 32)]
    check_same_tags(graph, session, batches)
    tokens = sum(int(inputs[-1].sum()) for inputs in batches)
    passes = alternate({name: timed(lambda run=run: [run(inputs) for inputs in batches]) for name, run in
                        sides.items()}, args.windows)
    rows.append(row("model_tokens_per_s_batch32", f"NER {SIZES}: model only, batches of 32, all {len(texts)} CoNLL "
                    "test sentences, median pass", tokens / statistics.median(passes["onnx"]),
                    tokens / statistics.median(passes["pytorch"]), "tokens/s", args, len(batches)))
    return rows


def end_to_end_rows(predictor: Predictor, onnx_predictor: OnnxPredictor, texts: list[str], args: argparse.Namespace
                    ) -> list[Row]:
    rows = []
    for batch_size, sentences in ((1, texts[:args.batch1_sentences]), (32, texts)):
        tokens = sum(len(text.split()) for text in sentences)
        sides = {"onnx": onnx_predictor, "pytorch": predictor}
        passes = alternate({name: timed(lambda p=p: p.predict(sentences, batch_size=batch_size)) for name, p in
                            sides.items()}, args.windows)
        rows.append(row(f"end_to_end_tokens_per_s_batch{batch_size}", f"NER {SIZES}: text in, records out "
                        f"(predict, batch_size={batch_size}), {len(sentences)} CoNLL test sentences, median pass",
                        tokens / statistics.median(passes["onnx"]), tokens / statistics.median(passes["pytorch"]),
                        "tokens/s", args, len(sentences)))
    return rows


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, "root holding ner/conll2003/iob2", "export_speed.jsonl")
    parser.set_defaults(threads=1)
    parser.add_argument("--batch1-sentences", type=int, default=500,
                        help="sentences of the batch-1 comparisons (the first ones of the test set)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a NER checkpoint to export and time (default: random weights at Flair's sizes)")
    parser.add_argument("--skip-end-to-end", action="store_true", help="time the models only")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> list[Row]:
    args = parse_args(argv)
    quiet_setup(args)
    data = TokenClassificationData(path=str(args.data / "ner" / "conll2003" / "iob2"), tag_scheme="BIOES")
    data.prepare_encoders()
    texts = [" ".join(tokens) for tokens in data.raw_split("test")["tokens"]]
    predictor = seqlab.load(args.checkpoint, open_vocabulary=False) if args.checkpoint else build_predictor(data)
    import onnxruntime

    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, threads {torch.get_num_threads()} "
          f"(onnxruntime intra-op {args.threads}), {len(texts)} test sentences, "
          f"{sum(p.numel() for p in predictor.task.parameters()):,} parameters, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = Path(folder) / "ner.onnx"
        export(predictor, onnx_path, "onnx")
        onnx_predictor = OnnxPredictor(onnx_path, threads=args.threads, predictor=predictor)
        rows = model_rows(predictor, onnx_predictor.session, texts, args)
        if not args.skip_end_to_end:
            rows += end_to_end_rows(predictor, onnx_predictor, texts, args)
    for r in rows:
        r["onnxruntime"] = onnxruntime.__version__
    print_table(rows)
    append_rows(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
