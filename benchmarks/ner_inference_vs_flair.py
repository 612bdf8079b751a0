"""NER inference speed, measured in one run: seqlab vs Flair 0.15 on the CoNLL-2003 test sentences, same threads.

Both sides run a BiLSTM-CRF of Flair's sizes with random weights (the network's cost does not depend on them):
one-hot word embeddings 100 (seqlab's CoNLL train vocabulary on both sides), character BiLSTM 25 + 25 (Flair's
CharacterEmbeddings), BiLSTM 256, CRF over the BIOES tags. Flair keeps its SequenceTagger defaults (a linear
re-projection of the embeddings before the LSTM). Each side predicts every sentence, batch 64, then batch 1 on the
first ``--batch1-sentences`` sentences:

- seqlab Predictor: ``Predictor.predict(texts)`` (``seqlab.load``'s path): text -> whitespace tokens -> encoding
  -> length-sorted batches -> model -> Viterbi -> records with entities and character offsets;
- seqlab model only: the same model on the same batches collated beforehand: forward + Viterbi;
- Flair: ``SequenceTagger.predict(sentences, mini_batch_size=B)`` on ``Sentence`` objects built beforehand (their
  building is timed too and reported, not counted), in ``.venv-peers`` (``make bench-peers``), a subprocess that
  waits for each command on its stdin, so it loads once and idles while seqlab runs.

Random weights tag far more entities than a trained model would (seqlab's constrained CRF about one per two tokens,
Flair's unconstrained one nearly one per token): each costs seqlab a forward-backward confidence and Flair a Span
with its label; the rows record both counts.

The three alternate pass by pass for ``--windows`` rounds (the order reversed every other round) after one untimed
warm-up pass each, so machine load hits all alike; ratio = Flair's median pass seconds / seqlab's (the ratio of
median tokens/s). Prints the table and appends rows to results/bench/ner_inference_vs_flair.jsonl; never asserts on
timings. Without ``.venv-peers`` it says how to create it and exits 0 without a row.
Example: ``python benchmarks/ner_inference_vs_flair.py --windows 5 --threads 1``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import torch

if str(Path(__file__).resolve().parent) not in sys.path:  # benchmarks/ is not a package: find paired.py beside us
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from paired import REPO_ROOT, Row, add_common_arguments, append_rows, print_table, quiet_setup, row  # noqa: E402
from seqlab.data.sampler import BucketBatchSampler  # noqa: E402
from seqlab.data_modules import TokenClassificationData  # noqa: E402
from seqlab.inference import Predictor  # noqa: E402
from seqlab.models import BiLSTMEncoder, CharBiLSTM, CRFTagger, WordEmbedding  # noqa: E402
from seqlab.tasks import TokenTagging  # noqa: E402

PEERS_PYTHON = REPO_ROOT / ".venv-peers" / "bin" / "python"
FLAIR_SCRIPT = Path(__file__).resolve().parent / "peers" / "flair_inference.py"
SIZES = "word one-hot 100, char BiLSTM 25+25, BiLSTM 256, CRF, BIOES, random weights"


# ----------------------------------------------------------------------------- seqlab
def build_predictor(data: TokenClassificationData) -> Predictor:
    """A TokenTagging of Flair's sizes with random weights, and its data module, as ``seqlab.load`` gives them."""
    torch.manual_seed(0)
    task = TokenTagging(
        vocab_size=data.vocab_size, labels=data.labels, char_vocab_size=data.char_vocab_size,
        padding_idx=data.padding_idx, word_embedding=functools.partial(WordEmbedding, embedding_dim=100),
        char_encoder=functools.partial(CharBiLSTM, embedding_dim=25, hidden_size=25), embedding_dropout=0.5,
        encoder=functools.partial(BiLSTMEncoder, hidden_size=256), head=CRFTagger,
    )
    return Predictor(task, data)


def collated(predictor: Predictor, texts: list[str], batch_size: int) -> list[dict]:
    """The batches ``Predictor.predict`` runs (same encoding, same length-sorted sampler), collated beforehand."""
    encoded = predictor.data.encoded_inputs(texts)
    sampler = BucketBatchSampler(encoded.columns["length"], batch_size=batch_size, shuffle=False, num_replicas=1,
                                 rank=0)
    return [predictor.data.collate(encoded.__getitems__(indices)) for indices in sampler]


def model_pass(task: TokenTagging, batches: list[dict]) -> int:
    """Forward + Viterbi over ``batches``; the tags decoded (the real tokens)."""
    decoded = 0
    with torch.inference_mode():
        for batch in batches:
            tags = task.tagger.decode(task(batch), batch["mask"])  # (B, T)
            decoded += int(batch["mask"].sum()) if tags.shape == batch["mask"].shape else 0
    return decoded


# ----------------------------------------------------------------------------- Flair, in its own venv
class FlairPeer:
    """``benchmarks/peers/flair_inference.py`` under ``.venv-peers``: builds the tagger once, then one timed
    ``predict`` pass per ``run`` call (a JSON line each way)."""

    def __init__(self, python: Path, sentences_file: Path, threads: int) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self.process = subprocess.Popen([str(python), str(FLAIR_SCRIPT), str(sentences_file), "--threads",
                                         str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env=env)
        self.ready = self._reply()

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the Flair peer ({FLAIR_SCRIPT.name}) stopped; its error is above")
        return json.loads(line)

    def run(self, count: int, batch_size: int) -> dict:
        self.process.stdin.write(json.dumps({"count": count, "batch_size": batch_size}) + "\n")
        self.process.stdin.flush()
        return self._reply()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


# ----------------------------------------------------------------------------- alternating passes
def alternate(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each side's passes: one untimed warm-up pass each, then ``rounds`` rounds of one pass per side,
    the order reversed every other round."""
    for run in sides.values():
        run()
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for index in range(rounds):
        for name in (list(sides) if index % 2 == 0 else list(sides)[::-1]):
            seconds[name].append(sides[name]())
    return seconds


def timed(work: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        work()
        return time.perf_counter() - start

    return run


def compare(predictor: Predictor, peer: FlairPeer, sentences: list[list[str]], batch_size: int,
            args: argparse.Namespace) -> list[Row]:
    texts = [" ".join(tokens) for tokens in sentences]
    tokens = sum(map(len, sentences))
    batches = collated(predictor, texts, batch_size)
    records = predictor.predict(texts, batch_size=batch_size)
    if [r["tokens"] for r in records] != sentences or model_pass(predictor.task, batches) != tokens:
        raise SystemExit("seqlab's predictor or model did not tag every token of the test sentences")
    flair_passes: list[dict] = []

    def flair_pass() -> float:
        flair_passes.append(peer.run(len(sentences), batch_size))
        if flair_passes[-1]["tokens"] != tokens:
            raise SystemExit(f"Flair's sentences hold {flair_passes[-1]['tokens']} tokens, expected {tokens}")
        return flair_passes[-1]["predict_s"]

    seconds = alternate({"predictor": timed(lambda: predictor.predict(texts, batch_size=batch_size)),
                         "model": timed(lambda: model_pass(predictor.task, batches)),
                         "flair": flair_pass}, args.windows)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    sentence_s = statistics.median(p["sentences_s"] for p in flair_passes[1:])
    common = dict(batch_size=batch_size, sentences=len(sentences), tokens=tokens,
                  rounds=args.windows, flair=peer.ready["flair"],
                  flair_sentence_building_tokens_per_s=round(tokens / sentence_s),
                  flair_pass_s=[round(s, 4) for s in seconds["flair"]],
                  entities_seqlab=sum(len(r["entities"]) for r in records), entities_flair=flair_passes[-1]["spans"])
    what = (f"NER inference tokens/s on {len(sentences)} CoNLL-2003 test sentences, batch {batch_size}, "
            f"{torch.get_num_threads()} thread(s), {SIZES}; {{seqlab}} vs Flair {peer.ready['flair']} "
            f"SequenceTagger.predict(mini_batch_size={batch_size}) on Sentence objects built beforehand (not "
            f"timed); passes alternated over {args.windows} rounds; ratio = Flair median s / seqlab median s")
    return [
        row(f"predictor_b{batch_size}", what.format(seqlab="seqlab Predictor.predict(texts) (text -> records)"),
            tokens / medians["predictor"], tokens / medians["flair"], "tokens/s", args, len(batches),
            ratio=medians["flair"] / medians["predictor"], seqlab_pass_s=[round(s, 4) for s in seconds["predictor"]],
            **common),
        row(f"model_only_b{batch_size}", what.format(seqlab="seqlab model forward + Viterbi on batches collated "
                                                            "beforehand"),
            tokens / medians["model"], tokens / medians["flair"], "tokens/s", args, len(batches),
            ratio=medians["flair"] / medians["model"], seqlab_pass_s=[round(s, 4) for s in seconds["model"]],
            **common),
    ]


# ----------------------------------------------------------------------------- command line
def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, "root holding ner/conll2003/iob2", "ner_inference_vs_flair.jsonl")
    parser.set_defaults(threads=1)
    parser.add_argument("--peers-python", type=Path, default=PEERS_PYTHON,
                        help="the python of the venv that has flair (make bench-peers)")
    parser.add_argument("--batch1-sentences", type=int, default=500,
                        help="sentences of the batch-1 comparison (the first ones of the test set)")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> list[Row]:
    args = parse_args(argv)
    if not args.peers_python.exists():
        print(f"Flair's venv is missing ({args.peers_python}): create it with `make bench-peers` (Flair 0.15 and CPU "
              "torch in .venv-peers, never a dependency of seqlab); no row written")
        return []
    quiet_setup(args)
    data = TokenClassificationData(path=str(args.data / "ner" / "conll2003" / "iob2"), tag_scheme="BIOES")
    data.prepare_encoders()
    sentences = [list(tokens) for tokens in data.raw_split("test")["tokens"]]
    predictor = build_predictor(data)
    words = [word for word in data.words.itos if word not in data.words.specials]  # Flair adds its own <unk>
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {len(sentences)} test sentences "
          f"({sum(map(len, sentences))} tokens), seqlab vocabulary {len(data.words)} words, tags {data.labels}; "
          f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        sentences_file = Path(folder) / "sentences.json"
        sentences_file.write_text(json.dumps({"sentences": sentences, "words": words, "labels": data.labels}))
        peer = FlairPeer(args.peers_python, sentences_file, torch.get_num_threads())
        print(f"Flair {peer.ready['flair']} (torch {peer.ready['torch']}, {peer.ready['threads']} thread(s)): "
              f"{peer.ready['parameters']:,} parameters, word vocabulary {peer.ready['vocabulary']}, tags "
              f"{peer.ready['tags']}; seqlab: {sum(p.numel() for p in predictor.task.parameters()):,} parameters")
        try:
            rows = compare(predictor, peer, sentences, 64, args)
            rows += compare(predictor, peer, sentences[:args.batch1_sentences], 1, args)
        finally:
            peer.close()
    print_table(rows)
    append_rows(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
